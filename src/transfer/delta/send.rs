//! The sender's side of a delta: one pass over the new file, cut as the receiver cut its base;
//! each chunk the base holds becomes a copy instruction, every other one literal bytes.
//!
//! The pass is cut in steps of about a megabyte, each one trip to a blocking thread that only
//! reads, cuts and hashes and then returns its frames: while the connection sends one step's
//! frames the next step runs, so disk, hashing and socket overlap as in a plain send
//! ([`crate::transfer::chunks::send_file`]), and a peer that stops reading holds no thread,
//! only the pass's own state.

use std::collections::HashMap;
use std::fs::File;

use tokio::io::{AsyncRead, AsyncWrite};

use super::chunker::{Chunker, Sizes};
use super::signature::{ChunkHash, RemoteSignature, chunk_hash};
use super::{COPY_BYTES, COPY_CHANNEL};
use crate::connection::Connection;
use crate::transfer::chunks::{CHUNK, SendHash, TransferError};
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::hashing::Hasher;

/// Copy instructions sent in one frame, at most.
const COPIES_PER_FRAME: usize = 4096;
/// Bytes of the new file one step cuts, about (and at most a largest chunk more).
const STEP: usize = CHUNK;

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

/// The pass over the new file, carried from one step to the next.
struct Pass {
    file: File,
    opened: Fingerprint,
    start: u64,
    chunker: Chunker,
    index: HashMap<ChunkHash, u64>,
    /// Hashes the bytes from `start` on (none when the hash is known).
    hasher: Option<Hasher>,
    known: Option<String>,
    frames: Frames,
}

/// What one step produced: frames to send, and at the end what the delta sent.
struct Step {
    pieces: Vec<Piece>,
    sent: Option<DeltaSent>,
}

impl Pass {
    /// One trip to a blocking thread: the next chunks cut, hashed and turned into frames; at
    /// the end the last frames, the file's fingerprint checked and the hash.
    fn step(mut self) -> (Self, Result<Step, TransferError>) {
        let step = self.cut();
        (self, step)
    }

    fn cut(&mut self) -> Result<Step, TransferError> {
        let Pass {
            file,
            start,
            chunker,
            index,
            hasher,
            frames,
            ..
        } = self;
        let start = *start;
        let cut = chunker.step(file, STEP, |offset, bytes| {
            let end = offset + bytes.len() as u64;
            if end <= start {
                return Ok(());
            }
            // The part from `start` on (a chunk may straddle a resumed prefix).
            let skip = usize::try_from(start.saturating_sub(offset)).unwrap_or(0);
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&bytes[skip..]);
            }
            // A chunk that straddles a resumed prefix goes as literal bytes: a copy is of whole
            // chunks.
            match index.get(&chunk_hash(bytes)) {
                Some(&chunk) if skip == 0 => frames.copy(chunk, bytes.len() as u64),
                _ => frames.literal(&bytes[skip..]),
            }
            Ok(())
        });
        match cut {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(TransferError::FileChanged);
            }
            Err(e) => return Err(TransferError::Local(e)),
        }
        if !self.chunker.done() {
            return Ok(Step {
                pieces: std::mem::take(&mut self.frames.ready),
                sent: None,
            });
        }
        self.frames.end_literal();
        self.frames.end_copies();
        let now = self.file.metadata().map_err(TransferError::Local)?;
        if Fingerprint::of(&now) != self.opened {
            return Err(TransferError::FileChanged);
        }
        let hash = match (self.hasher.take(), self.known.take()) {
            (Some(hasher), _) => hasher.finish_hex(),
            (None, Some(hash)) => hash,
            (None, None) => return Err(TransferError::Protocol("no hash to send".into())),
        };
        Ok(Step {
            pieces: std::mem::take(&mut self.frames.ready),
            sent: Some(DeltaSent {
                hash,
                matched: self.frames.matched,
            }),
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
    let (hasher, known) = match hash {
        SendHash::Compute(hasher) => (Some(hasher), None),
        SendHash::Known(hash) => (None, Some(hash)),
    };
    let pass = Pass {
        file,
        opened,
        start,
        chunker: Chunker::new(opened.size, Sizes::new(signature.avg)),
        index: HashMap::new(),
        hasher,
        known,
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
    };
    // The index is built on the first trip too (2^21 entries at most).
    let mut task = tokio::task::spawn_blocking(move || {
        let mut pass = pass;
        pass.index = signature.index();
        pass.step()
    });
    loop {
        let (pass, step) = task
            .await
            .map_err(|e| TransferError::Local(std::io::Error::other(e)))?;
        let Step { pieces, sent } = step?;
        match sent {
            None => {
                // The next step runs while this one's frames go out; a write that fails leaves
                // it to finish its read on its own.
                task = tokio::task::spawn_blocking(move || pass.step());
                write_pieces(conn, pieces, progress).await?;
            }
            Some(sent) => {
                write_pieces(conn, pieces, progress).await?;
                conn.flush().await?;
                return Ok(sent);
            }
        }
    }
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
