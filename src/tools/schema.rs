//! Portable tool schemas: the input and output schemas schemars derives, rewritten into the
//! subset that the validators MCP clients use (ajv in the TypeScript SDK and MCP Inspector,
//! `jsonschema` in the Python SDK) accept without a warning.
//!
//! schemars writes three things those clients complain about, and [`make_portable`] removes
//! them from every tool a server lists:
//!
//! - `format` on numbers (`uint64`, `int64`, `double`, …): not JSON Schema formats, so ajv
//!   prints "unknown format ignored" on every listing. The bound that matters stays as
//!   `minimum: 0` on unsigned integers.
//! - `null` for an `Option`: `"type": ["string", "null"]`, `null` inside an `enum`, or
//!   `anyOf: [{"$ref"}, {"type": "null"}]`, plus `"default": null`. A property says "absent"
//!   by not being there instead: the null goes, the property leaves `required`, and every
//!   output struct skips `None` when it serializes (the unit tests below hold the two
//!   together). A `null` written by hand (an `anyOf` whose other branch is not a `$ref`,
//!   as in update_worker's `outputSchema`, where `null` means "remove it") is kept, since
//!   there absent and `null` mean different things.
//! - Properties without a type keyword are not fixed here: the structs give every free-form
//!   field a type (see `output.rs`), and a test fails on any that lacks one.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;
use serde_json::Value;

/// Rewrites the input and output schema of every tool in `router`.
pub(super) fn make_portable<S>(router: &mut ToolRouter<S>) {
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        tool.input_schema = Arc::new(portable(&tool.input_schema));
        if let Some(output) = tool.output_schema.take() {
            tool.output_schema = Some(Arc::new(portable(&output)));
        }
    }
}

/// A portable copy of `schema`.
pub(crate) fn portable(schema: &JsonObject) -> JsonObject {
    let mut schema = schema.clone();
    rewrite(&mut schema);
    schema
}

fn rewrite(schema: &mut JsonObject) {
    drop_number_format(schema);
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        let mut made_optional = Vec::new();
        for (name, property) in properties.iter_mut() {
            if let Value::Object(property) = property
                && strip_null(property)
            {
                made_optional.push(name.clone());
            }
        }
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|name| {
                !made_optional
                    .iter()
                    .any(|optional| name.as_str() == Some(optional))
            });
        }
    }
    for (key, value) in schema.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "$defs" | "definitions" | "patternProperties", Value::Object(map)) => {
                for sub in map.values_mut() {
                    if let Value::Object(sub) = sub {
                        rewrite(sub);
                    }
                }
            }
            (
                "items" | "additionalProperties" | "not" | "contains" | "if" | "then" | "else",
                Value::Object(sub),
            ) => rewrite(sub),
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(list)) => {
                for sub in list.iter_mut() {
                    if let Value::Object(sub) = sub {
                        rewrite(sub);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Removes `format` from a number or integer schema, keeping `minimum: 0` for the unsigned
/// formats (schemars writes it already; this keeps the bound if that ever changes).
fn drop_number_format(schema: &mut JsonObject) {
    let numeric = match schema.get("type") {
        Some(Value::String(kind)) => kind == "integer" || kind == "number",
        Some(Value::Array(kinds)) => kinds
            .iter()
            .any(|kind| kind == "integer" || kind == "number"),
        _ => false,
    };
    if !numeric {
        return;
    }
    if let Some(Value::String(format)) = schema.remove("format")
        && format.starts_with("uint")
    {
        schema.entry("minimum").or_insert_with(|| Value::from(0));
    }
}

/// Takes the `null` out of a property schema that schemars made nullable for an `Option`.
/// Returns whether it did, so the caller drops the property from `required`.
fn strip_null(property: &mut JsonObject) -> bool {
    let mut stripped = false;
    if let Some(Value::Array(kinds)) = property.get_mut("type")
        && kinds.iter().any(|kind| kind == "null")
    {
        kinds.retain(|kind| kind != "null");
        stripped = true;
        if kinds.len() == 1 {
            let only = kinds.remove(0);
            property.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = property.get_mut("enum")
        && values.iter().any(Value::is_null)
    {
        values.retain(|value| !value.is_null());
        stripped = true;
    }
    if let Some(Value::Array(branches)) = property.get("anyOf")
        && let [first, second] = branches.as_slice()
    {
        let is_null = |branch: &Value| branch.get("type") == Some(&Value::from("null"));
        let reference = match (is_null(first), is_null(second)) {
            (false, true) => Some(first),
            (true, false) => Some(second),
            _ => None,
        };
        if let Some(Value::Object(reference)) = reference.filter(|r| r.get("$ref").is_some()) {
            let reference = reference.clone();
            property.remove("anyOf");
            // 2020-12 allows keywords beside `$ref`: the property keeps its description.
            property.extend(reference);
            stripped = true;
        }
    }
    if stripped && property.get("default") == Some(&Value::Null) {
        property.remove("default");
    }
    stripped
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::args::object;
    use super::*;

    #[test]
    fn options_become_optional_properties_without_null() {
        let schema = object(json!({
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"], "default": null},
                "budget": {"type": ["string", "null"], "enum": ["low", "high", null]},
                "usage": {"anyOf": [{"$ref": "#/$defs/Usage"}, {"type": "null"}],
                          "description": "Credits."},
                "id": {"type": "string"}
            },
            "required": ["name", "budget", "usage", "id"]
        }));
        let portable = Value::Object(portable(&schema));
        assert_eq!(
            portable,
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "budget": {"type": "string", "enum": ["low", "high"]},
                    "usage": {"$ref": "#/$defs/Usage", "description": "Credits."},
                    "id": {"type": "string"}
                },
                "required": ["id"]
            })
        );
    }

    #[test]
    fn a_null_written_by_hand_is_kept() {
        let schema = object(json!({
            "type": "object",
            "properties": {
                "outputSchema": {"anyOf": [{"type": "object"}, {"type": "null"}]}
            }
        }));
        assert_eq!(portable(&schema), schema);
    }

    #[test]
    fn number_formats_go_and_unsigned_integers_keep_their_minimum() {
        let schema = object(json!({
            "type": "object",
            "$defs": {"When": {"oneOf": [{"type": "object", "properties": {
                "delayInSeconds": {"type": "integer", "format": "uint64"}
            }}]}},
            "properties": {
                "wait": {"type": ["integer", "null"], "format": "uint64", "minimum": 0},
                "credits": {"type": "number", "format": "double"},
                "date": {"type": "string", "format": "date-time"}
            }
        }));
        let portable = Value::Object(portable(&schema));
        assert_eq!(
            portable["$defs"]["When"]["oneOf"][0]["properties"]["delayInSeconds"],
            json!({"type": "integer", "minimum": 0})
        );
        assert_eq!(
            portable["properties"]["wait"],
            json!({"type": "integer", "minimum": 0})
        );
        assert_eq!(portable["properties"]["credits"], json!({"type": "number"}));
        // String formats are real JSON Schema formats: they stay.
        assert_eq!(portable["properties"]["date"]["format"], "date-time");
    }

    /// What an output struct writes with every `Option` empty: no `null` anywhere (the
    /// schemas no longer allow one) and every property its schema still requires.
    fn writes_what_its_schema_says<T: schemars::JsonSchema + serde::Serialize + 'static>(
        value: &T,
    ) {
        let schema = portable(&rmcp::handler::server::common::schema_for_output::<T>());
        let written = serde_json::to_value(value).unwrap();
        let written = written.as_object().expect("an object");
        for (name, member) in written {
            assert!(!member.is_null(), "{name} is written as null");
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            assert!(written.contains_key(name), "required {name} is missing");
        }
    }

    #[test]
    fn output_structs_leave_out_what_is_absent() {
        use super::super::output::{FileLink, SourceLink, TaskResult, TurnView};
        use super::super::schedules::{CreatedSchedule, ScheduleView};
        use super::super::workers::WorkerView;
        writes_what_its_schema_says(&TaskResult::default());
        writes_what_its_schema_says(&WorkerView::default());
        writes_what_its_schema_says(&ScheduleView::default());
        writes_what_its_schema_says(&CreatedSchedule::default());
        writes_what_its_schema_says(&SourceLink {
            title: None,
            url: "https://example.com".into(),
        });
        writes_what_its_schema_says(&FileLink {
            filename: None,
            media_type: None,
            url: "https://example.com/f".into(),
            size: None,
            resource_uri: "handinger://tasks/tsk_1/files/f".into(),
            local_path: None,
        });
        writes_what_its_schema_says(&TurnView {
            seq: None,
            status: None,
            input: None,
            output_text: None,
            structured_output: None,
            credits: None,
            duration_ms: None,
            started_at: None,
            completed_at: None,
        });
        writes_what_its_schema_says(&crate::handinger::types::Usage::default());
        writes_what_its_schema_says(&crate::handinger::types::TaskTotals::default());
    }
}
