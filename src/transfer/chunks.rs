//! Moving a file's bytes over a connection, used by both ends (server get, client put; server
//! put, client get).
//!
//! Disk I/O and hashing run on blocking threads one chunk at a time, pipelined one deep: while
//! the socket side writes (or reads) chunk N, a blocking task reads and hashes (or writes and
//! hashes) its neighbour, so disk, hash and socket overlap on different cores. No blocking
//! thread ever waits on the peer: each task only touches the disk and returns, so a client that
//! stops reading or sending holds no thread of the server's pool, only its own small state (two
//! chunk buffers, recycled rather than allocated and zeroed per chunk).

use crate::protocol::Refusal;
use std::fs::File;
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::hash_cache::Fingerprint;
use super::hashing::Hasher;
use super::writeback::Writeback;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{Frame, Message};

/// Bytes per data frame, at most (also capped by the peer's frame limit).
pub const CHUNK: usize = 1 << 20;

/// Why moving the bytes failed.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
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
    #[error("{0}")]
    Peer(Refusal),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<std::io::Error> for TransferError {
    fn from(e: std::io::Error) -> Self {
        TransferError::Connection(ConnectionError::Io(e))
    }
}

/// How a sender comes by the whole-file hash it announces at the end.
pub enum SendHash {
    /// Hashes the bytes as it reads them; the hasher has seen the bytes before the offset.
    Compute(Hasher),
    /// Known before reading (from the hash cache): the bytes are sent without being hashed.
    Known(String),
}

/// The reading side of a send: a file, the hash so far (none when it is known), and where the
/// next chunk starts.
struct ChunkReader {
    file: File,
    hasher: Option<Hasher>,
    pos: u64,
    left: u64,
    /// Blocks are compressed where it pays (`-z`, agreed with the peer).
    compress: bool,
}

/// A block read, as it goes on the wire: its channel, its payload, and how many bytes of the
/// file it stands for.
type Block = (u8, Vec<u8>, usize);

impl ChunkReader {
    /// Reads and hashes the next chunk into `buf` (a recycled buffer), compressed when asked
    /// and it pays. Runs on a blocking thread.
    fn next(mut self, mut buf: Vec<u8>, chunk: usize) -> (Self, Result<Block, TransferError>) {
        let want = usize::try_from(self.left).map_or(chunk, |l| l.min(chunk));
        buf.resize(want, 0);
        match self.file.read_exact_at(&mut buf, self.pos) {
            Ok(()) => {
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&buf);
                }
                self.pos += want as u64;
                self.left -= want as u64;
                let (channel, payload) = if self.compress {
                    super::compress::pack(buf)
                } else {
                    (0, buf)
                };
                (self, Ok((channel, payload, want)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                (self, Err(TransferError::FileChanged))
            }
            Err(e) => (self, Err(TransferError::Local(e))),
        }
    }
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, TransferError> {
    r.map_err(|e| TransferError::Local(std::io::Error::other(e)))
}

/// Sends `len` bytes of `file` from `offset` as data frames on channel 0 (or, with `compress`,
/// compressed where it pays on [`super::compress::COMPRESSED_CHANNEL`]) and returns the hash
/// of the whole file as sent (computed, or the one `hash` knows). `opened` is the file's
/// fingerprint when it was opened; if it differs once the last byte is sent, the file changed
/// meanwhile and the send fails rather than announce a hash of bytes no version of it held.
///
/// # Errors
/// [`TransferError::FileChanged`] if the file is shorter than announced or changed while it
/// was sent, local read errors, connection errors.
#[allow(clippy::too_many_arguments)] // Each is one fact about the send; a struct would only rename them.
pub async fn send_file<S>(
    conn: &mut Connection<S>,
    file: File,
    opened: Fingerprint,
    offset: u64,
    len: u64,
    hash: SendHash,
    chunk: usize,
    compress: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<String, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (hasher, known) = match hash {
        SendHash::Compute(hasher) => (Some(hasher), None),
        SendHash::Known(hash) => (None, Some(hash)),
    };
    let reader = ChunkReader {
        file,
        hasher,
        pos: offset,
        left: len,
        compress,
    };
    let finish = move |reader: ChunkReader| -> Result<String, TransferError> {
        let now = reader.file.metadata().map_err(TransferError::Local)?;
        if Fingerprint::of(&now) != opened {
            return Err(TransferError::FileChanged);
        }
        match (reader.hasher, known) {
            (Some(hasher), _) => Ok(hasher.finish_hex()),
            (None, Some(hash)) => Ok(hash),
            (None, None) => Err(TransferError::Protocol("no hash to send".into())),
        }
    };
    if len == 0 {
        conn.flush().await?;
        return finish(reader);
    }
    // The next chunk is read and hashed while this one is written; after the last, nothing is.
    let mut next = Some(tokio::task::spawn_blocking(move || {
        reader.next(Vec::new(), chunk)
    }));
    let mut spare = Vec::new();
    while let Some(task) = next.take() {
        let (reader, read) = joined(task.await)?;
        let (channel, buf, raw) = read?;
        let finished = if reader.left == 0 {
            Some(reader)
        } else {
            let recycled = std::mem::take(&mut spare);
            next = Some(tokio::task::spawn_blocking(move || {
                reader.next(recycled, chunk)
            }));
            None
        };
        conn.write_data(channel, &buf).await?;
        progress(raw as u64);
        if channel == 0 {
            spare = buf;
        }
        // One chunk at most between chances for a cancel (Ctrl-C, shutdown) to take effect:
        // when reads keep up, nothing else in this loop would yield.
        tokio::task::yield_now().await;
        if let Some(reader) = finished {
            conn.flush().await?;
            return finish(reader);
        }
    }
    Err(TransferError::Protocol(
        "the file reader stopped early".into(),
    ))
}

/// The writing side of a receive: a file (already positioned) and the hash so far.
struct ChunkWriter {
    file: File,
    hasher: Hasher,
}

impl ChunkWriter {
    /// Writes and hashes one chunk (decompressed first when it came compressed, announced as
    /// `size` bytes). Runs on a blocking thread.
    fn write(mut self, bytes: bytes::Bytes, size: Option<usize>) -> (Self, std::io::Result<()>) {
        use std::io::Write;
        let unpacked = match size {
            Some(size) => match super::compress::unpack(&bytes, size) {
                Ok(raw) => bytes::Bytes::from(raw),
                Err(e) => return (self, Err(e)),
            },
            None => bytes,
        };
        let written = self.file.write_all(&unpacked);
        if written.is_ok() {
            self.hasher.update(&unpacked);
        }
        (self, written)
    }
}

/// A chunk being written (and hashed) on a blocking thread; gives the writer back.
type PendingWrite = JoinHandle<(ChunkWriter, std::io::Result<()>)>;

/// Receives exactly `len` bytes of data frames into `file` (already positioned), feeding
/// `hasher`; returns the hex hash. With `compressed`, blocks may come compressed (see
/// [`super::compress`]); a block that claims more than is left is out of step. A local write failure does not desynchronise the stream: the
/// remaining data is read and dropped, then the failure is returned.
///
/// # Errors
/// Local write errors, the peer's error message, more data than announced, connection errors.
pub async fn receive_file<S>(
    conn: &mut Connection<S>,
    file: File,
    len: u64,
    hasher: Hasher,
    compressed: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<String, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut writeback = Writeback::of(&file, len);
    let mut writer = Some(ChunkWriter { file, hasher });
    let mut pending: Option<(PendingWrite, u64)> = None;
    let mut failed: Option<std::io::Error> = None;
    let mut left = len;
    let received: Result<(), TransferError> = async {
        while left > 0 {
            let (payload, size) = match conn.read_frame().await? {
                Some(Frame::Data {
                    channel: 0,
                    payload,
                }) => (payload, None),
                Some(Frame::Data {
                    channel: super::compress::COMPRESSED_CHANNEL,
                    payload,
                }) if compressed => {
                    let size = super::compress::announced(&payload, left)
                        .map_err(TransferError::Protocol)?;
                    (payload, Some(size))
                }
                Some(Frame::Data { channel, .. }) => {
                    return Err(TransferError::Protocol(format!(
                        "data on channel {channel}"
                    )));
                }
                Some(Frame::Message(body)) => {
                    return Err(match Message::parse(&body) {
                        Ok(Message::Error(refusal)) => TransferError::Peer(refusal),
                        Ok(other) => TransferError::Protocol(format!(
                            "'{}' arrived after {} of the {len} announced bytes",
                            other.kind(),
                            len - left
                        )),
                        Err(e) => TransferError::Protocol(e.to_string()),
                    });
                }
                None => return Err(ConnectionError::Closed.into()),
            };
            let n = size.map_or(payload.len(), |size| size) as u64;
            if n > left {
                return Err(TransferError::Protocol(format!(
                    "{n} bytes arrived where {left} were left of the {len} announced"
                )));
            }
            left -= n;
            progress(n);
            if let Some((task, n)) = pending.take() {
                let (w, result) = joined(task.await)?;
                writer = Some(w);
                match result {
                    Ok(()) => writeback.wrote(n).await,
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if failed.is_none()
                && let Some(w) = writer.take()
            {
                pending = Some((
                    tokio::task::spawn_blocking(move || w.write(payload, size)),
                    n,
                ));
            }
        }
        Ok(())
    }
    .await;
    // Whatever happened, the last write finishes before this returns: the caller may release
    // the partial's lock right after, and no stray write may land in it later.
    if let Some((task, _)) = pending.take() {
        let (w, result) = joined(task.await)?;
        writer = Some(w);
        if let Err(e) = result {
            failed.get_or_insert(e);
        }
    }
    let synced = writeback.finish().await;
    received?;
    if let Err(e) = synced {
        failed.get_or_insert(e);
    }
    if let Some(e) = failed {
        return Err(TransferError::Local(e));
    }
    // `write_all` on a std `File` buffers nothing: every byte is written, only the hash is left.
    writer
        .map(|w| w.hasher.finish_hex())
        .ok_or_else(|| TransferError::Protocol("the file writer was lost".into()))
}

#[cfg(test)]
mod tests;
