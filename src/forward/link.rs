//! The mux's connection I/O: frames read into the loop, and what the loop and the streams
//! queue written out (batched, flushed when the queue is empty).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mux::Outgoing;
use crate::connection::{Connection, ConnectionError, FrameReader, FrameWriter};
use crate::protocol::{FORWARD_CHANNEL, Frame};

pub(super) async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    frames: mpsc::Sender<Result<Option<Frame>, ConnectionError>>,
) {
    loop {
        let frame = reader.read_frame().await;
        let last = !matches!(frame, Ok(Some(_)));
        if frames.send(frame).await.is_err() || last {
            // Nothing more to read: wait for the loop to end the mux.
            return std::future::pending().await;
        }
    }
}

/// Writes what the loop and the streams queue, flushing when the queue is empty; once the
/// mux is done, what is still queued (a last goodbye) is written, within a bound.
pub(super) async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    done: &CancellationToken,
) {
    loop {
        let first = tokio::select! {
            item = out.recv() => item,
            () = done.cancelled() => {
                let drain = async {
                    while let Ok(item) = out.try_recv() {
                        if write_one(&mut writer, item).await.is_err() {
                            return;
                        }
                    }
                    let _ = writer.flush().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                return;
            }
        };
        let Some(first) = first else {
            return;
        };
        // A peer that stops reading holds this write; once the mux is done it gets a little
        // longer, then the connection is dropped as it is.
        let late = async {
            done.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let batch = async {
            let mut next = Some(first);
            while let Some(item) = next {
                write_one(&mut writer, item).await?;
                next = out.try_recv().ok();
            }
            writer.flush().await
        };
        let written = tokio::select! {
            written = batch => written.is_ok(),
            () = late => false,
        };
        if !written {
            // The connection is gone (the reader sees it too, and the loop ends), or the mux
            // ended while a peer would not read.
            return done.cancelled().await;
        }
    }
}

/// `first` and whatever else is queued now, then a flush.
pub(super) async fn write_queued<C: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<C>,
    first: Outgoing,
    out: &mut mpsc::UnboundedReceiver<Outgoing>,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(item) = next {
        write_one_to(conn, item).await?;
        next = out.try_recv().ok();
    }
    conn.flush().await
}

pub(super) async fn write_one_to<C: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<C>,
    item: Outgoing,
) -> std::io::Result<()> {
    match item {
        Outgoing::Message(message) => conn.write_message(&message).await,
        Outgoing::Data(payload) => conn.write_data(FORWARD_CHANNEL, &payload).await,
    }
}

async fn write_one<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    item: Outgoing,
) -> std::io::Result<()> {
    match item {
        Outgoing::Message(message) => writer.write_message(&message).await,
        Outgoing::Data(payload) => writer.write_data(FORWARD_CHANNEL, &payload).await,
    }
}
