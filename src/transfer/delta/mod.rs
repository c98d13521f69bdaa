//! Delta transfer: when the receiver already holds an older version of a file (its *base*),
//! only what changed crosses the wire.
//!
//! Why content-defined chunking (FastCDC, BLAKE3 chunk hashes) and not rsync's rolling
//! checksum (`fast_rsync`): the receiver cuts its base into chunks whose boundaries depend on
//! the bytes around them, not on offsets, and sends one short hash per chunk (its
//! [`Signature`](signature::Signature)); the sender cuts its new version the same way, so
//! after an insertion or deletion at any offset the boundaries fall back into step within a
//! chunk and every later chunk is found again. The sender then needs one sequential pass over
//! its file (no rolling window over every byte offset, no whole file in memory: `fast_rsync`
//! diffs and applies over slices, so a 1 GiB file would need 1 GiB of RAM on each side), and
//! the receiver copies matched ranges out of its base with ordinary reads. The cost is chunks
//! that change a little more than rsync's blocks around an edit (they are cut by content, at
//! most four times the average), measured by `bench/delta.sh` against rsync itself.
//!
//! The whole-file hash still proves the result: the receiver builds the new version into its
//! partial from literal bytes and copies of base ranges, hashes what it wrote, and keeps it
//! only on equality with the sender's hash, exactly as for a plain transfer. A false chunk
//! match (12-byte BLAKE3 prefixes: 2^-96 a pair) or a base that changed under the copy can
//! therefore fail a transfer but never make a receiver keep wrong bytes.

pub mod chunker;
pub mod receive;
pub mod send;
pub mod signature;
pub mod wire;

pub use signature::Signature;

/// Bytes of BLAKE3 kept per chunk in a signature.
pub const HASH_BYTES: usize = 12;
/// Bytes of one signature entry: the chunk's length (u32, little-endian) and its hash prefix.
pub const ENTRY_BYTES: usize = 4 + HASH_BYTES;
/// Bytes of one copy instruction: base offset and length (u64 each, little-endian).
pub const COPY_BYTES: usize = 16;
/// The data channel that carries copy instructions (literal bytes travel on channel 0).
pub const COPY_CHANNEL: u8 = 2;
/// Files (new or base) smaller than this are sent whole: a signature's round trip would cost
/// more than the bytes it could save.
pub const DELTA_MIN: u64 = 64 * 1024;
/// Signature entries accepted at most (256 MiB of signature): bounds what a peer can make the
/// other side hold.
pub const MAX_CHUNKS: u64 = 1 << 24;

/// The chunker's average size for a base of `size` bytes: about its square root, as rsync's
/// block size, so a signature is ~`16·√size` bytes (524 KB for 1 GiB) and an edit resends
/// about one chunk; a power of two from 1 KiB to 1 MiB.
pub fn average_for(size: u64) -> u32 {
    let root = size.isqrt().max(1);
    let pow = root.next_power_of_two().clamp(1 << 10, 1 << 20);
    u32::try_from(pow).unwrap_or(1 << 20)
}

/// Whether `avg` is one this side will chunk with (a power of two from 1 KiB to 1 MiB).
pub fn valid_average(avg: u32) -> bool {
    avg.is_power_of_two() && ((1 << 10)..=(1 << 20)).contains(&avg)
}
