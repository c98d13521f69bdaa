//! The signature of a file built from a delta, derived while it is written, so that the next
//! delta against it (the next sync of a file that keeps changing) need not read it to sign it.
//!
//! Why it costs almost nothing: the new file is the sender's chunks in order, each either a
//! chunk of the base (a copy: its length and hash are in the base's signature, which this side
//! computed from its own base) or literal bytes. Only the literal runs are cut and hashed here,
//! and a run always starts at one of the sender's cuts (after a copy, or at the file's start)
//! and ends at one, so cutting it from its start finds the sender's cuts again: content-defined
//! cuts depend only on the bytes from the chunk's start to the cut. A delta that is large is
//! mostly literal bytes and costs what signing it afterwards would; a small one costs nearly
//! nothing.
//!
//! A peer that cuts wrongly (or lies) can only make this signature stale: the next delta then
//! matches less, and the whole-file hash still decides what is kept.

use super::chunker::Sizes;
use super::signature::{ChunkHash, Signature, chunk_hash};
use crate::protocol::ChunkHashing;

/// A new file's signature being derived from its delta.
pub struct BuiltSignature {
    sizes: Sizes,
    avg: u32,
    hashing: ChunkHashing,
    chunks: Vec<(u32, ChunkHash)>,
    /// Literal bytes of the current run not yet cut: `pending[at..]`.
    pending: Vec<u8>,
    at: usize,
}

impl BuiltSignature {
    /// A signature cut and hashed as the base's (`avg`, `hashing`), for a file built from its
    /// first byte.
    pub fn new(avg: u32, hashing: ChunkHashing) -> Self {
        BuiltSignature {
            sizes: Sizes::new(avg),
            avg,
            hashing,
            chunks: Vec::new(),
            pending: Vec::new(),
            at: 0,
        }
    }

    /// The base's chunks `chunks` come next.
    pub fn copy(&mut self, chunks: &[(u32, ChunkHash)]) {
        self.end_run();
        if !self.full() {
            self.chunks.extend_from_slice(chunks);
        }
    }

    /// Literal bytes come next.
    pub fn literal(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        // Cut while a largest chunk's worth is held: that cut cannot move with what follows.
        while self.pending.len() - self.at >= self.sizes.max() {
            self.cut_one(false);
        }
        if self.at > 0 {
            self.pending.drain(..self.at);
            self.at = 0;
        }
    }

    /// The signature of the file of `size` bytes built, if the chunks add up to it.
    pub fn finish(mut self, size: u64) -> Option<Signature> {
        self.end_run();
        let total: u64 = self.chunks.iter().map(|(len, _)| u64::from(*len)).sum();
        (total == size && !self.full()).then_some(Signature {
            avg: self.avg,
            hashing: self.hashing,
            size,
            chunks: self.chunks,
        })
    }

    /// Whether it still has room: past [`super::MAX_CHUNKS`] it holds nothing more (a file
    /// that many chunks is not worth a kept signature, and a peer may not make this side hold
    /// more).
    fn full(&self) -> bool {
        self.chunks.len() as u64 > super::MAX_CHUNKS
    }

    /// Cuts what is left of a literal run: it ends at one of the sender's cuts.
    fn end_run(&mut self) {
        while self.at < self.pending.len() {
            self.cut_one(true);
        }
        self.pending.clear();
        self.at = 0;
    }

    fn cut_one(&mut self, at_end: bool) {
        let bytes = &self.pending[self.at..];
        let len = self
            .sizes
            .first_cut(bytes, at_end)
            .unwrap_or(bytes.len())
            .max(1);
        let chunk = &bytes[..len];
        if !self.full() {
            self.chunks.push((
                u32::try_from(len).unwrap_or(u32::MAX),
                chunk_hash(self.hashing, chunk),
            ));
        }
        self.at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn signature_of(bytes: &[u8], avg: u32) -> Signature {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Signature::compute_at(&file, bytes.len() as u64, avg, ChunkHashing::Xxh3).unwrap()
    }

    #[test]
    fn a_file_built_from_copies_and_literals_gets_the_signature_signing_it_would_give() {
        let avg = 4096;
        let base = noise(2 << 20, 3);
        let mut new = base.clone();
        // An edit in the middle, bytes inserted near the front, a new tail.
        new[1 << 20] ^= 0xff;
        new.splice(5000..5000, noise(3000, 9));
        new.extend(noise(300_000, 11));
        let base_sig = signature_of(&base, avg);
        let expected = signature_of(&new, avg);
        // What a sender does: each new chunk the base holds is a copy, the rest literal bytes,
        // handed over in frames of an arbitrary size.
        let index: std::collections::HashMap<_, _> = base_sig
            .chunks
            .iter()
            .enumerate()
            .map(|(i, (_, hash))| (*hash, i))
            .collect();
        let mut built = BuiltSignature::new(avg, ChunkHashing::Xxh3);
        let mut at = 0usize;
        let mut literal = Vec::new();
        let mut copies = 0;
        for (len, hash) in &expected.chunks {
            let len = *len as usize;
            match index.get(hash) {
                Some(&i) => {
                    for piece in literal.chunks(7777) {
                        built.literal(piece);
                    }
                    literal.clear();
                    built.copy(&base_sig.chunks[i..i + 1]);
                    copies += 1;
                }
                None => literal.extend_from_slice(&new[at..at + len]),
            }
            at += len;
        }
        for piece in literal.chunks(7777) {
            built.literal(piece);
        }
        assert!(copies > 400, "{copies} copies");
        assert_eq!(built.finish(new.len() as u64), Some(expected));
    }

    #[test]
    fn chunks_that_do_not_add_up_give_no_signature() {
        let mut built = BuiltSignature::new(1024, ChunkHashing::Xxh3);
        built.literal(&[1u8; 5000]);
        assert!(built.finish(4999).is_none());
    }
}
