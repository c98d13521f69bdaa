//! The receiver's side of a delta: the new version is built into the partial from literal
//! bytes and copies of the base, hashed as it is written, so the whole-file hash proves it
//! exactly as for a plain transfer.
//!
//! Every instruction is checked before it is followed: a copy must lie within the base and
//! within what is left of the announced size, literal bytes too; a peer that breaks either is
//! out of step and nothing beyond the partial is ever written. Each frame's work on the disk is
//! one trip to a blocking thread, made while the next frame is read (as in a plain receive,
//! [`crate::transfer::chunks`]): no thread ever waits on the peer.

use std::fs::File;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::build::{Builder, Copy, Piece};
use super::built::BuiltSignature;
use super::prefill::Prefill;
use super::signature::ChunkHash;
use super::{COPY_BYTES, COPY_CHANNEL, Signature};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ChunkHashing, Frame, Message};
use crate::transfer::chunks::TransferError;
use crate::transfer::compress::COMPRESSED_CHANNEL;
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::hashing::Hasher;
use crate::transfer::writeback::Writeback;

/// What a delta built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaReceived {
    /// The hash of the whole file as written (the bytes before the start included).
    pub hash: String,
    /// Bytes taken from the base.
    pub matched: u64,
    /// The new file's signature, derived as it was built (only for a delta from its first
    /// byte): kept, the next delta against this file need not read it to sign it.
    pub signature: Option<Signature>,
}

/// The file a delta is built against: opened once, its fingerprint then, and where its
/// chunks start (from its signature: copies name chunks).
pub struct Base {
    /// The base, open for reading.
    pub file: File,
    /// Its fingerprint when its signature was taken.
    pub fingerprint: Fingerprint,
    /// Where each chunk starts, and the end (see [`super::Signature::offsets`]).
    pub offsets: Vec<u64>,
    /// Each chunk's length and hash (its signature's entries).
    pub chunks: Vec<(u32, ChunkHash)>,
    /// The average it was cut at.
    pub avg: u32,
    /// How its chunks were hashed.
    pub hashing: ChunkHashing,
    /// The base being copied into the (empty) partial ahead of the delta, if it is.
    pub prefill: Option<Prefill>,
}

impl Base {
    /// `file` as a base whose signature (taken when its fingerprint was `fingerprint`) is
    /// `signature`.
    pub fn new(file: File, fingerprint: Fingerprint, signature: &Signature) -> Self {
        Base {
            file,
            fingerprint,
            offsets: signature.offsets(),
            chunks: signature.chunks.clone(),
            avg: signature.avg,
            hashing: signature.hashing,
            prefill: None,
        }
    }

    /// The same base, being copied into the partial ahead of the delta by `prefill`.
    #[must_use]
    pub fn filling(mut self, prefill: Option<Prefill>) -> Self {
        self.prefill = prefill;
        self
    }
}

/// The builder: idle, or on a blocking thread with the frame before (which covers
/// `in_flight` bytes of the new file); the partial synced in the background as it grows, as in
/// a plain receive ([`Writeback`]).
struct Disk {
    idle: Option<Builder>,
    busy: Option<JoinHandle<Builder>>,
    in_flight: u64,
    writeback: Writeback,
}

impl Disk {
    /// The builder, once its last trip is over.
    async fn builder(&mut self) -> Result<Builder, TransferError> {
        if let Some(task) = self.busy.take() {
            let builder = task
                .await
                .map_err(|e| TransferError::Local(std::io::Error::other(e)))?;
            if builder.failed.is_none() {
                self.writeback.wrote(self.in_flight).await;
            }
            return Ok(builder);
        }
        self.idle.take().ok_or_else(|| {
            TransferError::Local(std::io::Error::other("the delta's builder is gone"))
        })
    }

    /// Hands `piece` (`covers` bytes of the new file) to the builder once it is free (the
    /// frame before is written meanwhile).
    async fn apply(&mut self, piece: Piece, covers: u64) -> Result<(), TransferError> {
        let builder = self.builder().await?;
        self.in_flight = covers;
        self.busy = Some(tokio::task::spawn_blocking(move || builder.apply(piece)));
        Ok(())
    }
}

/// Reads a delta for `len` bytes from `start` on (literal frames on channel 0 — or, with
/// `compressed`, compressed on [`COMPRESSED_CHANNEL`] — and copies on [`COPY_CHANNEL`]) and
/// writes the file it describes into `out` (positioned at `start`), feeding `hasher` (which
/// has seen the bytes before). Returns the whole hash, the bytes matched and, for a delta from
/// the file's start, the new file's signature.
/// A local failure does not desynchronise the stream: the rest of the delta is read and
/// dropped, then the failure is returned; a base that changed meanwhile (another fingerprint
/// after the last copy, or shorter than a copy needs) is [`TransferError::FileChanged`].
///
/// # Errors
/// Local I/O, the base changed, the peer's error, an instruction out of bounds or more data
/// than announced ([`TransferError::Protocol`]), connection errors.
#[allow(clippy::too_many_arguments)] // One receive's facts, as for `receive_file`.
pub async fn receive_delta<S>(
    conn: &mut Connection<S>,
    out: File,
    base: Base,
    start: u64,
    len: u64,
    hasher: Hasher,
    compressed: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DeltaReceived, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fingerprint = base.fingerprint;
    let offsets = base.offsets;
    let built = (start == 0).then(|| (BuiltSignature::new(base.avg, base.hashing), base.chunks));
    let writeback = Writeback::of(&out, len);
    let mut disk = Disk {
        idle: Some(Builder {
            out,
            base: base.file,
            at: start,
            hasher,
            prefill: base.prefill,
            built,
            failed: None,
        }),
        busy: None,
        in_flight: 0,
        writeback,
    };
    let mut left = len;
    let mut matched = 0u64;
    let read: Result<(), TransferError> = async {
        while left > 0 {
            let (channel, payload) = match conn.read_frame().await? {
                Some(Frame::Data { channel, payload }) => (channel, payload),
                Some(Frame::Message(body)) => {
                    return Err(match Message::parse(&body) {
                        Ok(Message::Error(refusal)) => TransferError::Peer(refusal),
                        Ok(other) => TransferError::Protocol(format!(
                            "'{}' arrived after {} of the delta's {len} bytes",
                            other.kind(),
                            len - left
                        )),
                        Err(e) => TransferError::Protocol(e.to_string()),
                    });
                }
                None => return Err(ConnectionError::Closed.into()),
            };
            let (piece, covers) = match channel {
                0 => (Piece::Literal(payload.clone()), payload.len() as u64),
                COMPRESSED_CHANNEL if compressed => {
                    let size = crate::transfer::compress::announced(&payload, left)
                        .map_err(TransferError::Protocol)?;
                    (Piece::Compressed(payload, size), size as u64)
                }
                COPY_CHANNEL => {
                    let copies = copies_in(&payload, &offsets, left)?;
                    let covers = copies.iter().map(|copy| copy.len).sum::<u64>();
                    matched += covers;
                    (Piece::Copies(copies), covers)
                }
                other => {
                    return Err(TransferError::Protocol(format!(
                        "a delta's data on channel {other}"
                    )));
                }
            };
            if covers > left {
                return Err(TransferError::Protocol(format!(
                    "a delta covers {covers} bytes where {left} were left of the {len} announced"
                )));
            }
            left -= covers;
            progress(covers);
            disk.apply(piece, covers).await?;
        }
        Ok(())
    }
    .await;
    // The last frame's trip ends before anything is decided (the partial is not touched after).
    let builder = disk.builder().await?;
    let synced = disk.writeback.finish().await;
    // What was filled ahead is ended (and cut back to what the delta named) whatever happened.
    let (mut builder, changed) = tokio::task::spawn_blocking(move || {
        let mut builder = builder;
        builder.end_prefill();
        let changed = match builder.base.metadata() {
            Ok(now) => Fingerprint::of(&now) != fingerprint,
            Err(_) => true,
        };
        (builder, changed)
    })
    .await
    .map_err(|e| TransferError::Local(std::io::Error::other(e)))?;
    read?;
    if let Err(e) = synced {
        builder.failed.get_or_insert(e);
    }
    match builder.failed {
        Some(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(TransferError::FileChanged);
        }
        Some(e) => return Err(TransferError::Local(e)),
        None => {}
    }
    if changed {
        return Err(TransferError::FileChanged);
    }
    let signature = builder
        .built
        .and_then(|(built, _)| built.finish(start + len));
    Ok(DeltaReceived {
        hash: builder.hasher.finish_hex(),
        matched,
        signature,
    })
}

/// The copy instructions in one frame as byte ranges of the base, each checked: a whole number
/// of them, none empty, each within the base's chunks (`offsets`: where each starts, and the
/// end), all within the `left` bytes still to come.
fn copies_in(payload: &[u8], offsets: &[u64], left: u64) -> Result<Vec<Copy>, TransferError> {
    if payload.is_empty() || !payload.len().is_multiple_of(COPY_BYTES) {
        return Err(TransferError::Protocol(format!(
            "a frame of copies is {} bytes, not a multiple of {COPY_BYTES}",
            payload.len()
        )));
    }
    let chunks = offsets.len().saturating_sub(1) as u64;
    let mut total = 0u64;
    payload
        .chunks_exact(COPY_BYTES)
        .map(|copy| {
            let (first, count) = copy.split_at(8);
            let first = u64::from_le_bytes(first.try_into().unwrap_or_default());
            let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
            let end = first.checked_add(count).filter(|end| *end <= chunks);
            let range = end.and_then(|end| {
                let first = usize::try_from(first).ok()?;
                let end = usize::try_from(end).ok()?;
                let start = *offsets.get(first)?;
                let stop = *offsets.get(end)?;
                Some(Copy {
                    first,
                    count: end - first,
                    start,
                    len: stop - start,
                })
            });
            match range {
                Some(copy) if count > 0 && total + copy.len <= left => {
                    total += copy.len;
                    Ok(copy)
                }
                _ => Err(TransferError::Protocol(format!(
                    "a copy of {count} chunks from chunk {first} of a {chunks}-chunk base, with {left} bytes left"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(first: u64, count: u64) -> Vec<u8> {
        [first.to_le_bytes(), count.to_le_bytes()].concat()
    }

    #[test]
    fn copies_beyond_the_base_or_the_file_are_refused() {
        // Four chunks: 0..10, 10..30, 30..60, 60..100.
        let offsets = [0, 10, 30, 60, 100];
        assert_eq!(
            copies_in(&copy(1, 2), &offsets, 50).unwrap(),
            vec![Copy {
                first: 1,
                count: 2,
                start: 10,
                len: 50
            }]
        );
        assert!(
            copies_in(&copy(3, 2), &offsets, 500).is_err(),
            "past the base"
        );
        assert!(
            copies_in(&copy(u64::MAX, 2), &offsets, 500).is_err(),
            "overflow"
        );
        assert!(
            copies_in(&copy(0, 4), &offsets, 50).is_err(),
            "past the file"
        );
        assert!(copies_in(&copy(0, 0), &offsets, 50).is_err(), "empty");
        assert!(
            copies_in(&copy(0, 1)[..15], &offsets, 50).is_err(),
            "cut short"
        );
        let two = [copy(0, 2), copy(2, 1)].concat();
        assert!(
            copies_in(&two, &offsets, 50).is_err(),
            "together past the file"
        );
    }
}
