//! Files both ways.
//!
//! - [`upload`]: files a caller attaches to `create_task` — local paths (only inside
//!   directories the user allowed) or inline base64 — checked in full before anything is
//!   sent, then streamed into the multipart body.
//! - [`answer`]: files a worker produced — fetched (with the API key only when they live on
//!   the API's own origin), saved to `--download-dir`, inlined as images, and served as
//!   MCP resources.

pub mod answer;
pub mod upload;

/// Limits on what goes up and what comes down, all from the command line.
#[derive(Debug, Clone)]
pub struct FileLimits {
    pub max_files: usize,
    /// Per file, uploads and downloads alike.
    pub max_file_bytes: u64,
    /// All files of one call together.
    pub max_total_bytes: u64,
}

/// Checks a file name: what it may be called upstream and on disk.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{name:?} is not a usable file name"));
    }
    if name.len() > 255 {
        return Err(format!(
            "file name is {} bytes long; the limit is 255",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\') || c.is_control())
    {
        return Err(format!(
            "file name {name:?} contains {bad:?}; names may not hold path separators or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_separators_or_controls_are_refused() {
        for bad in ["", ".", "..", "a/b", "..\\x", "a\nb", "a\u{7}"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("report (final).csv").is_ok());
    }
}
