//! What a child process writes to stderr, collected as it arrives: its logs go through a
//! pipe, and tests read what has come so far (or all of it, once the reader has ended).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// Everything read from the pipe so far.
pub type Log = Arc<Mutex<String>>;

/// Copies `pipe` into the returned log until it closes; the task ends with the pipe.
pub fn collect(mut pipe: impl AsyncRead + Unpin + Send + 'static) -> (Log, JoinHandle<()>) {
    let log = Log::default();
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (log, reader)
}
