//! The two tasks of one connected stream: the socket's reads sent to the peer as data frames
//! (never more than the peer granted), and the peer's bytes written to the socket (each write
//! reported, so the mux can grant more). Neither ever waits on another stream.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};

use super::PIECE;
use super::mux::{Event, Outgoing};
use crate::protocol::{Message, StreamEof};

/// What the mux hands a stream's writing task.
pub(super) enum ToSocket {
    /// The peer's bytes.
    Data(bytes::Bytes),
    /// The peer will send no more: shut the socket's writing side.
    Eof,
}

/// Reads the socket and sends what it reads, within the credit; at the socket's end sends
/// `stream_eof`. Reports how it ended, and the bytes it sent.
pub(super) async fn read_socket(
    id: u32,
    mut socket: OwnedReadHalf,
    credit: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Outgoing>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut sent = 0u64;
    loop {
        let mut frame = Vec::with_capacity(4 + PIECE);
        frame.extend_from_slice(&id.to_be_bytes());
        frame.resize(4 + PIECE, 0);
        let n = match socket.read(&mut frame[4..]).await {
            Ok(0) => {
                let _ = out.send(Outgoing::Message(Message::StreamEof(StreamEof { id })));
                let _ = events.send(Event::ReadEnd { id, sent, ok: true });
                return;
            }
            Ok(n) => n,
            Err(_) => {
                let _ = events.send(Event::ReadEnd {
                    id,
                    sent,
                    ok: false,
                });
                return;
            }
        };
        frame.truncate(4 + n);
        // The peer's grant: wait for it (n is at most PIECE, far below the window).
        let Ok(permits) = credit.acquire_many(n as u32).await else {
            return; // the stream was closed
        };
        permits.forget();
        sent += n as u64;
        if out.send(Outgoing::Data(frame)).is_err() {
            return;
        }
    }
}

/// Writes the peer's bytes to the socket, reporting each write; at the peer's end shuts the
/// socket's writing side (a half-close, passed through).
pub(super) async fn write_socket(
    id: u32,
    mut socket: OwnedWriteHalf,
    greeting: Option<Vec<u8>>,
    mut from_peer: mpsc::UnboundedReceiver<ToSocket>,
    events: mpsc::UnboundedSender<Event>,
) {
    if let Some(greeting) = greeting
        && socket.write_all(&greeting).await.is_err()
    {
        let _ = events.send(Event::WriteEnd { id, ok: false });
        return;
    }
    while let Some(piece) = from_peer.recv().await {
        match piece {
            ToSocket::Data(bytes) => {
                if socket.write_all(&bytes).await.is_err() {
                    let _ = events.send(Event::WriteEnd { id, ok: false });
                    return;
                }
                let _ = events.send(Event::Wrote {
                    id,
                    bytes: bytes.len() as u32,
                });
            }
            ToSocket::Eof => {
                let ok = socket.shutdown().await.is_ok();
                let _ = events.send(Event::WriteEnd { id, ok });
                return;
            }
        }
    }
}
