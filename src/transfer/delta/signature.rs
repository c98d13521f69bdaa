//! A base file's signature: its chunks' lengths and hash prefixes, in order. The receiver
//! computes it (or finds it in its [`SignatureCache`](crate::transfer::signature_cache)) and
//! sends it; the sender looks its own chunks up in it.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use super::chunker::{Sizes, chunk_file};
use super::{ENTRY_BYTES, HASH_BYTES, MAX_CHUNKS, average_for, valid_average};
use crate::protocol::DeltaBase;

/// One chunk's hash prefix.
pub type ChunkHash = [u8; HASH_BYTES];

/// The hash prefix of a chunk's bytes.
pub fn chunk_hash(bytes: &[u8]) -> ChunkHash {
    let mut out = [0u8; HASH_BYTES];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..HASH_BYTES]);
    out
}

/// A base's chunks, as both ends agree to cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The chunker's average size.
    pub avg: u32,
    /// The base's size (the chunks' lengths add up to it).
    pub size: u64,
    /// Each chunk's length and hash prefix, in file order.
    pub chunks: Vec<(u32, ChunkHash)>,
}

impl Signature {
    /// Cuts and hashes the first `size` bytes of `file` with the average fit for that size.
    /// Runs on a blocking thread (it reads the whole file).
    ///
    /// # Errors
    /// Read errors (`UnexpectedEof` when the file is shorter than `size`).
    pub fn compute(file: &File, size: u64) -> io::Result<Signature> {
        let avg = average_for(size);
        let mut chunks =
            Vec::with_capacity(usize::try_from(size / u64::from(avg) + 1).unwrap_or(0));
        chunk_file(file, size, Sizes::new(avg), |_, bytes| {
            let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
            chunks.push((len, chunk_hash(bytes)));
            Ok(())
        })?;
        Ok(Signature { avg, size, chunks })
    }

    /// What announces it on the wire.
    pub fn base(&self) -> DeltaBase {
        DeltaBase {
            size: self.size,
            avg: self.avg,
            chunks: self.chunks.len() as u64,
        }
    }

    /// Its entries as sent: per chunk, the length (u32 little-endian) then the hash prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.len() * ENTRY_BYTES);
        for (len, hash) in &self.chunks {
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(hash);
        }
        out
    }

    /// Checks an announced base before any of its entries is read: a valid average, and no
    /// more entries than its size can hold or [`MAX_CHUNKS`].
    ///
    /// # Errors
    /// Why the announcement cannot be a signature.
    pub fn check_base(base: &DeltaBase) -> Result<(), String> {
        if !valid_average(base.avg) {
            return Err(format!(
                "a signature's average chunk size must be a power of two from 1024 to 1048576, not {}",
                base.avg
            ));
        }
        let min = u64::from(base.avg / 4);
        let most = (base.size / min + 1).min(MAX_CHUNKS);
        if base.chunks > most || (base.chunks == 0) != (base.size == 0) {
            return Err(format!(
                "a signature of {} chunks cannot describe {} bytes cut at {} on average",
                base.chunks, base.size, base.avg
            ));
        }
        Ok(())
    }

    /// Reads the entries announced by `base` from `bytes` and checks that they add up: every
    /// chunk but the last within the chunker's bounds, and their lengths summing to the size.
    ///
    /// # Errors
    /// Why the bytes are not the announced signature.
    pub fn decode(base: &DeltaBase, bytes: &[u8]) -> Result<Signature, String> {
        Signature::check_base(base)?;
        let expected = usize::try_from(base.chunks)
            .ok()
            .and_then(|n| n.checked_mul(ENTRY_BYTES))
            .ok_or("a signature too large")?;
        if bytes.len() != expected {
            return Err(format!(
                "a signature of {} chunks is {expected} bytes, not {}",
                base.chunks,
                bytes.len()
            ));
        }
        let max = u64::from(base.avg) * 4;
        let mut chunks = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        let mut total = 0u64;
        for entry in bytes.chunks_exact(ENTRY_BYTES) {
            let (len, hash) = entry.split_at(4);
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            if len == 0 || u64::from(len) > max {
                return Err(format!(
                    "a signature's chunk of {len} bytes (at most {max})"
                ));
            }
            total += u64::from(len);
            let mut prefix = [0u8; HASH_BYTES];
            prefix.copy_from_slice(hash);
            chunks.push((len, prefix));
        }
        if total != base.size {
            return Err(format!(
                "a signature's chunks add up to {total} bytes, not the base's {}",
                base.size
            ));
        }
        Ok(Signature {
            avg: base.avg,
            size: base.size,
            chunks,
        })
    }

    /// Where each chunk starts in the base, by hash (the first of equal chunks).
    pub fn index(&self) -> HashMap<ChunkHash, (u64, u32)> {
        let mut index = HashMap::with_capacity(self.chunks.len());
        let mut offset = 0u64;
        for (len, hash) in &self.chunks {
            index.entry(*hash).or_insert((offset, *len));
            offset += u64::from(*len);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn a_signature_round_trips_and_adds_up() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sig = Signature::compute(&file_of(&bytes), bytes.len() as u64).unwrap();
        assert_eq!(sig.avg, 1024);
        assert_eq!(
            sig.chunks.iter().map(|(l, _)| u64::from(*l)).sum::<u64>(),
            300_000
        );
        let decoded = Signature::decode(&sig.base(), &sig.encode()).unwrap();
        assert_eq!(decoded, sig);
    }

    #[test]
    fn signatures_that_do_not_add_up_are_refused() {
        let bytes = vec![5u8; 100_000];
        let sig = Signature::compute(&file_of(&bytes), 100_000).unwrap();
        let mut wire = sig.encode();
        // One length changed: the lengths no longer sum to the size.
        wire[0] ^= 1;
        assert!(Signature::decode(&sig.base(), &wire).is_err());
        // Fewer bytes than announced.
        assert!(Signature::decode(&sig.base(), &sig.encode()[16..]).is_err());
        // A chunk longer than the chunker can make.
        let huge = DeltaBase {
            size: 1 << 30,
            avg: 1024,
            chunks: 1,
        };
        let mut entry = (1u32 << 30).to_le_bytes().to_vec();
        entry.extend_from_slice(&[0; HASH_BYTES]);
        assert!(Signature::decode(&huge, &entry).is_err());
        // More chunks than the size can hold, and an average that is not a power of two.
        let many = DeltaBase {
            size: 1000,
            avg: 1024,
            chunks: 1 << 40,
        };
        assert!(Signature::check_base(&many).is_err());
        let odd = DeltaBase {
            size: 1000,
            avg: 1000,
            chunks: 1,
        };
        assert!(Signature::check_base(&odd).is_err());
    }
}
