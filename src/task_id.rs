//! Task and worker ids: generated in Handinger's documented shape, validated when a caller
//! supplies one, and escaped before they become part of a URL path.
//!
//! A caller-supplied id ends up in `GET /api/tasks/{id}`, so an id such as `../workers/x`,
//! `a?b` or `.` must never be able to steer that request to another endpoint (`.` and `..`
//! are dot segments: URL parsers drop them, escaped as `%2E` or not, so `/api/tasks/.`
//! becomes the collection `/api/tasks/`). Validation keeps ids to a conservative alphabet
//! and refuses dot segments; [`checked_segment`], which the endpoint builders use for ids
//! that are not [`TaskId`]s (worker and schedule ids, some from upstream answers), checks
//! again before it escapes.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest id accepted. Documented ids are under 40 characters.
pub(crate) const MAX_ID_LEN: usize = 128;

/// Everything but RFC 3986 "unreserved" characters gets escaped in a path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A validated task id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh id in Handinger's documented shape: `tsk_` followed by a ULID.
    pub fn generate() -> Self {
        TaskId(format!("tsk_{}", ulid::Ulid::generate()))
    }

    /// Checks an id that came from a caller; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        validate_id(raw, "taskId").map(|()| TaskId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id escaped for use as one URL path segment.
    pub fn path_segment(&self) -> String {
        path_segment(&self.0)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id escaped for use as one URL path segment.
fn path_segment(raw: &str) -> String {
    utf8_percent_encode(raw, PATH_SEGMENT).to_string()
}

/// Any id (task, worker, schedule) as one URL path segment: checked with [`validate_id`]
/// (whoever supplied it: a caller, or an upstream answer), then escaped. The error names
/// `field`.
pub(crate) fn checked_segment(raw: &str, field: &str) -> Result<String, String> {
    validate_id(raw, field).map(|()| path_segment(raw))
}

/// Checks a task or worker id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 _ - . :`,
/// not a dot segment (`.`, `..`) and no `..` anywhere.
pub(crate) fn validate_id(raw: &str, field: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err(format!(
            "{field} is empty: leave it out, or pass an id such as tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D"
        ));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(format!(
            "{field} is {} characters long; ids are at most {MAX_ID_LEN}",
            raw.len()
        ));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "{field} contains {bad:?}; ids may only hold letters, digits, '_', '-', '.' and ':'"
        ));
    }
    if raw.chars().all(|c| c == '.') {
        return Err(format!(
            "{field} is {raw:?}, a path's dot segment, not an id: pass the id itself, such as \
             tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D"
        ));
    }
    if raw.contains("..") {
        return Err(format!("{field} must not contain '..'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = TaskId::generate();
        assert!(id.as_str().starts_with("tsk_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert!(TaskId::parse(id.as_str()).is_ok());
    }

    #[test]
    fn crafted_ids_are_refused() {
        for bad in [
            "",
            "../workers/x",
            "a/b",
            "a?b",
            "a#b",
            "..",
            ".",
            "...",
            "a b",
            "tsk_é",
            &"x".repeat(129),
        ] {
            assert!(TaskId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn documented_ids_are_accepted_and_escaping_is_a_no_op_for_them() {
        for good in [
            "tsk_2Z-YWz3hFq6VlW",
            "tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D",
            "t_org_123_w_01HZY",
        ] {
            let id = TaskId::parse(good).unwrap();
            assert_eq!(id.path_segment(), good);
        }
    }

    #[test]
    fn escaping_guards_what_validation_lets_through() {
        assert_eq!(TaskId("a:b".into()).path_segment(), "a%3Ab");
        assert_eq!(checked_segment("wrk_1:a", "workerId").unwrap(), "wrk_1%3Aa");
    }

    #[test]
    fn escaping_cannot_hide_a_dot_segment() {
        // Why dot segments are refused rather than escaped: the URL parser drops `%2E` as
        // it drops `.`, and the request goes to the collection.
        for path in ["/api/tasks/.", "/api/tasks/%2E", "/api/tasks/%2e"] {
            let url = reqwest::Url::parse(&format!("https://api.example{path}")).unwrap();
            assert_eq!(url.path(), "/api/tasks/", "{path}");
        }
    }

    #[test]
    fn a_checked_segment_is_never_a_dot_segment_and_names_its_field() {
        for bad in [".", "..", "", "a/b", "%2e"] {
            let error = checked_segment(bad, "scheduleId").unwrap_err();
            assert!(error.contains("scheduleId"), "{bad:?}: {error}");
        }
        assert!(
            checked_segment(".", "workerId")
                .unwrap_err()
                .contains("dot segment")
        );
    }
}
