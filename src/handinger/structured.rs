//! A worker's structured output, bounded in what it may cost as a tree.
//!
//! The bridge keeps a structured output as raw text, but MCP's structured content is a
//! parsed tree (rmcp's `serde_json::Value`), built whenever an answer is sent: dozens of
//! bytes per value however short the value's text, so a 15 MB array of zeros cost close
//! to 300 MB for that moment, and a worker can be asked to produce exactly that. An output
//! with more values than `--max-structured-values` (or nested deeper than
//! [`MAX_DEPTH`], past which the tree could not even be built) is therefore replaced, as
//! soon as it arrives, by an object that holds its JSON as one string and says why:
//! `{"structuredOutputAsText": "<why>", "json": "<the output's JSON text>"}`. As a tree
//! that is two strings, the size of the text; nothing is lost, and what reads it is told to
//! parse `json` itself.

use serde_json::value::RawValue;

use super::types::RawJson;
use crate::json_shape::{self, Exceeded};

/// The default of `--max-structured-values`.
pub(crate) const DEFAULT_MAX_VALUES: usize = 100_000;

/// Deepest structured output passed as structured data: deeper ones could not be turned
/// into a tree at all (serde stops at 128 levels).
pub(crate) const MAX_DEPTH: usize = 64;

/// The key that marks a structured output passed as text, and carries why.
pub(crate) const AS_TEXT_KEY: &str = "structuredOutputAsText";

/// Replaces `output` by its text form when it holds more than `max_values` values or nests
/// deeper than [`MAX_DEPTH`].
pub(crate) fn bound(output: &mut Option<RawJson>, max_values: usize) {
    let Some(raw) = output else {
        return;
    };
    let why = match json_shape::within(raw.get().as_bytes(), MAX_DEPTH, max_values) {
        Ok(()) => return,
        Err(Exceeded::Values) => format!(
            "the worker's structured answer holds more than {max_values} JSON values \
             (--max-structured-values), too many to pass as structured data: its JSON is \
             the text of `json`"
        ),
        Err(Exceeded::Depth) => format!(
            "the worker's structured answer nests deeper than {MAX_DEPTH} levels, too deep \
             to pass as structured data: its JSON is the text of `json`"
        ),
    };
    // Written by hand so that the marking key comes first (what `passed_as_text` looks
    // for), and strings are escaped by serde.
    let (Ok(why), Ok(json)) = (
        serde_json::to_string(&why),
        serde_json::to_string(raw.get()),
    ) else {
        return;
    };
    if let Ok(text) = RawValue::from_string(format!("{{\"{AS_TEXT_KEY}\":{why},\"json\":{json}}}"))
    {
        *output = Some(text);
    }
}

/// Why `output` was passed as text, when it was.
pub(crate) fn passed_as_text(output: &RawJson) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct AsText {
        #[serde(rename = "structuredOutputAsText")]
        why: String,
    }
    let text = output.get();
    // Only what [`bound`] wrote starts so: a cheap test before anything is read.
    if !text.starts_with(&format!("{{\"{AS_TEXT_KEY}\":")) {
        return None;
    }
    serde_json::from_str::<AsText>(text).ok().map(|t| t.why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Option<RawJson> {
        Some(RawValue::from_string(text.to_owned()).unwrap())
    }

    #[test]
    fn outputs_beyond_the_bound_are_passed_as_their_text() {
        let mut small = raw(r#"{"a":[1,2]}"#);
        bound(&mut small, 5);
        assert_eq!(small.as_ref().unwrap().get(), r#"{"a":[1,2]}"#);
        assert_eq!(passed_as_text(small.as_ref().unwrap()), None);

        let mut wide = raw("[0,0,0,0,0,0]");
        bound(&mut wide, 5);
        let wide = wide.unwrap();
        let why = passed_as_text(&wide).unwrap();
        assert!(why.contains("--max-structured-values"), "{why}");
        let value: serde_json::Value = serde_json::from_str(wide.get()).unwrap();
        assert_eq!(value["json"], "[0,0,0,0,0,0]");

        let mut deep = raw(&format!("{}{}", "[".repeat(70), "]".repeat(70)));
        bound(&mut deep, 1000);
        assert!(passed_as_text(deep.as_ref().unwrap()).is_some());
    }
}
