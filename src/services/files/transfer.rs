//! Moving a file's bytes over a connection, used by both ends (server get, client put; server
//! put, client get).
//!
//! Disk I/O and hashing run on a blocking thread, handed to and from the socket through a
//! queue of a few chunks, so reading, hashing and sending overlap on different cores while
//! memory stays constant (a few MiB, whatever the file size). Chunk buffers are recycled
//! rather than allocated and zeroed per chunk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::hashing::Hasher;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Frame, Message};

/// Bytes per data frame, at most (also capped by the peer's frame limit).
pub const CHUNK: usize = 1 << 20;
/// Chunks in flight between the disk thread and the socket.
const QUEUE: usize = 4;

/// Why moving the bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The local file could not be read or written (disk full, permissions).
    #[error("{0}")]
    Local(std::io::Error),
    /// The file changed size while it was being sent.
    #[error("the file changed while it was being sent")]
    FileChanged,
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The peer reported an error in the middle of the data.
    #[error("{message}")]
    Peer { code: ErrorCode, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<std::io::Error> for TransferError {
    fn from(e: std::io::Error) -> Self {
        TransferError::Connection(ConnectionError::Io(e))
    }
}

/// Sends `len` bytes of `file` from `offset` as data frames on channel 0. `hasher` has seen
/// the first `offset` bytes; returns the hex hash of the whole file as sent.
///
/// # Errors
/// [`TransferError::FileChanged`] if the file is shorter than announced, local read errors,
/// connection errors.
pub async fn send_file<S>(
    conn: &mut Connection<S>,
    mut file: File,
    offset: u64,
    len: u64,
    hasher: Hasher,
    chunk: usize,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<String, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (full_tx, mut full_rx) = mpsc::channel::<Bytes>(QUEUE);
    let (empty_tx, mut empty_rx) = mpsc::channel::<Vec<u8>>(QUEUE + 1);
    let reader = tokio::task::spawn_blocking(move || -> Result<String, TransferError> {
        let mut hasher = hasher;
        file.seek(SeekFrom::Start(offset))
            .map_err(TransferError::Local)?;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(chunk, |l| l.min(chunk));
            let mut buf = empty_rx.try_recv().unwrap_or_default();
            buf.resize(want, 0);
            if let Err(e) = file.read_exact(&mut buf) {
                return Err(match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => TransferError::FileChanged,
                    _ => TransferError::Local(e),
                });
            }
            hasher.update(&buf);
            left -= want as u64;
            if full_tx.blocking_send(Bytes::from(buf)).is_err() {
                return Err(TransferError::Protocol(
                    "the connection side stopped".into(),
                ));
            }
        }
        Ok(hasher.finish_hex())
    });
    while let Some(bytes) = full_rx.recv().await {
        conn.write_data(0, &bytes).await?;
        progress(bytes.len() as u64);
        if let Ok(buf) = bytes.try_into_mut() {
            let _ = empty_tx.try_send(buf.into());
        }
    }
    conn.flush().await?;
    reader
        .await
        .map_err(|e| TransferError::Local(std::io::Error::other(e)))?
}

/// Receives exactly `len` bytes of data frames into `file` (already positioned), feeding
/// `hasher`; returns the hex hash. A local write failure does not desynchronise the stream: the
/// remaining data is read and dropped, then the failure is returned.
///
/// # Errors
/// Local write errors, the peer's error message, more data than announced, connection errors.
pub async fn receive_file<S>(
    conn: &mut Connection<S>,
    file: File,
    len: u64,
    hasher: Hasher,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<String, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    // If this future is dropped (the transfer was cancelled), the writer stops at once instead
    // of draining its queue into the file after its caller is gone.
    let cancelled = CancelOnDrop::default();
    let stop = std::sync::Arc::clone(&cancelled.0);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let (mut file, mut hasher) = (file, hasher);
        while let Some(bytes) = rx.blocking_recv() {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::other("cancelled"));
            }
            file.write_all(&bytes)?;
            hasher.update(&bytes);
        }
        file.flush()?;
        Ok(hasher.finish_hex())
    });
    let received = async {
        let mut left = len;
        let mut writing = true;
        while left > 0 {
            match conn.read_frame().await? {
                Some(Frame::Data {
                    channel: 0,
                    payload,
                }) => {
                    let n = payload.len() as u64;
                    if n > left {
                        return Err(TransferError::Protocol(format!(
                            "{n} bytes arrived where {left} were left"
                        )));
                    }
                    left -= n;
                    progress(n);
                    if writing && tx.send(payload).await.is_err() {
                        writing = false; // the writer failed; keep the stream in step
                    }
                }
                Some(Frame::Data { channel, .. }) => {
                    return Err(TransferError::Protocol(format!(
                        "data on channel {channel}"
                    )));
                }
                Some(Frame::Message(body)) => {
                    return Err(match Message::parse(&body) {
                        Ok(Message::Error { code, message, .. }) => {
                            TransferError::Peer { code, message }
                        }
                        Ok(other) => TransferError::Protocol(format!(
                            "'{}' in the middle of the data",
                            other.kind()
                        )),
                        Err(e) => TransferError::Protocol(e.to_string()),
                    });
                }
                None => return Err(ConnectionError::Closed.into()),
            }
        }
        Ok(())
    }
    .await;
    // Whatever happened, the writer finishes before this returns: the caller may release the
    // partial's lock right after, and no stray write may land in it later.
    drop(tx);
    let written = writer
        .await
        .map_err(|e| TransferError::Local(std::io::Error::other(e)))?
        .map_err(TransferError::Local);
    received?;
    drop(cancelled);
    written
}

/// Sets its flag when dropped.
#[derive(Default)]
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
