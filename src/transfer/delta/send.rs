//! The sender's side of a delta: the new file's chunks (its [`Cut`], made at the average the
//! receiver signed its base with, often while it signed) turned into frames: each chunk the
//! base holds becomes a copy instruction, every other one literal bytes.
//!
//! Each batch of the cut (about a megabyte of the file) is one trip to a blocking thread that
//! looks its chunks up and reads back the literal ones, then returns its frames: while the
//! connection sends one batch's frames the next one runs, so disk, cutting and socket overlap
//! as in a plain send ([`crate::transfer::chunks::send_file`]), and a peer that stops reading
//! holds no thread, only the pass's own state.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::cut::{Cut, CutChunk};
use super::signature::{ChunkHash, RemoteSignature};
use super::{COPY_BYTES, COPY_CHANNEL};
use crate::connection::Connection;
use crate::transfer::chunks::{SendHash, TransferError};
use crate::transfer::hash_cache::Fingerprint;

/// Copy instructions sent in one frame, at most.
const COPIES_PER_FRAME: usize = 4096;
/// Bytes of the file the copies held back may stand for before they go out anyway: the
/// receiver builds while the rest is cut, in pieces large enough to copy and hash on two
/// threads.
const COPIES_FLUSH: u64 = 8 << 20;

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
    /// Frames finished, for the connection to send.
    ready: Vec<Piece>,
}

impl Frames {
    fn send(&mut self, piece: Piece) {
        self.ready.push(piece);
    }

    fn literal(&mut self, mut bytes: &[u8]) {
        self.end_copies();
        while !bytes.is_empty() {
            let room = self.frame - self.literal.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.literal.extend_from_slice(now);
            bytes = rest;
            if self.literal.len() == self.frame {
                self.end_literal();
            }
        }
    }

    /// The base's chunk `index` comes next (`len` bytes of the new file).
    fn copy(&mut self, index: u64, len: u64) {
        self.end_literal();
        self.matched += len;
        match &mut self.copy {
            Some((first, count)) if *first + *count == index => *count += 1,
            _ => {
                self.push_copy();
                self.copy = Some((index, 1));
            }
        }
        self.copies_cover += len;
    }

    fn push_copy(&mut self) {
        if let Some((first, count)) = self.copy.take() {
            self.copies.extend_from_slice(&first.to_le_bytes());
            self.copies.extend_from_slice(&count.to_le_bytes());
            if self.copies.len() >= COPIES_PER_FRAME * COPY_BYTES {
                self.flush_copies();
            }
        }
    }

    fn flush_copies(&mut self) {
        if self.copies.is_empty() {
            return;
        }
        let payload = std::mem::take(&mut self.copies);
        let covers = std::mem::take(&mut self.copies_cover);
        self.send(Piece {
            channel: COPY_CHANNEL,
            payload,
            covers,
        })
    }

    fn end_copies(&mut self) {
        self.push_copy();
        self.flush_copies();
    }

    fn end_literal(&mut self) {
        if self.literal.is_empty() {
            return;
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

/// The pass over the cut, carried from one batch of chunks to the next.
struct Pass {
    file: File,
    start: u64,
    index: HashMap<ChunkHash, u64>,
    /// Literal bytes read back from the file.
    buffer: Vec<u8>,
    frames: Frames,
}

impl Pass {
    /// One trip to a blocking thread: a batch of chunks turned into frames, the ones the base
    /// lacks read back from the file (the cut read them once; the page cache usually still
    /// holds them).
    fn step(mut self, batch: &[CutChunk]) -> (Self, Result<Vec<Piece>, TransferError>) {
        let pieces = self.frames_of(batch);
        (self, pieces)
    }

    fn frames_of(&mut self, batch: &[CutChunk]) -> Result<Vec<Piece>, TransferError> {
        for chunk in batch {
            let len = u64::from(chunk.len);
            let end = chunk.offset + len;
            if end <= self.start {
                continue;
            }
            // A chunk that straddles a resumed prefix goes as literal bytes: a copy is of whole
            // chunks.
            let from = chunk.offset.max(self.start);
            match self.index.get(&chunk.hash) {
                Some(&base_chunk) if from == chunk.offset => self.frames.copy(base_chunk, len),
                _ => {
                    self.buffer
                        .resize(usize::try_from(end - from).unwrap_or(0), 0);
                    self.file
                        .read_exact_at(&mut self.buffer, from)
                        .map_err(read_error)?;
                    self.frames.literal(&self.buffer);
                }
            }
        }
        // Copies go out every few megabytes rather than when a literal ends them: the receiver
        // builds from its base while the rest of the file is still being cut.
        if self.frames.copies_cover >= COPIES_FLUSH {
            self.frames.end_copies();
        }
        Ok(std::mem::take(&mut self.frames.ready))
    }
}

/// A read that came up short means the file shrank: it changed while it was sent.
fn read_error(e: std::io::Error) -> TransferError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        TransferError::FileChanged
    } else {
        TransferError::Local(e)
    }
}

type Busy = JoinHandle<(Pass, Result<Vec<Piece>, TransferError>)>;

async fn joined(task: Busy) -> Result<(Pass, Vec<Piece>), TransferError> {
    let (pass, pieces) = task
        .await
        .map_err(|e| TransferError::Local(std::io::Error::other(e)))?;
    Ok((pass, pieces?))
}

/// Sends bytes `start..` of `file` as a delta against `signature`, from `cut` (the file's cut
/// at the signature's average, started with the whole file's hash unless `hash` knows it):
/// literal bytes on channel 0 (or compressed where it pays with `compress`), copies on channel
/// [`COPY_CHANNEL`]. Returns the whole file's hash and how much was matched. `opened` is the
/// file's fingerprint when it was opened: if it differs after the pass, the send fails as a
/// plain send does.
///
/// # Errors
/// [`TransferError::FileChanged`], local read errors, connection errors; a cut at another
/// average than the signature's is [`TransferError::Protocol`].
#[allow(clippy::too_many_arguments)] // One send's facts, as for `send_file`.
pub async fn send_delta<S>(
    conn: &mut Connection<S>,
    mut cut: Cut,
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
    if !cut.fits(signature.avg, signature.hashing) {
        return Err(TransferError::Protocol(format!(
            "the file was cut at an average of {} bytes ({:?}), the signature at {} ({:?})",
            cut.avg(),
            cut.hashing(),
            signature.avg,
            signature.hashing
        )));
    }
    let mut idle = Some(Pass {
        file,
        start,
        index: HashMap::new(),
        buffer: Vec::new(),
        frames: Frames {
            frame,
            compress,
            literal: Vec::with_capacity(frame),
            copies: Vec::new(),
            copies_cover: 0,
            copy: None,
            matched: 0,
            ready: Vec::new(),
        },
    });
    let mut busy: Option<Busy> = None;
    let mut signature = Some(signature);
    // Each batch is one trip to a blocking thread, made while the frames of the one before are
    // sent.
    while let Some(batch) = cut.next().await {
        let (pass, pieces) = match busy.take() {
            Some(task) => joined(task).await?,
            None => (pass_of(&mut idle)?, Vec::new()),
        };
        // The index is built on the first trip (2^21 entries at most).
        let signature = signature.take();
        busy = Some(tokio::task::spawn_blocking(move || {
            let mut pass = pass;
            if let Some(signature) = signature {
                pass.index = signature.index();
            }
            pass.step(&batch)
        }));
        write_pieces(conn, pieces, progress).await?;
    }
    let mut pass = match busy.take() {
        Some(task) => {
            let (pass, pieces) = joined(task).await?;
            write_pieces(conn, pieces, progress).await?;
            pass
        }
        None => pass_of(&mut idle)?,
    };
    let computed = cut.finish().await.map_err(read_error)?;
    pass.frames.end_literal();
    pass.frames.end_copies();
    let pieces = std::mem::take(&mut pass.frames.ready);
    write_pieces(conn, pieces, progress).await?;
    let now = pass.file.metadata().map_err(TransferError::Local)?;
    if Fingerprint::of(&now) != opened {
        return Err(TransferError::FileChanged);
    }
    let hash = match (hash, computed) {
        (SendHash::Known(hash), _) => hash,
        (SendHash::Compute(_), Some(hash)) => hash,
        (SendHash::Compute(_), None) => {
            return Err(TransferError::Protocol(
                "the file was cut without its hash".into(),
            ));
        }
    };
    conn.flush().await?;
    Ok(DeltaSent {
        hash,
        matched: pass.frames.matched,
    })
}

fn pass_of(idle: &mut Option<Pass>) -> Result<Pass, TransferError> {
    idle.take()
        .ok_or_else(|| TransferError::Local(std::io::Error::other("the delta's pass is gone")))
}

async fn write_pieces<S>(
    conn: &mut Connection<S>,
    pieces: Vec<Piece>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for piece in pieces {
        conn.write_data(piece.channel, &piece.payload).await?;
        progress(piece.covers);
    }
    Ok(())
}
