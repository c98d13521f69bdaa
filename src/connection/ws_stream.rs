//! A WebSocket as the byte stream a [`Connection`](super::Connection) reads frames from: the
//! web door's transport, at either end (the server's door, the client's `wss://` servers). One
//! binary WebSocket message carries one ferry frame each way; reading concatenates messages
//! (frames are self-delimiting, so the framing code needs no change), writing cuts the byte
//! stream at frame boundaries.
//!
//! Written by hand because the WebSocket crates offer message streams, not byte streams, and
//! the cut must follow ferry's own length prefix. Generic over the message type, so the
//! server's (axum's) and the client's (tungstenite's) sockets share it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes written but not yet sent beyond which writes wait (a frame is at most this large).
const WRITE_HIGH_WATER: usize = 2 * 1024 * 1024;

/// Pings a peer may send while the pongs already owed to it cannot be sent (it does not read):
/// one more and it is cut. The WebSocket layer keeps at most one pong waiting and its send
/// buffer is bounded (the web door sets the bound), so memory is bounded either way; this is
/// what ends a connection that only pings and never reads, as the stall rule ends one that
/// never reads what it asked for.
pub const MAX_PINGS_UNANSWERED: u32 = 64;

/// A WebSocket library's message, as this stream needs to see it.
pub trait WsMessage: Sized {
    /// A binary message carrying `frame`.
    fn binary(frame: Bytes) -> Self;
    /// What arrived.
    fn into_incoming(self) -> Incoming;
}

/// A received WebSocket message, reduced to what a ferry stream does with it.
#[derive(Debug)]
pub enum Incoming {
    /// A binary message: one ferry frame.
    Binary(Bytes),
    /// A ping or pong, which the WebSocket layer answers itself.
    Control,
    /// A text message, which ferry never sends: an error.
    Text,
    /// The peer's close.
    Close,
}

/// A WebSocket carrying ferry frames, as a byte stream.
pub struct WsStream<S> {
    socket: S,
    /// The rest of the message being read.
    incoming: Bytes,
    /// Written bytes not yet sent as whole frames.
    outgoing: BytesMut,
    /// The peer sent its close (or the socket ended).
    ended: bool,
    /// Pings received in a row while the socket could not send what it owed the peer.
    pings_unanswered: u32,
}

impl<S, M, E> WsStream<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: WsMessage,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Wraps an open WebSocket.
    pub fn new(socket: S) -> WsStream<S> {
        WsStream {
            socket,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            ended: false,
            pings_unanswered: 0,
        }
    }

    /// The length of the first whole frame in `outgoing`, if it is all there.
    fn whole_frame(&self) -> Option<usize> {
        let prefix: [u8; 4] = self.outgoing.get(..4)?.try_into().ok()?;
        let len = 4 + u32::from_be_bytes(prefix) as usize;
        (self.outgoing.len() >= len).then_some(len)
    }

    /// Sends every whole frame written so far, one message each.
    fn send_whole_frames(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(len) = self.whole_frame() {
            ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(io::Error::other)?;
            let frame = self.outgoing.split_to(len).freeze();
            Pin::new(&mut self.socket)
                .start_send(M::binary(frame))
                .map_err(io::Error::other)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S, M, E> AsyncRead for WsStream<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: WsMessage,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.incoming.is_empty() {
                let n = self.incoming.len().min(buf.remaining());
                buf.put_slice(&self.incoming[..n]);
                self.incoming.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let next = ready!(Pin::new(&mut self.socket).poll_next(cx));
            match next.map(|m| m.map(M::into_incoming)) {
                Some(Ok(Incoming::Binary(bytes))) => self.incoming = bytes,
                // Pings are answered by the WebSocket layer itself; its pong waits in the send
                // buffer unless it can go out now.
                Some(Ok(Incoming::Control)) => match Pin::new(&mut self.socket).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.pings_unanswered = 0,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                    Poll::Pending => {
                        self.pings_unanswered += 1;
                        if self.pings_unanswered > MAX_PINGS_UNANSWERED {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the peer keeps sending WebSocket pings but does not read the answers",
                            )));
                        }
                    }
                },
                Some(Ok(Incoming::Text)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: ferry frames travel as binary messages",
                    )));
                }
                Some(Ok(Incoming::Close)) | None => self.ended = true,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl<S, M, E> AsyncWrite for WsStream<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: WsMessage,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.outgoing.len() >= WRITE_HIGH_WATER {
            ready!(self.send_whole_frames(cx))?;
            if self.outgoing.len() >= WRITE_HIGH_WATER {
                ready!(Pin::new(&mut self.socket).poll_flush(cx)).map_err(io::Error::other)?;
            }
        }
        self.outgoing.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.send_whole_frames(cx))?;
        Pin::new(&mut self.socket)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.socket)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}
