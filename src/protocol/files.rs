//! Wire messages and types of the file service: listings, transfers, directories.

use serde::{Deserialize, Serialize};

use super::serde_defaults::{is_false, is_zero};

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed when listed).
    Symlink,
    /// A device, fifo or socket: listed, never transferred.
    Other,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the listed path (`a/b.txt` in a recursive listing), UTF-8, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Bytes, for files; 0 otherwise.
    pub size: u64,
    /// Permission bits (`0o755` etc.).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// For symlinks: where it points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The name on disk is not UTF-8: `path` shows its invalid bytes as `\xNN`, and since no
    /// request can name it, it can be listed but not transferred (a tree copy names it skipped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_utf8: bool,
    /// In a recursive listing, a file that is a hard link to one listed before it: that one's
    /// path (so a copy with `-H` can link it rather than copy it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link_of: Option<String>,
}

/// The whole-file hash that proves a transfer. BLAKE3 by default; SHA-256 for peers that have
/// only a standard library (Python's `hashlib`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    #[default]
    /// BLAKE3, 256-bit (the default).
    Blake3,
    /// SHA-256.
    Sha256,
}

impl HashAlgorithm {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Blake3 => "blake3",
            HashAlgorithm::Sha256 => "sha256",
        }
    }
}

/// How a delta's chunks are hashed in a signature (8 bytes of the hash each). BLAKE3 when a
/// peer names none (the first peers that spoke deltas); XXH3-64 is what ferry asks for now: a
/// chunk match only chooses which bytes to copy, the whole-file hash proves the result, so
/// the chunk hash needs speed, not collision resistance (rsync's block checksums are XXH3 too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkHashing {
    #[default]
    /// The first 8 bytes of BLAKE3.
    Blake3,
    /// XXH3-64, little-endian.
    Xxh3,
}

impl ChunkHashing {
    /// Whether it is what a peer that names none means.
    pub fn is_default(&self) -> bool {
        *self == ChunkHashing::Blake3
    }
}

/// Client → server: list a directory (or describe a file), optionally the whole tree; with
/// `itself`, only the entry describing `path` itself (like `ls -d`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// Relative to the served root.
    pub path: String,
    /// The whole tree beneath `path`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recursive: bool,
    /// Only `path`'s own entry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub itself: bool,
}

/// Server → client: some entries of the listing (repeated as needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntries {
    /// The entries.
    pub entries: Vec<FileEntry>,
}

/// Server → client: the listing is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDone {
    /// How many entries were sent in all.
    pub count: u64,
}

/// Client → server: send a file. With `offset` and `prefix_hash`, the client holds the first
/// `offset` bytes already and the server resumes there if they match its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Relative to the served root.
    pub path: String,
    /// The whole-file hash to prove the transfer with.
    #[serde(default)]
    pub hash: HashAlgorithm,
    /// Bytes the client holds already.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// The hash of those bytes, in `hash`'s algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hash: Option<String>,
    /// The client holds an older version of the file (its base) and asks for a delta: the
    /// base's signature follows the request as data frames (PROTOCOL.md 5.6, "Deltas").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<DeltaBase>,
    /// The client holds an older version and asks for a delta, but is still signing it: the
    /// server cuts its file meanwhile, and `base_signed` follows with the signature (not with
    /// `base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
    /// The client takes zstd-compressed blocks (channel 3) where they pay.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

/// What a receiver holds of an older version of a file: its size and how its signature was
/// cut, announced before the signature's `chunks` entries (16 bytes each) follow as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaBase {
    /// The base file's size.
    pub size: u64,
    /// The chunker's average chunk size (a power of two; min is a quarter, max four times).
    pub avg: u32,
    /// Entries in the signature.
    pub chunks: u64,
    /// How its chunks are hashed (BLAKE3 when not named).
    #[serde(default, skip_serializing_if = "ChunkHashing::is_default")]
    pub chunk_hash: ChunkHashing,
}

impl Get {
    /// Whether it asks for a delta: a signature follows it (now or with `base_signed`).
    pub fn asks_delta(&self) -> bool {
        self.base.is_some() || self.signing.is_some()
    }
}

/// What a `get` says of a base its client is still signing: its size and how it is cut and
/// hashed, so that the server can cut its own file the same way while the client signs (the two
/// reads overlap, as a `put` that names `avg` makes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signing {
    /// The base file's size.
    pub size: u64,
    /// The average chunk size it is cut at.
    pub avg: u32,
    /// How its chunks are hashed (BLAKE3 when not named).
    #[serde(default, skip_serializing_if = "ChunkHashing::is_default")]
    pub chunk_hash: ChunkHashing,
}

/// Client → server, after a `get` with `signing`: the base is signed, and its signature (the
/// entries `base` announces) follows as data frames on channel 0; without `base`, it could not
/// be signed after all (it changed while read), and the file comes whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseSigned {
    /// The signature's announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<DeltaBase>,
}

/// Server → client: data frames follow from `offset` to `size`, then `get_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReady {
    /// The file's size.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
    /// Its modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Where the data starts: the client's offset if its prefix matched, else 0.
    pub offset: u64,
    /// The data is a delta against the client's base: literal bytes on channel 0 and copies
    /// from the base on channel 2.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delta: bool,
    /// Blocks may come zstd-compressed on channel 3 (the client asked for it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

/// Server → client: the hash of the whole file as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEnd {
    /// Hex.
    pub hash: String,
}

/// Client → server: receive a file of `size` bytes for `path` (needs `write`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// Relative to the served root.
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
    /// Its modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The whole-file hash to prove the transfer with.
    #[serde(default)]
    pub hash: HashAlgorithm,
    /// The client sends every byte right behind the request, then `put_end`, without waiting
    /// for `put_ready` (none comes) and without `put_start`: no resume, no round trip, so a
    /// client can pipeline many small files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole: bool,
    /// The client can send a delta against the file the server holds under `path`: the
    /// server answers with that file's signature (not with `whole`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub delta: bool,
    /// With `delta`: the average chunk size the client cuts its file at (it starts at once);
    /// the server signs its base at the same average when it is a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg: Option<u32>,
    /// With `delta`: how the client hashes its chunks (it starts at once); the server signs its
    /// base the same way when it knows the name, else with BLAKE3 (and says which in `base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_hash: Option<ChunkHashing>,
    /// The client would send zstd-compressed blocks where they pay (not with `whole`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

/// Server → client: the server holds `offset` bytes of an earlier attempt whose hash is
/// `prefix_hash` (0 and none when it holds nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReady {
    /// Bytes the server holds already.
    pub offset: u64,
    /// Their hash, in the `put`'s algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hash: Option<String>,
    /// For a `put` with `delta`: the file the server holds, whose signature follows as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<DeltaBase>,
    /// For a `put` with `compress`: the server takes compressed blocks on channel 3.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

/// Client → server: data frames follow from `offset` (the server's offset if the prefix
/// matched, else 0), then `put_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutStart {
    /// Where the data starts.
    pub offset: u64,
    /// The data is a delta against the server's base (channels 0 and 2, as for `get`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub delta: bool,
}

/// Client → server: the hash of the whole file as the client has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutEnd {
    /// Hex.
    pub hash: String,
}

/// Server → client: verified and in place under its final name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutDone {
    /// The file's size.
    pub size: u64,
    /// Its whole-file hash, hex.
    pub hash: String,
}

/// Client → server: create a directory (and its parents); on an existing directory, set `mode`
/// and `mtime_ns` when given (needs `write`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkdir {
    /// Relative to the served root.
    pub path: String,
    /// Permission bits to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
}

/// Client → server: move `from` to `to` within the root, replacing a file at `to` (needs
/// `write`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// What to move, relative to the served root.
    pub from: String,
    /// Its new path, relative to the served root.
    pub to: String,
}

/// Client → server: remove a file or an empty directory (needs `write`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remove {
    /// Relative to the served root.
    pub path: String,
}

/// Client → server: make `path` a symbolic link whose text is `target` (needs `write`),
/// replacing a file or link already there; with `mtime_ns`, the link's own time is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symlink {
    /// Relative to the served root.
    pub path: String,
    /// The link's text, kept byte for byte: the server stores it and never follows it.
    pub target: String,
    /// The link's own modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
}

/// Client → server: make `path` a hard link to the regular file `existing` (both beneath the
/// root; needs `write`), replacing a file or link already at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardLink {
    /// The new name, relative to the served root.
    pub path: String,
    /// The file it links to, relative to the served root.
    pub existing: String,
}

/// Client → server: set the permission bits and/or modification time of the regular file
/// `path` (needs `write`), never through a symlink: what a copy does to a file whose content is
/// already the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    /// Relative to the served root.
    pub path: String,
    /// Permission bits to set (rwx only, as for `put`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
}
