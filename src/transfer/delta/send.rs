//! The sender's side of a delta: one pass over the new file, cut as the receiver cut its base;
//! each chunk the base holds becomes a copy instruction, every other one literal bytes.
//!
//! The pass runs on a blocking thread and hands finished frames to the connection through a
//! short queue, so reading, hashing and sending overlap as in a plain send
//! ([`crate::transfer::chunks::send_file`]), and a peer that stops reading stops the pass.

use std::fs::File;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::chunker::{Sizes, chunk_file};
use super::signature::{RemoteSignature, chunk_hash};
use super::{COPY_BYTES, COPY_CHANNEL};
use crate::connection::Connection;
use crate::transfer::chunks::{SendHash, TransferError};
use crate::transfer::hash_cache::Fingerprint;

/// Copy instructions sent in one frame, at most.
const COPIES_PER_FRAME: usize = 4096;
/// Frames queued between the pass and the connection.
const QUEUE: usize = 4;

/// What a delta sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSent {
    /// The whole file's hash.
    pub hash: String,
    /// Bytes the receiver took from its base (the rest crossed the wire as literal data).
    pub matched: u64,
}

/// One frame to send, and how many bytes of the new file it stands for.
struct Piece {
    channel: u8,
    payload: Vec<u8>,
    covers: u64,
}

/// Gathers the pass's decisions into frames: adjacent literal bytes into frames of up to
/// `frame` bytes, copies of consecutive base chunks into one copy.
struct Frames {
    frame: usize,
    /// Literal frames are compressed where it pays (`-z`).
    compress: bool,
    literal: Vec<u8>,
    copies: Vec<u8>,
    copies_cover: u64,
    /// The copy still growing: the base's first chunk and how many.
    copy: Option<(u64, u64)>,
    matched: u64,
    queue: mpsc::Sender<Piece>,
}

impl Frames {
    fn send(&self, piece: Piece) -> std::io::Result<()> {
        self.queue
            .blocking_send(piece)
            .map_err(|_| std::io::Error::other("the connection stopped taking the delta"))
    }

    fn literal(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        self.end_copies()?;
        while !bytes.is_empty() {
            let room = self.frame - self.literal.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.literal.extend_from_slice(now);
            bytes = rest;
            if self.literal.len() == self.frame {
                self.end_literal()?;
            }
        }
        Ok(())
    }

    /// The base's chunk `index` comes next (`len` bytes of the new file).
    fn copy(&mut self, index: u64, len: u64) -> std::io::Result<()> {
        self.end_literal()?;
        self.matched += len;
        match &mut self.copy {
            Some((first, count)) if *first + *count == index => *count += 1,
            _ => {
                self.push_copy()?;
                self.copy = Some((index, 1));
            }
        }
        self.copies_cover += len;
        Ok(())
    }

    fn push_copy(&mut self) -> std::io::Result<()> {
        if let Some((first, count)) = self.copy.take() {
            self.copies.extend_from_slice(&first.to_le_bytes());
            self.copies.extend_from_slice(&count.to_le_bytes());
            if self.copies.len() >= COPIES_PER_FRAME * COPY_BYTES {
                self.flush_copies()?;
            }
        }
        Ok(())
    }

    fn flush_copies(&mut self) -> std::io::Result<()> {
        if self.copies.is_empty() {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.copies);
        let covers = std::mem::take(&mut self.copies_cover);
        self.send(Piece {
            channel: COPY_CHANNEL,
            payload,
            covers,
        })
    }

    fn end_copies(&mut self) -> std::io::Result<()> {
        self.push_copy()?;
        self.flush_copies()
    }

    fn end_literal(&mut self) -> std::io::Result<()> {
        if self.literal.is_empty() {
            return Ok(());
        }
        let payload = std::mem::replace(&mut self.literal, Vec::with_capacity(self.frame));
        let covers = payload.len() as u64;
        let (channel, payload) = if self.compress {
            crate::transfer::compress::pack(payload)
        } else {
            (0, payload)
        };
        self.send(Piece {
            channel,
            payload,
            covers,
        })
    }
}

/// Sends bytes `start..size` of `file` as a delta against `signature` (literal bytes on
/// channel 0, or compressed where it pays with `compress`; copies on channel [`COPY_CHANNEL`])
/// and returns the whole file's hash (computed
/// in the pass, or the one `hash` knows) and how much was matched. `opened` is the file's
/// fingerprint when it was opened: if it differs after the pass, the send fails as a plain
/// send does.
///
/// # Errors
/// [`TransferError::FileChanged`], local read errors, connection errors.
#[allow(clippy::too_many_arguments)] // One send's facts, as for `send_file`.
pub async fn send_delta<S>(
    conn: &mut Connection<S>,
    file: File,
    opened: Fingerprint,
    start: u64,
    signature: RemoteSignature,
    hash: SendHash,
    frame: usize,
    compress: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DeltaSent, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let size = opened.size;
    let (queue, mut pieces) = mpsc::channel(QUEUE);
    let pass = tokio::task::spawn_blocking(move || -> Result<DeltaSent, TransferError> {
        let index = signature.index();
        let (mut hasher, known) = match hash {
            SendHash::Compute(hasher) => (Some(hasher), None),
            SendHash::Known(hash) => (None, Some(hash)),
        };
        let mut frames = Frames {
            frame,
            compress,
            literal: Vec::with_capacity(frame),
            copies: Vec::new(),
            copies_cover: 0,
            copy: None,
            matched: 0,
            queue,
        };
        let cut = chunk_file(&file, size, Sizes::new(signature.avg), |offset, bytes| {
            let end = offset + bytes.len() as u64;
            if end <= start {
                return Ok(());
            }
            // The part from `start` on (a chunk may straddle a resumed prefix).
            let skip = usize::try_from(start.saturating_sub(offset)).unwrap_or(0);
            if let Some(hasher) = &mut hasher {
                hasher.update(&bytes[skip..]);
            }
            // A chunk that straddles a resumed prefix goes as literal bytes: a copy is of whole
            // chunks.
            match index.get(&chunk_hash(bytes)) {
                Some(&chunk) if skip == 0 => frames.copy(chunk, bytes.len() as u64),
                _ => frames.literal(&bytes[skip..]),
            }
        });
        match cut {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(TransferError::FileChanged);
            }
            Err(e) => return Err(TransferError::Local(e)),
        }
        frames.end_literal().map_err(TransferError::Local)?;
        frames.end_copies().map_err(TransferError::Local)?;
        let now = file.metadata().map_err(TransferError::Local)?;
        if Fingerprint::of(&now) != opened {
            return Err(TransferError::FileChanged);
        }
        let hash = match (hasher, known) {
            (Some(hasher), _) => hasher.finish_hex(),
            (None, Some(hash)) => hash,
            (None, None) => return Err(TransferError::Protocol("no hash to send".into())),
        };
        Ok(DeltaSent {
            hash,
            matched: frames.matched,
        })
    });
    let mut written: Result<(), TransferError> = Ok(());
    while let Some(piece) = pieces.recv().await {
        if let Err(e) = conn.write_data(piece.channel, &piece.payload).await {
            written = Err(e.into());
            break;
        }
        progress(piece.covers);
    }
    // Dropping the queue stops a pass the connection no longer takes.
    drop(pieces);
    let sent = pass
        .await
        .map_err(|e| TransferError::Local(std::io::Error::other(e)))?;
    written?;
    let sent = sent?;
    conn.flush().await?;
    Ok(sent)
}
