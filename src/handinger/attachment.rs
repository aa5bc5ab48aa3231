//! An attachment as the API client sends it: a checked file (an open handle and the length
//! that was checked, or bytes in memory), named and typed. [`crate::files::upload`] makes
//! them; [`super::client`] streams them into the multipart body.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;

/// A checked file, ready to stream.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub media_type: String,
    pub source: UploadSource,
}

#[derive(Debug, Clone)]
pub enum UploadSource {
    /// An open local file and its length at check time.
    Disk {
        file: Arc<std::fs::File>,
        len: u64,
    },
    Memory(Bytes),
}

impl Upload {
    pub fn len(&self) -> u64 {
        match &self.source {
            UploadSource::Disk { len, .. } => *len,
            UploadSource::Memory(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh handle on the file positioned at its start, for one send attempt.
    pub fn reopen(file: &std::fs::File) -> std::io::Result<std::fs::File> {
        let mut clone = file.try_clone()?;
        clone.seek(SeekFrom::Start(0))?;
        Ok(clone)
    }
}

/// The first `len` bytes of `file`, as a body stream: a part's declared length must be
/// the length sent, so a file that grew is cut at `len` and one that shrank ends the stream
/// with an error (the request fails rather than going out malformed).
pub(crate) fn exact_stream(
    file: std::fs::File,
    len: u64,
    chunk: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    let reader = tokio::fs::File::from_std(file).take(len);
    let mut sent = 0u64;
    tokio_util::io::ReaderStream::with_capacity(reader, chunk)
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .filter_map(move |item| {
            let out = match item {
                Some(Ok(bytes)) => {
                    sent += bytes.len() as u64;
                    Some(Ok(bytes))
                }
                Some(Err(e)) => Some(Err(e)),
                None if sent < len => Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file shrank to {sent} of its {len} bytes while it was sent"),
                ))),
                None => None,
            };
            futures::future::ready(out)
        })
}
