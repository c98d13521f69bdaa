//! Delta transfer: when the receiver already holds an older version of a file (its *base*),
//! only what changed crosses the wire.
//!
//! Why content-defined chunking (FastCDC, XXH3 chunk hashes) and not rsync's rolling
//! checksum (`fast_rsync`): the receiver cuts its base into chunks whose boundaries depend on
//! the bytes around them, not on offsets, and sends one short hash per chunk (its
//! [`Signature`](signature::Signature)); the sender cuts its new version the same way, so
//! after an insertion or deletion at any offset the boundaries fall back into step within a
//! chunk and every later chunk is found again. The sender then needs one sequential pass over
//! its file (no rolling window over every byte offset, no whole file in memory: `fast_rsync`
//! diffs and applies over slices, so a 1 GiB file would need 1 GiB of RAM on each side), and
//! the receiver copies matched ranges out of its base with ordinary reads. A signature is only
//! the chunks' hashes (8 bytes each); the sender names a matched chunk by its place in it, and
//! the receiver, who cut its base, knows where that chunk lies. The cost is chunks
//! that change a little more than rsync's blocks around an edit (they are cut by content, at
//! most four times the average), measured by `bench/delta.sh` against rsync itself.
//!
//! Where the time goes, and why the steps overlap: the receiver reads its whole base to sign it,
//! the sender its whole new version to cut it, and the receiver writes the whole new version
//! (copied from its base where it can) and makes it durable. Whoever asks names the average
//! and the chunk hash in its request — a `put`'s client for the cut it starts at once
//! ([`cut`]), a `get`'s client for the signature it is about to compute (`signing`) — so the
//! two reads run together, one per core, in both directions; copies go out batch by batch, so the receiver builds while the rest is cut;
//! the receiver hashes what it builds on a second thread
//! ([`crate::transfer::hash_beside`]) and syncs it as it grows. And a file built from a delta
//! keeps the signature derived while it was built ([`built`]): the next delta against it, the
//! next sync of a file that keeps changing, does not read it to sign it at all.
//!
//! The whole-file hash still proves the result: the receiver builds the new version into its
//! partial from literal bytes and copies of base ranges, hashes what it wrote, and keeps it
//! only on equality with the sender's hash, exactly as for a plain transfer. A false chunk
//! match (8-byte hashes: about 2^-33 for a 1 GiB file's every pair of chunks) or a base that
//! changed under the copy can therefore fail a transfer, never make a receiver keep wrong
//! bytes; the client then sends or fetches that file whole, once. That is also why the chunk
//! hash is XXH3 (rsync's block checksum too) and not BLAKE3, which it was first: a peer that
//! crafts chunks whose hashes collide gains nothing but a failed delta and a whole resend,
//! and BLAKE3 took 0.25 s a GiB on this machine against XXH3's 0.05, on both sides of every
//! delta. BLAKE3 stays for peers that name no chunk hash
//! ([`crate::protocol::ChunkHashing`]).
//!
//! Why these sizes: against rsync (`bench/delta.sh`), a signature costs 8 bytes per chunk
//! and an edit costs about two chunks; chunks of about half the square root of the file's size
//! keep both within rsync's own costs (its blocks are the square root, its checksums 6–20
//! bytes each).

pub mod build;
pub mod built;
pub mod chunker;
pub mod cut;
pub mod prefill;
pub mod receive;
pub mod send;
pub mod signature;
pub mod wire;

pub use signature::{RemoteSignature, Signature};

/// Bytes of a chunk's hash kept in a signature.
pub const HASH_BYTES: usize = 8;
/// Bytes of one signature entry on the wire: the chunk's hash prefix.
pub const ENTRY_BYTES: usize = HASH_BYTES;
/// Bytes of one copy instruction: the first chunk of the base and how many (u64 each,
/// little-endian).
pub const COPY_BYTES: usize = 16;
/// The data channel that carries copy instructions (literal bytes travel on channel 0).
pub const COPY_CHANNEL: u8 = 2;
/// Files (new or base) smaller than this are sent whole: a signature's round trip would cost
/// more than the bytes it could save.
pub const DELTA_MIN: u64 = 64 * 1024;
/// Signature entries accepted at most (16 MiB of signature; a 1 TB base needs about 2^21):
/// bounds what a peer can make the
/// other side hold.
pub const MAX_CHUNKS: u64 = 1 << 21;

/// The chunker's average size for a base of `size` bytes: about half its square root (a power
/// of two from 1 KiB to 1 MiB), so a signature is about `16·√size` bytes (about 520 KB for
/// 1 GiB) and an edit resends a chunk or two around it.
pub fn average_for(size: u64) -> u32 {
    let root = (size.isqrt() / 2).max(1);
    let pow = root.next_power_of_two().clamp(1 << 10, 1 << 20);
    u32::try_from(pow).unwrap_or(1 << 20)
}

/// Whether `avg` is one this side will chunk with (a power of two from 1 KiB to 1 MiB).
pub fn valid_average(avg: u32) -> bool {
    avg.is_power_of_two() && ((1 << 10)..=(1 << 20)).contains(&avg)
}
