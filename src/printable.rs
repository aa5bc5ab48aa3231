//! Text from outside (an upstream error body, a name in an answer) shown on one line: in
//! logs, errors and results.
//!
//! Clients' strings reach the log through `{:?}` (quoted, escaped); upstream text is
//! mostly quoted into sentences, where quotes would be noise. [`one_line`] escapes what
//! `{:?}` escapes that could change how the line reads: control characters (a newline
//! forges a log line, ESC starts a terminal sequence), the Unicode line and paragraph
//! separators, and invisible format characters (text-direction overrides, zero-width
//! marks), each as Rust writes it (`\n`, `\u{1b}`, `\u{202e}`). Everything else, accents
//! and other scripts included, is left as it is.

use std::borrow::Cow;

/// `text` with every character [`needs_escape`] escaped; borrowed when there is none (the
/// common case costs one scan).
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Control characters (C0, DEL, C1), the line and paragraph separators, and invisible
/// format marks.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format_mark(c)
}

/// Unicode's format characters (general category Cf): invisible marks that change how
/// text around them is shown (text-direction overrides and isolates, zero-width spaces
/// and joiners, the word joiner, the byte-order mark, soft hyphen, tags), so that one
/// string can look like another.
pub(crate) fn is_format_mark(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_terminal_sequences_and_invisible_marks_are_escaped() {
        assert_eq!(
            one_line("bad\nINFO forged\r\u{1b}[2J\u{7}\u{2028}\u{202e}\u{85}end"),
            "bad\\nINFO forged\\r\\u{1b}[2J\\u{7}\\u{2028}\\u{202e}\\u{85}end"
        );
    }

    #[test]
    fn ordinary_text_is_left_alone_and_not_copied() {
        for text in ["Invalid API key", "café \"quoted\" naïve 東京 \\n", ""] {
            assert!(matches!(one_line(text), Cow::Borrowed(t) if t == text));
        }
    }
}
