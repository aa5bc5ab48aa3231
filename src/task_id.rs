//! Task and worker ids: generated in Handinger's documented shape, validated when a caller
//! supplies one, and escaped before they become part of a URL path.
//!
//! A caller-supplied id ends up in `GET /api/tasks/{id}`, so an id such as `../workers/x`
//! or `a?b` must never be able to steer that request to another endpoint. Validation keeps
//! ids to a conservative alphabet; escaping is a second, independent guard.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest id accepted. Documented ids are under 40 characters.
pub const MAX_ID_LEN: usize = 128;

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

/// Any id (task, worker, schedule) escaped for use as one URL path segment: a second guard
/// behind [`validate_id`].
pub fn path_segment(raw: &str) -> String {
    utf8_percent_encode(raw, PATH_SEGMENT).to_string()
}

/// Checks a task or worker id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 _ - . :`,
/// and no `..`.
pub fn validate_id(raw: &str, field: &str) -> Result<(), String> {
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
    }
}
