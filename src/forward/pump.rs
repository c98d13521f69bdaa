//! The two tasks of one connected stream: the socket's reads sent to the peer as data frames
//! (never more than the peer granted), and the peer's bytes written to the socket (each write
//! reported, so the mux can grant more). Neither ever waits on another stream.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};

use super::mux::{Event, Outgoing};

/// What the mux hands a stream's writing task.
pub(super) enum ToSocket {
    /// The peer's bytes.
    Data(bytes::Bytes),
    /// The peer will send no more: shut the socket's writing side.
    Eof,
}

/// Reads the socket and sends what it reads, within the credit; at the socket's end tells
/// the loop (which sends `stream_eof`). Reports how it ended, and the bytes it sent.
pub(super) async fn read_socket(
    id: u32,
    piece: usize,
    mut socket: OwnedReadHalf,
    credit: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Outgoing>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut sent = 0u64;
    loop {
        // Read into the spare capacity (never zeroed first), behind the stream id.
        let mut frame = Vec::with_capacity(4 + piece);
        frame.extend_from_slice(&id.to_be_bytes());
        let n = match socket.read_buf(&mut frame).await {
            Ok(0) => {
                // The loop sends `stream_eof` (after these frames: they are queued already).
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

/// Writes what the mux could not write at once (the socket was full), reporting each write;
/// at the peer's end shuts the socket's writing side (a half-close, passed through). The mux
/// writes directly while nothing is queued here, so most bytes never pass through this task.
pub(super) async fn write_socket(
    id: u32,
    socket: Arc<OwnedWriteHalf>,
    greeting: Option<Vec<u8>>,
    mut from_peer: mpsc::UnboundedReceiver<ToSocket>,
    events: mpsc::UnboundedSender<Event>,
) {
    if let Some(greeting) = greeting {
        if write_all(&socket, &greeting).await.is_err() {
            let _ = events.send(Event::WriteEnd { id, ok: false });
            return;
        }
        let _ = events.send(Event::Greeted {
            id,
            bytes: greeting.len() as u32,
        });
    }
    while let Some(piece) = from_peer.recv().await {
        match piece {
            ToSocket::Data(bytes) => {
                if write_all(&socket, &bytes).await.is_err() {
                    let _ = events.send(Event::WriteEnd { id, ok: false });
                    return;
                }
                let _ = events.send(Event::Wrote {
                    id,
                    bytes: bytes.len() as u32,
                    queued: true,
                });
            }
            ToSocket::Eof => {
                let ok = socket2::SockRef::from(socket.as_ref().as_ref())
                    .shutdown(std::net::Shutdown::Write)
                    .is_ok();
                let _ = events.send(Event::WriteEnd { id, ok });
                return;
            }
        }
    }
}

/// All of `bytes` into a socket shared with the mux (which writes only while this is idle).
async fn write_all(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    let stream: &tokio::net::TcpStream = socket.as_ref();
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
