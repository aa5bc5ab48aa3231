//! Encoding an outgoing message as JSON without ever holding all of its bytes.
//!
//! A tool result carries its answer twice (the text block and `outputText` in the
//! structured content), so encoding it into one buffer doubles what the message already
//! costs: a 1 MiB answer was 2 MiB of message plus 2 MiB of JSON at once (docs/limits.md,
//! "What a shape costs"). A message up to [`BUFFERED_UP_TO`] bytes is still encoded into one
//! buffer, as before (no extra work on the usual small answer); a larger one is encoded
//! twice on a blocking thread: once only to count its bytes (and to find an encoding error
//! before anything is sent), then into chunks of [`CHUNK`] bytes that the writer takes as
//! it sends them, at most [`CHUNKS_AHEAD`] waiting. The bytes are the same either way.

use std::io::{self, Write};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Messages up to this many bytes are encoded into one buffer.
pub(crate) const BUFFERED_UP_TO: usize = 64 * 1024;

/// The size of one chunk of a larger message.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Chunks encoded ahead of the writer: a slow reader holds the encoder, not the bytes.
pub(crate) const CHUNKS_AHEAD: usize = 2;

/// The message's JSON when it has at most [`BUFFERED_UP_TO`] bytes, `None` when it is
/// larger (then [`large`]).
pub(crate) fn small<T: Serialize>(message: &T) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let mut capped = Capped(Vec::new());
    match serde_json::to_writer(&mut capped, message) {
        Ok(()) => Ok(Some(capped.0)),
        Err(error) if error.is_io() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The number of bytes of the message's JSON, counted without keeping them.
fn encoded_len<T: Serialize>(message: &T) -> Result<u64, serde_json::Error> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, message)?;
    Ok(counter.0)
}

/// The message's JSON: its length, then its bytes in chunks as the receiver takes them,
/// both encoded on a blocking thread (a large encoding would stall the runtime). An encoding
/// error comes back before any chunk. Dropping the receiver stops the encoding (the client
/// went away).
pub(crate) async fn large<T: Serialize + Send + 'static>(
    message: T,
) -> Result<(u64, mpsc::Receiver<Bytes>), serde_json::Error> {
    let (sender, receiver) = mpsc::channel(CHUNKS_AHEAD);
    let (counted, length) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let length = encoded_len(&message);
        let encodable = length.is_ok();
        if counted.send(length).is_err() || !encodable {
            return;
        }
        let mut writer = ChunkSender {
            buffer: Vec::with_capacity(CHUNK),
            sender,
        };
        // An error here is the receiver gone: nobody is left to tell.
        if serde_json::to_writer(&mut writer, &message).is_ok() {
            let _ = writer.send();
        }
    });
    let length = length
        .await
        .map_err(|_| serde_json::Error::io(io::Error::other("the encoding thread stopped")))??;
    Ok((length, receiver))
}

/// A buffer that refuses to grow past [`BUFFERED_UP_TO`] bytes.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.0.len() + bytes.len() > BUFFERED_UP_TO {
            return Err(io::Error::other("larger than the buffered size"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes and drops them.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fills a chunk and hands it to the receiver, waiting (on its blocking thread) while
/// [`CHUNKS_AHEAD`] chunks are already waiting.
struct ChunkSender {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Bytes>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Bytes::from(full))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let written = bytes.len();
        while !bytes.is_empty() {
            let room = CHUNK - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = rest;
            if self.buffer.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_are_the_buffered_encoding() {
        let message = serde_json::json!({"text": "é\"x\n".repeat(100_000), "n": [1, 2, 3]});
        let whole = serde_json::to_vec(&message).unwrap();
        assert_eq!(small(&message).unwrap(), None);
        let (length, mut receiver) = large(message).await.unwrap();
        assert_eq!(length, whole.len() as u64);
        let mut streamed = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            assert!(chunk.len() <= CHUNK);
            streamed.extend_from_slice(&chunk);
        }
        assert_eq!(streamed, whole);
        assert_eq!(small(&"short").unwrap(), Some(b"\"short\"".to_vec()));
    }

    /// Counts the items the encoder has asked for: how far the encoding got.
    struct Progress {
        items: usize,
        done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    const ITEM: &str = "a thousand-byte item";

    impl Serialize for Progress {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = serializer.serialize_seq(Some(self.items))?;
            for _ in 0..self.items {
                self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                seq.serialize_element(&ITEM.repeat(50))?;
            }
            seq.end()
        }
    }

    /// The encoder never runs more than the chunks in the channel, the one it fills and the
    /// one it is handing over ahead of what the receiver took: a large message's JSON is
    /// never held whole (encoding it into one buffer would be all of it at the first chunk).
    #[tokio::test]
    async fn the_encoding_stays_a_few_chunks_ahead_of_the_receiver() {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let items = 1_000; // 1 MB of JSON, sixteen chunks
        let item_bytes = ITEM.len() * 50 + 3; // quotes and comma
        let message = Progress {
            items,
            done: done.clone(),
        };
        let (length, mut receiver) = large(message).await.unwrap();
        assert!(length > (items * ITEM.len() * 50) as u64);
        // Give the encoder time to run as far ahead as it may before taking anything.
        let mut seen = 0;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now = done.load(std::sync::atomic::Ordering::SeqCst);
            if now == seen && now > items {
                break;
            }
            seen = now;
        }
        let mut received = 0;
        while let Some(chunk) = receiver.recv().await {
            received += chunk.len();
            // The first `items` were the counting pass.
            let encoded = done.load(std::sync::atomic::Ordering::SeqCst) - items;
            let ahead_allowed = received + (CHUNKS_AHEAD + 2) * CHUNK + item_bytes;
            assert!(
                encoded * item_bytes <= ahead_allowed,
                "{encoded} items encoded when {received} bytes were taken"
            );
        }
        assert_eq!(received as u64, length);
    }
}
