//! A base file's signature: its chunks' hash prefixes, in order. The receiver computes it (or
//! finds it kept beside its hash cache) and sends the hashes; the sender looks its own chunks up
//! among them and names the ones the base holds by their place in the list, so lengths never
//! need to cross: the receiver knows its own.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use super::chunker::{Sizes, chunk_file};
use super::{ENTRY_BYTES, HASH_BYTES, MAX_CHUNKS, average_for, valid_average};
use crate::protocol::{ChunkHashing, DeltaBase};

/// One chunk's hash prefix.
pub type ChunkHash = [u8; HASH_BYTES];

/// The hash prefix of a chunk's bytes, hashed as `hashing` says.
pub fn chunk_hash(hashing: ChunkHashing, bytes: &[u8]) -> ChunkHash {
    match hashing {
        ChunkHashing::Xxh3 => xxhash_rust::xxh3::xxh3_64(bytes).to_le_bytes(),
        ChunkHashing::Blake3 => {
            let mut out = [0u8; HASH_BYTES];
            out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..HASH_BYTES]);
            out
        }
    }
}

/// A base's chunks as the side that holds it knows them: lengths and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The chunker's average size.
    pub avg: u32,
    /// How its chunks are hashed.
    pub hashing: ChunkHashing,
    /// The base's size (the chunks' lengths add up to it).
    pub size: u64,
    /// Each chunk's length and hash prefix, in file order.
    pub chunks: Vec<(u32, ChunkHash)>,
}

/// A base's chunks as the sender sees them: only their hashes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSignature {
    /// The chunker's average size (the sender cuts its file the same way).
    pub avg: u32,
    /// How its chunks are hashed (the sender hashes its own the same way).
    pub hashing: ChunkHashing,
    /// Each chunk's hash prefix, in file order.
    pub hashes: Vec<ChunkHash>,
}

impl Signature {
    /// Cuts and hashes the first `size` bytes of `file` with the average fit for that size.
    /// Runs on a blocking thread (it reads the whole file).
    ///
    /// # Errors
    /// Read errors (`UnexpectedEof` when the file is shorter than `size`).
    pub fn compute(file: &File, size: u64) -> io::Result<Signature> {
        Signature::compute_at(file, size, average_for(size), ChunkHashing::Xxh3)
    }

    /// Cuts the first `size` bytes of `file` at average `avg` (one [`valid_average`]
    /// accepts) and hashes the chunks as `hashing` says. Runs on a blocking thread.
    ///
    /// # Errors
    /// Read errors (`UnexpectedEof` when the file is shorter than `size`).
    pub fn compute_at(
        file: &File,
        size: u64,
        avg: u32,
        hashing: ChunkHashing,
    ) -> io::Result<Signature> {
        let mut chunks =
            Vec::with_capacity(usize::try_from(size / u64::from(avg) + 1).unwrap_or(0));
        chunk_file(file, size, Sizes::new(avg), |_, bytes| {
            let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
            chunks.push((len, chunk_hash(hashing, bytes)));
            Ok(())
        })?;
        Ok(Signature {
            avg,
            hashing,
            size,
            chunks,
        })
    }

    /// What announces it on the wire.
    pub fn base(&self) -> DeltaBase {
        DeltaBase {
            size: self.size,
            avg: self.avg,
            chunks: self.chunks.len() as u64,
            chunk_hash: self.hashing,
        }
    }

    /// Its entries as sent: the hash prefixes, in order.
    pub fn encode(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, hash)| *hash).collect()
    }

    /// Where each chunk starts in the base, and the base's end: `chunks + 1` offsets, so chunks
    /// `i..j` are bytes `offsets[i]..offsets[j]`.
    pub fn offsets(&self) -> Vec<u64> {
        let mut offsets = Vec::with_capacity(self.chunks.len() + 1);
        let mut at = 0u64;
        offsets.push(at);
        for (len, _) in &self.chunks {
            at += u64::from(*len);
            offsets.push(at);
        }
        offsets
    }

    /// Its lengths and hashes, as kept beside the hash cache: per chunk the length (u32,
    /// little-endian) then the hash prefix.
    pub fn encode_kept(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.len() * (4 + HASH_BYTES));
        for (len, hash) in &self.chunks {
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(hash);
        }
        out
    }

    /// Reads back what [`Signature::encode_kept`] wrote, checking that it adds up: every
    /// length within the chunker's bounds and all of them summing to the size.
    ///
    /// # Errors
    /// Why the bytes are not that signature.
    pub fn decode_kept(base: &DeltaBase, bytes: &[u8]) -> Result<Signature, String> {
        check_base(base)?;
        let entry = 4 + HASH_BYTES;
        if Some(bytes.len())
            != usize::try_from(base.chunks)
                .ok()
                .and_then(|n| n.checked_mul(entry))
        {
            return Err("a kept signature of the wrong length".into());
        }
        let max = u64::from(base.avg) * 4;
        let mut total = 0u64;
        let mut chunks = Vec::with_capacity(bytes.len() / entry);
        for one in bytes.chunks_exact(entry) {
            let (len, hash) = one.split_at(4);
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            if len == 0 || u64::from(len) > max {
                return Err(format!("a kept chunk of {len} bytes"));
            }
            total += u64::from(len);
            let mut prefix = [0u8; HASH_BYTES];
            prefix.copy_from_slice(hash);
            chunks.push((len, prefix));
        }
        if total != base.size {
            return Err("a kept signature that does not add up".into());
        }
        Ok(Signature {
            avg: base.avg,
            hashing: base.chunk_hash,
            size: base.size,
            chunks,
        })
    }
}

/// Checks an announced base before any of its entries is read: a valid average, and no more
/// entries than its size can hold or [`MAX_CHUNKS`].
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

impl RemoteSignature {
    /// Reads the entries `base` announced from `bytes` (exactly `chunks` of them).
    ///
    /// # Errors
    /// Why the bytes are not the announced signature.
    pub fn decode(base: &DeltaBase, bytes: &[u8]) -> Result<RemoteSignature, String> {
        check_base(base)?;
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
        let hashes = bytes
            .chunks_exact(ENTRY_BYTES)
            .map(|one| {
                let mut prefix = [0u8; HASH_BYTES];
                prefix.copy_from_slice(one);
                prefix
            })
            .collect();
        Ok(RemoteSignature {
            avg: base.avg,
            hashing: base.chunk_hash,
            hashes,
        })
    }

    /// Each hash's place in the list (the first of equal chunks).
    pub fn index(&self) -> HashMap<ChunkHash, u64> {
        let mut index = HashMap::with_capacity(self.hashes.len());
        for (i, hash) in self.hashes.iter().enumerate() {
            index.entry(*hash).or_insert(i as u64);
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
    fn a_signature_round_trips_on_the_wire_and_where_it_is_kept() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sig = Signature::compute(&file_of(&bytes), bytes.len() as u64).unwrap();
        assert_eq!(sig.avg, 1024);
        assert_eq!(*sig.offsets().last().unwrap(), 300_000);
        let remote = RemoteSignature::decode(&sig.base(), &sig.encode()).unwrap();
        assert_eq!(remote.hashes.len(), sig.chunks.len());
        assert_eq!(
            Signature::decode_kept(&sig.base(), &sig.encode_kept()).unwrap(),
            sig
        );
    }

    #[test]
    fn signatures_that_do_not_fit_their_announcement_are_refused() {
        let bytes = vec![5u8; 100_000];
        let sig = Signature::compute(&file_of(&bytes), 100_000).unwrap();
        // Fewer bytes than announced.
        assert!(RemoteSignature::decode(&sig.base(), &sig.encode()[8..]).is_err());
        // A kept one whose lengths no longer add up.
        let mut kept = sig.encode_kept();
        kept[0] ^= 1;
        assert!(Signature::decode_kept(&sig.base(), &kept).is_err());
        // More chunks than the size can hold, and an average that is not a power of two.
        let many = DeltaBase {
            size: 1000,
            avg: 1024,
            chunks: 1 << 40,
            chunk_hash: ChunkHashing::Xxh3,
        };
        assert!(check_base(&many).is_err());
        let odd = DeltaBase {
            size: 1000,
            avg: 1000,
            chunks: 1,
            chunk_hash: ChunkHashing::Xxh3,
        };
        assert!(check_base(&odd).is_err());
    }
}
