//! Files both ways.
//!
//! - [`upload`]: files a caller attaches to `create_task` — local paths (only inside
//!   directories the user allowed) or inline base64 — checked in full before anything is
//!   sent, then streamed into the multipart body.
//! - [`answer`]: files a worker produced — fetched (with the API key only when they live on
//!   the API's own origin), saved to `--download-dir`, inlined as images, and served as
//!   MCP resources; their downloads take turns fairly ([`download_queue`]) and what they
//!   take on disk has a budget ([`disk_budget`]).

pub mod answer;
pub mod beneath;
pub mod disk_budget;
pub mod download_queue;
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
    if name.trim().is_empty() {
        return Err(format!("file name {name:?} is blank"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\') || c.is_control() || is_direction_mark(*c))
    {
        return Err(format!(
            "file name {name:?} contains {bad:?}; names may not hold path separators, control characters or text-direction marks"
        ));
    }
    Ok(())
}

/// The Unicode marks that change the display order of text (as in `evil\u{202e}txt.exe`,
/// shown as `evilexe.txt`), plus the invisible joiners and byte-order mark that make one
/// name look like another.
fn is_direction_mark(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_separators_or_controls_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "..\\x",
            "a\nb",
            "a\u{7}",
            "  ",
            "evil\u{202e}txt.exe",
            "a\u{2067}b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("report (final).csv").is_ok());
    }
}
