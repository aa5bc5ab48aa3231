//! Files both ways; no MCP types (`tools` serves files as resources). One file a job:
//!
//! - [`upload`] — files a caller attaches to `create_task`: local paths (only inside
//!   directories the user allowed) or inline base64, checked in full before anything is
//!   sent, then streamed into the multipart body.
//! - [`beneath`] — opening a path below an allowed root without following links.
//! - [`answer`] — files a worker produced: fetched (with the API key only when they live on
//!   the API's own origin), saved to `--download-dir`, inlined as images, and served as
//!   MCP resources.
//! - [`download_queue`] — the download slots, handed out round robin over keys and answers.
//! - [`disk_budget`] — what saved files may take on disk, oldest out first.

pub(crate) mod answer;
pub(crate) mod beneath;
pub(crate) mod disk_budget;
pub(crate) mod download_queue;
pub(crate) mod upload;

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
    if let Some(bad) = name.chars().find(|c| {
        matches!(c, '/' | '\\') || crate::printable::needs_escape(*c) || is_look_alike(*c)
    }) {
        return Err(format!(
            "file name {name:?} contains {bad:?}; names may not hold path separators or characters that look like them, control characters, line separators, or invisible or text-direction marks"
        ));
    }
    Ok(())
}

/// Characters drawn like the dot and the slashes of a path, which make one name look like
/// another: `invoice\u{2024}pdf` (ONE DOT LEADER) shows as `invoice.pdf` but has no
/// extension, `a\u{2215}b.txt` (DIVISION SLASH) shows as a path. Refused like the
/// text-direction marks ([`crate::printable::is_format_mark`]: `evil\u{202e}txt.exe`, shown
/// as `evilexe.txt`), never repaired: a repaired name would be a third name.
fn is_look_alike(c: char) -> bool {
    matches!(
        c,
        // Dots: one and two dot leaders, small and fullwidth full stops.
        '\u{2024}' | '\u{2025}' | '\u{fe52}' | '\u{ff0e}'
        // Slashes: fraction, division, box-drawing diagonals, big solidus, fullwidth.
        | '\u{2044}' | '\u{2215}' | '\u{2571}' | '\u{2572}' | '\u{29f8}' | '\u{ff0f}'
        // Backslashes: set minus, big and small reverse solidus, fullwidth.
        | '\u{2216}' | '\u{29f5}' | '\u{29f9}' | '\u{fe68}' | '\u{ff3c}'
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
            "invoice\u{2024}pdf",
            "a\u{2215}b.txt",
            "a\u{ff0f}b.txt",
            "word\u{2060}joiner",
            "line\u{2028}break",
            "soft\u{ad}hyphen",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("report (final).csv").is_ok());
        assert!(validate_name("Überblick 東京 — v2.pdf").is_ok());
    }
}
