//! What the setup commands (`doctor`, `tools`) print on stdout.
//!
//! Their output is often piped into something that stops reading early
//! (`handinger-mcp doctor | head -n 5`). Rust ignores SIGPIPE, so a write to the closed
//! pipe is an error, and `print!` panics on it. Here a closed stdout ends the command at
//! once, with nothing on stderr and the status a shell reports for a command SIGPIPE ended,
//! as `yes | head` does: the reader has what it wanted, and the checks still to come would
//! be made for no one. The servers never print here: stdout is MCP's in stdio mode.

use std::io::Write as _;

/// The exit status of a command whose stdout was closed: 128 + SIGPIPE (13).
pub(crate) const CLOSED_STDOUT: i32 = 141;

/// Writes `text` to stdout. A closed stdout ends the process quietly with
/// [`CLOSED_STDOUT`]; any other failure to write is said on stderr and ends it with 1.
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) else {
        return;
    };
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_STDOUT);
    }
    eprintln!("handinger-mcp: could not write to stdout: {error}");
    std::process::exit(1);
}

/// [`print`] of one line.
pub(crate) fn line(text: &str) {
    print(&format!("{text}\n"));
}
