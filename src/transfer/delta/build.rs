//! The disk side of a delta's receiver: the new version written into the partial from literal
//! bytes and copies of the base, and hashed as it is written, so the whole-file hash proves
//! it exactly as for a plain transfer.
//!
//! When the base was copied into the partial ahead of the delta ([`Prefill`]), a copy of base
//! bytes to the very offset they came from is already written: it is only read back and
//! hashed. Every other write first makes sure the filling can no longer reach its range.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::built::BuiltSignature;
use super::prefill::Prefill;
use super::signature::ChunkHash;
use crate::transfer::hash_beside::hashing_beside;
use crate::transfer::hashing::Hasher;

/// Bytes of the base copied at a time.
const COPY_BUFFER: usize = 1 << 20;
/// Bytes a piece of copies must hold to be hashed on a second thread (one thread started per
/// such piece costs tens of microseconds; hashing a megabyte, hundreds).
const HASH_BESIDE_FROM: u64 = 2 * COPY_BUFFER as u64;
/// Bytes copied at a time when hashed beside: small enough that the hash keeps a block behind.
const BESIDE_BLOCK: usize = 256 << 10;

/// One frame of the delta, checked.
pub(super) enum Piece {
    Literal(bytes::Bytes),
    /// A compressed literal block and the size it announced.
    Compressed(bytes::Bytes, usize),
    Copies(Vec<Copy>),
}

/// One copy instruction, checked: the base's chunks `first..first + count`, which are its bytes
/// `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Copy {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) start: u64,
    pub(super) len: u64,
}

/// The partial, the base and the hash so far, and the first local failure (after which the
/// rest of the delta is read and dropped).
pub(super) struct Builder {
    pub(super) out: File,
    pub(super) base: File,
    /// Where the next byte of the new file goes.
    pub(super) at: u64,
    pub(super) hasher: Hasher,
    /// The base being copied into the partial ahead of the delta, if it is.
    pub(super) prefill: Option<Prefill>,
    /// The new file's signature so far, and the base's entries it takes copies from.
    pub(super) built: Option<(BuiltSignature, Vec<(u32, ChunkHash)>)>,
    pub(super) failed: Option<std::io::Error>,
}

/// Where a block of a copy comes from: read from the base and written, or already in the
/// partial (filled ahead) and only read back to be hashed.
#[derive(Clone, Copy)]
enum Source {
    Base(u64),
    InPlace,
}

impl Builder {
    /// One trip to a blocking thread.
    pub(super) fn apply(mut self, piece: Piece) -> Self {
        if self.failed.is_none()
            && let Err(e) = self.write(piece)
        {
            self.failed = Some(e);
        }
        self
    }

    fn write(&mut self, piece: Piece) -> std::io::Result<()> {
        match piece {
            Piece::Literal(bytes) => self.literal(&bytes),
            Piece::Compressed(bytes, size) => {
                self.literal(&crate::transfer::compress::unpack(&bytes, size)?)
            }
            Piece::Copies(copies) => self.copy(&copies),
        }
    }

    /// Makes sure the filling ahead never writes into the next `len` bytes.
    fn clear(&mut self, len: u64) {
        if let Some(prefill) = &mut self.prefill {
            prefill.clear(self.at + len);
        }
    }

    /// Writes literal bytes as they arrived (no copy of them is made).
    fn literal(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        self.clear(len);
        self.out.write_all_at(bytes, self.at)?;
        self.at += len;
        self.hasher.update(bytes);
        if let Some((built, _)) = &mut self.built {
            built.literal(bytes);
        }
        Ok(())
    }

    /// Where the copy that comes next (at `self.at`) takes its bytes from.
    fn source_of(&mut self, copy: &Copy) -> Source {
        let end = self.at + copy.len;
        let in_place = copy.start == self.at
            && self
                .prefill
                .as_ref()
                .is_some_and(|prefill| prefill.wait_for(end) >= end);
        if in_place {
            return Source::InPlace;
        }
        self.clear(copy.len);
        Source::Base(copy.start)
    }

    /// Copies ranges of the base into the file (or reads back those already in place); a
    /// large piece is hashed on a second thread beside the copying ([`hashing_beside`]).
    fn copy(&mut self, copies: &[Copy]) -> std::io::Result<()> {
        if let Some((built, chunks)) = &mut self.built {
            for copy in copies {
                built.copy(&chunks[copy.first..copy.first + copy.count]);
            }
        }
        let mut planned = Vec::with_capacity(copies.len());
        let mut at = self.at;
        for copy in copies {
            let source = self.source_of(copy);
            planned.push((source, at, copy.len));
            at += copy.len;
            self.at = at;
        }
        let total: u64 = copies.iter().map(|copy| copy.len).sum();
        let Builder {
            out, base, hasher, ..
        } = self;
        let copy_all = |block: usize, beside: &mut dyn FnMut(Vec<u8>) -> Vec<u8>| {
            let mut buffer = Vec::new();
            for &(source, at, len) in &planned {
                let mut done = 0u64;
                while done < len {
                    let now = usize::try_from(len - done).map_or(block, |l| l.min(block));
                    buffer.resize(now, 0);
                    match source {
                        Source::Base(start) => {
                            base.read_exact_at(&mut buffer, start + done)?;
                            out.write_all_at(&buffer, at + done)?;
                        }
                        Source::InPlace => out.read_exact_at(&mut buffer, at + done)?,
                    }
                    buffer = beside(buffer);
                    done += now as u64;
                }
            }
            Ok(())
        };
        if total < HASH_BESIDE_FROM {
            return copy_all(COPY_BUFFER, &mut |buffer| {
                hasher.update(&buffer);
                buffer
            });
        }
        hashing_beside(hasher, |beside| {
            copy_all(BESIDE_BLOCK, &mut |buffer| {
                beside.hash(buffer);
                beside.buffer()
            })
        })
    }

    /// Ends the filling ahead: waits for its syncs and cuts off what it filled beyond the
    /// bytes the delta named (all of the file once it succeeded, only what was confirmed when
    /// it failed, so a resume is offered nothing else).
    pub(super) fn end_prefill(&mut self) {
        let Some(prefill) = self.prefill.take() else {
            return;
        };
        if let Err(e) = prefill.finish() {
            self.failed.get_or_insert(e);
        }
        let beyond = self.out.metadata().is_ok_and(|meta| meta.len() > self.at);
        if beyond && let Err(e) = self.out.set_len(self.at) {
            self.failed.get_or_insert(e);
        }
    }
}
