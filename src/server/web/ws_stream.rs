//! A WebSocket as the byte stream the session reads frames from: the browser's door onto the
//! same session code as TCP. One binary WebSocket message carries one ferry frame each way;
//! reading concatenates messages (frames are self-delimiting, so the framing code needs no
//! change), writing cuts the byte stream at frame boundaries.
//!
//! Written by hand because the WebSocket crates offer message streams, not byte streams, and
//! the cut must follow ferry's own length prefix.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes written but not yet sent beyond which writes wait (a frame is at most this large).
const WRITE_HIGH_WATER: usize = 2 * 1024 * 1024;

/// A WebSocket carrying ferry frames, as a byte stream.
pub(crate) struct WsStream {
    socket: WebSocket,
    /// The rest of the message being read.
    incoming: Bytes,
    /// Written bytes not yet sent as whole frames.
    outgoing: BytesMut,
    /// The peer sent its close (or the socket ended).
    ended: bool,
}

impl WsStream {
    pub(crate) fn new(socket: WebSocket) -> WsStream {
        WsStream {
            socket,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            ended: false,
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
                .start_send(Message::Binary(frame))
                .map_err(io::Error::other)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for WsStream {
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
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => self.incoming = bytes,
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: ferry frames travel as binary messages",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.ended = true,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl AsyncWrite for WsStream {
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
