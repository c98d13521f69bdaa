//! `Connection`: a stream (TLS or plaintext, or an in-memory pipe in tests) plus its framing.
//!
//! This is the only code that reads or writes frames on a stream; everything above it sees
//! [`Message`]s and data chunks. It buffers partial frames and splits merged ones (the seed's
//! 粘包), refuses oversized frames before allocating, and tells a clean end of stream (between
//! frames) from a peer that vanished mid-frame.

mod batch;
pub mod ws_stream;

pub use batch::FrameBatch;

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::protocol::frame::{self, DATA_HEADER_LEN, DEFAULT_MAX_FRAME, Frame, FrameError};
use crate::protocol::{ErrorCode, Message, MessageError};

/// Any bidirectional byte stream a connection can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A type-erased stream, so TLS and plaintext sessions share one code path.
pub type BoxedStream = Box<dyn AsyncStream>;

/// How much the read buffer grows by when it is full and no frame length is known yet. Small,
/// because idle connections keep their buffer: 10,000 of them must stay cheap.
const READ_RESERVE: usize = 4 * 1024;
/// A read buffer left larger than this by a big frame is given back once it is empty, so a
/// session that sent one large frame and then idles costs what an idle session costs.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Why reading or writing frames failed.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("invalid frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer closed the connection in the middle of a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error("the peer closed the connection")]
    Closed,
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("unexpected data frame on channel {0} where a control message was expected")]
    UnexpectedData(u8),
}

impl ConnectionError {
    /// Whether the connection can go on after this error (the framing is still in step).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ConnectionError::Message(_) | ConnectionError::UnexpectedData(_)
        )
    }

    /// The code to report this error to the peer with, where there is one to report.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConnectionError::Frame(FrameError::TooLarge { .. }) => ErrorCode::FrameTooLarge,
            ConnectionError::Frame(_) => ErrorCode::BadFrame,
            ConnectionError::Message(e) => e.code(),
            ConnectionError::UnexpectedData(_) => ErrorCode::UnexpectedMessage,
            _ => ErrorCode::Internal,
        }
    }
}

/// The reading half: a stream and the bytes read from it that do not yet form a whole frame.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_frame` bytes from `inner`.
    pub fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Changes the largest frame accepted from now on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// Bytes the read buffer holds allocated (for tests of idle cost).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames.
    ///
    /// Cancel-safe: dropping the future loses no bytes, they stay in the buffer.
    ///
    /// # Errors
    /// I/O errors, invalid frames, and [`ConnectionError::Truncated`] when the stream ends
    /// inside a frame.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ConnectionError> {
        loop {
            if let Some(frame) = frame::decode(&mut self.buf, self.max_frame)? {
                return Ok(Some(frame));
            }
            if self.buf.is_empty()
                && (self.buf.capacity() > SHRINK_ABOVE || self.buf.capacity() == 0)
            {
                // A fresh small buffer: `reserve` would reclaim the big one a past frame used.
                self.buf = BytesMut::with_capacity(READ_RESERVE);
            } else if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(READ_RESERVE);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::Truncated {
                        buffered: self.buf.len(),
                    })
                };
            }
        }
    }

    /// Whether a whole frame is already buffered, so the next read will not wait on the peer.
    /// (An unreadable length counts as whole: reading it fails at once.)
    pub fn has_whole_frame(&self) -> bool {
        match peek_frame_len(&self.buf) {
            Some(len) => self.buf.len() >= 4 + len,
            None => false,
        }
    }

    /// The payload length of the data frame at the head of the buffer, if a whole one is there.
    pub fn buffered_data_len(&self) -> Option<usize> {
        let len = peek_frame_len(&self.buf)?;
        (self.has_whole_frame() && len >= 2 && self.buf.get(4) == Some(&frame::KIND_DATA))
            .then(|| len - 2)
    }

    /// Waits until a whole frame is buffered, without taking it (then [`FrameReader::read_frame`]
    /// returns it at once); also returns when the stream ends or announces a frame longer
    /// than allowed, which the next read reports. Cancel-safe, as `read_frame` is.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn wait_whole_frame(&mut self) -> io::Result<()> {
        loop {
            if self.has_whole_frame() {
                return Ok(());
            }
            match peek_frame_len(&self.buf) {
                Some(len) if len > self.max_frame => return Ok(()),
                Some(len) => self.buf.reserve(4 + len - self.buf.len()),
                None if self.buf.len() == self.buf.capacity() => self.buf.reserve(READ_RESERVE),
                None => {}
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(());
            }
        }
    }

    /// Reads the next frame, which must be a control message.
    ///
    /// # Errors
    /// As [`FrameReader::read_frame`], plus [`ConnectionError::Closed`] at end of stream and the
    /// recoverable [`ConnectionError::Message`] / [`ConnectionError::UnexpectedData`].
    pub async fn read_message(&mut self) -> Result<Message, ConnectionError> {
        match self.read_frame().await? {
            None => Err(ConnectionError::Closed),
            Some(Frame::Message(body)) => Ok(Message::parse(&body)?),
            Some(Frame::Data { channel, .. }) => Err(ConnectionError::UnexpectedData(channel)),
        }
    }
}

/// The length field of the frame at the start of `buf`, if its four bytes are there.
fn peek_frame_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(prefix)).ok()
}

/// The header of a message frame carrying `body`, if the peer accepts a frame that large.
fn message_header_for(body: &[u8], peer_max_frame: usize) -> io::Result<[u8; frame::HEADER_LEN]> {
    if body.len() + 1 > peer_max_frame {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes exceeds the peer's limit", body.len()),
        ));
    }
    frame::message_header(body.len()).map_err(io::Error::other)
}

/// The header of a data frame carrying `payload`, if the peer accepts a frame that large.
fn data_header_for(
    channel: u8,
    payload: &[u8],
    peer_max_frame: usize,
) -> io::Result<[u8; DATA_HEADER_LEN]> {
    if payload.len() > peer_max_frame - (DATA_HEADER_LEN - 4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "data chunk of {} bytes exceeds the peer's limit",
                payload.len()
            ),
        ));
    }
    frame::data_header(channel, payload.len()).map_err(io::Error::other)
}

/// The writing half. Control messages are written whole in one call (one TLS record, one
/// syscall); data frames as a small header and the caller's slice, without copying the slice.
pub struct FrameWriter<W> {
    inner: W,
    peer_max_frame: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes frames of at most `peer_max_frame` bytes to `inner`.
    pub fn new(inner: W, peer_max_frame: usize) -> Self {
        FrameWriter {
            inner,
            peer_max_frame,
        }
    }

    /// Changes the largest frame the peer accepts (learnt from its `welcome`).
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.peer_max_frame = max_frame;
    }

    /// The largest data payload one frame may carry to this peer.
    pub fn max_data_payload(&self) -> usize {
        self.peer_max_frame - (DATA_HEADER_LEN - 4)
    }

    /// Writes one control message and flushes it.
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` if the message is larger than the peer accepts.
    pub async fn write_message(&mut self, message: &Message) -> io::Result<()> {
        let body = message.to_json();
        let header = message_header_for(&body, self.peer_max_frame)?;
        let mut wire = Vec::with_capacity(header.len() + body.len());
        wire.extend_from_slice(&header);
        wire.extend_from_slice(&body);
        self.inner.write_all(&wire).await?;
        self.inner.flush().await
    }

    /// Writes one data frame; the caller flushes when a burst ends.
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` if `payload` exceeds [`FrameWriter::max_data_payload`].
    pub async fn write_data(&mut self, channel: u8, payload: &[u8]) -> io::Result<()> {
        let header = data_header_for(channel, payload, self.peer_max_frame)?;
        if !self.inner.is_write_vectored() {
            self.inner.write_all(&header).await?;
            return self.inner.write_all(payload).await;
        }
        // Header and payload in one vectored write: over TLS they share records, where two
        // writes would send the 6-byte header as a record (and a syscall) of its own.
        let mut slices = [io::IoSlice::new(&header), io::IoSlice::new(payload)];
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let n = self.inner.write_vectored(slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            io::IoSlice::advance_slices(&mut slices, n);
        }
        Ok(())
    }

    /// Writes a frame encoded earlier (one encoding, many recipients); the caller flushes.
    pub async fn write_encoded(&mut self, frame: &[u8]) -> io::Result<()> {
        self.inner.write_all(frame).await
    }

    /// Flushes buffered bytes (TLS records) to the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    /// Sends end-of-stream to the peer (TCP FIN, or TLS close_notify then FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Both directions of one framed stream.
pub struct Connection<S> {
    reader: FrameReader<S>,
    peer_max_frame: usize,
    /// A write began and has not finished: a future writing was dropped part-way (a request
    /// ended from outside), and the peer may be owed the rest of a frame.
    mid_frame: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Frames `stream` with the default limits until the handshake sets real ones.
    pub fn new(stream: S) -> Self {
        Connection {
            reader: FrameReader::new(stream, DEFAULT_MAX_FRAME),
            peer_max_frame: DEFAULT_MAX_FRAME,
            mid_frame: false,
        }
    }

    /// Sets the largest frame this end accepts.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.reader.set_max_frame(max_frame);
    }

    /// Sets the largest frame the peer accepts.
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.peer_max_frame = max_frame;
    }

    /// The largest data payload one frame may carry to the peer.
    pub fn max_data_payload(&self) -> usize {
        self.peer_max_frame - (DATA_HEADER_LEN - 4)
    }

    /// See [`FrameReader::read_frame`].
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ConnectionError> {
        self.reader.read_frame().await
    }

    /// See [`FrameReader::read_message`].
    pub async fn read_message(&mut self) -> Result<Message, ConnectionError> {
        self.reader.read_message().await
    }

    /// See [`FrameReader::has_whole_frame`].
    pub fn has_whole_frame(&self) -> bool {
        self.reader.has_whole_frame()
    }

    /// See [`FrameReader::buffered_data_len`].
    pub fn buffered_data_len(&self) -> Option<usize> {
        self.reader.buffered_data_len()
    }

    /// See [`FrameReader::wait_whole_frame`].
    ///
    /// # Errors
    /// I/O errors.
    pub async fn wait_whole_frame(&mut self) -> io::Result<()> {
        self.reader.wait_whole_frame().await
    }

    /// Whether every frame begun has been written whole: another frame (a `goodbye`) may
    /// follow. `false` after a write was dropped part-way.
    pub fn at_frame_boundary(&self) -> bool {
        !self.mid_frame
    }

    /// See [`FrameWriter::write_message`].
    pub async fn write_message(&mut self, message: &Message) -> io::Result<()> {
        self.mid_frame = true;
        let written = self.writer().write_message(message).await;
        self.mid_frame = false;
        written
    }

    /// See [`FrameWriter::write_data`].
    pub async fn write_data(&mut self, channel: u8, payload: &[u8]) -> io::Result<()> {
        self.mid_frame = true;
        let written = self.writer().write_data(channel, payload).await;
        self.mid_frame = false;
        written
    }

    /// See [`FrameWriter::write_encoded`].
    pub async fn write_encoded(&mut self, frame: &[u8]) -> io::Result<()> {
        self.mid_frame = true;
        let written = self.writer().write_encoded(frame).await;
        self.mid_frame = false;
        written
    }

    /// Flushes buffered bytes to the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.writer().flush().await
    }

    /// An empty batch of frames for this peer (see [`FrameBatch`]).
    pub fn batch(&self) -> FrameBatch {
        FrameBatch::new(self.peer_max_frame)
    }

    /// Writes `batch` in one call and flushes.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn write_batch(&mut self, batch: FrameBatch) -> io::Result<()> {
        self.mid_frame = true;
        let written = self.writer().write_encoded(batch.bytes()).await;
        self.mid_frame = false;
        written?;
        self.writer().flush().await
    }

    /// Flushes and closes the sending direction.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.writer().shutdown().await
    }

    /// The stream itself, for tests that must write bytes no well-behaved peer would.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.reader.inner
    }

    /// The stream, once no frame is partly buffered (e.g. right after a handshake).
    ///
    /// # Panics
    /// If read bytes are still buffered: they would be lost.
    pub fn into_inner(self) -> S {
        assert!(self.reader.buf.is_empty(), "buffered bytes would be lost");
        self.reader.inner
    }

    fn writer(&mut self) -> FrameWriter<&mut S> {
        FrameWriter::new(&mut self.reader.inner, self.peer_max_frame)
    }

    /// Splits into halves that can be driven from two tasks (chat, exec streams). Bytes already
    /// buffered stay with the reader.
    pub fn split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
        let FrameReader {
            inner,
            buf,
            max_frame,
        } = self.reader;
        let (read, write) = tokio::io::split(inner);
        (
            FrameReader {
                inner: read,
                buf,
                max_frame,
            },
            FrameWriter::new(write, self.peer_max_frame),
        )
    }
}

#[cfg(test)]
mod tests;
