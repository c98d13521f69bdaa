//! Whole-file hashes a sender already computed, so sending an unchanged file again needs no
//! hashing (BLAKE3 is 0.17 CPU s/GiB, SHA-256 0.60: a fifth to a half of a verified transfer's
//! CPU on the bench machine).
//!
//! An entry is keyed by the file's identity (device, inode) and algorithm and holds its
//! [`Fingerprint`] (size, mtime, ctime, to the nanosecond). Any write or `touch`, any rename
//! over it, changes ctime, which no user can set, so an entry whose fingerprint still matches
//! describes the same bytes — with one exception that git calls "racy": timestamps advance in
//! clock ticks, so a file written twice within one tick may keep its ctime. So an entry is only
//! kept for a file whose ctime was already [`SETTLED`] old when hashing began, and only if the
//! fingerprint after hashing equals the one before: a write during or after the hashing then
//! always lands in a later tick and shows.
//!
//! What a stale entry could do is bounded anyway: the sender only *claims* the hash; the
//! receiver hashes the bytes it got and refuses a mismatch (`integrity`), so a wrong entry can
//! fail a transfer but never make a receiver keep wrong bytes.
//!
//! Kept in memory and appended, one JSON object per line, to a file in the state folder (the
//! server's, or the client's `FERRY_HOME`), which is compacted when it is loaded and has
//! grown to twice what it holds. Small files are not cached: hashing them costs less than the
//! entry.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::protocol::HashAlgorithm;
use crate::transfer::delta::Signature;

mod signatures;
use signatures::Signatures;

/// Files smaller than this are hashed every time.
pub const MIN_SIZE: u64 = 1 << 20;
/// How old a file's last change must be when hashing starts for its hash to be kept: far more
/// than a timestamp tick (at most 10 ms on Linux), so a later change cannot share its ctime.
pub const SETTLED: Duration = Duration::from_secs(1);
/// Entries kept at most; beyond, an arbitrary one makes room.
const MAX_ENTRIES: usize = 100_000;

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Device and inode: which file.
    pub dev: u64,
    #[allow(missing_docs)]
    pub ino: u64,
    /// Its size, modification time and status-change time: which version of it.
    pub size: u64,
    #[allow(missing_docs)]
    pub mtime_ns: i64,
    #[allow(missing_docs)]
    pub ctime_ns: i64,
}

impl Fingerprint {
    /// The fingerprint of the file `meta` describes.
    pub fn of(meta: &Metadata) -> Self {
        let ns = |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least [`SETTLED`] before `moment`.
    pub(crate) fn settled_before(&self, moment: SystemTime) -> bool {
        let moment_ns = moment
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let settled = i64::try_from(SETTLED.as_nanos()).unwrap_or(i64::MAX);
        self.ctime_ns.saturating_add(settled) <= moment_ns
    }
}

/// One line of the cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    file: Fingerprint,
    algorithm: HashAlgorithm,
    hash: String,
}

type Key = (u64, u64, HashAlgorithm);

/// The cache: a map, and the file it is kept in (none for a cache that lives in memory only).
#[derive(Debug)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<Key, (Fingerprint, String)>>,
    /// Delta signatures, beside the file (none for a cache in memory: they are recomputed).
    signatures: Option<Signatures>,
}

impl HashCache {
    /// A cache kept in memory only.
    pub fn in_memory() -> Self {
        HashCache {
            path: None,
            entries: Mutex::new(HashMap::new()),
            signatures: None,
        }
    }

    /// The cache kept in `path`, loaded now (a missing or unreadable file is an empty cache;
    /// unparsable lines are skipped: it is only a cache).
    pub fn open(path: &Path) -> Self {
        let mut entries = HashMap::new();
        let mut lines = 0usize;
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                lines += 1;
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    entries.insert((e.file.dev, e.file.ino, e.algorithm), (e.file, e.hash));
                }
            }
        }
        if entries.len() > MAX_ENTRIES {
            let extra: Vec<Key> = entries.keys().skip(MAX_ENTRIES).copied().collect();
            for key in extra {
                entries.remove(&key);
            }
        }
        if lines > 2 * entries.len() + 64 {
            let mut text = Vec::new();
            for (&(_, _, algorithm), (file, hash)) in &entries {
                text.extend(line_of(*file, algorithm, hash));
            }
            // Best effort: a cache that cannot be compacted still works.
            let _ = crate::atomic_file::write_atomically(path, &text);
        }
        HashCache {
            path: Some(path.to_path_buf()),
            entries: Mutex::new(entries),
            signatures: Some(Signatures::in_dir(&path.with_extension("signatures"))),
        }
    }

    /// The hash of the file `file` in `algorithm`, if it is known for exactly this version.
    pub fn lookup(&self, file: Fingerprint, algorithm: HashAlgorithm) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        match entries.get(&(file.dev, file.ino, algorithm)) {
            Some((known, hash)) if *known == file => Some(hash.clone()),
            _ => None,
        }
    }

    /// Keeps `hash` (of `algorithm`) for the file with fingerprint `file`, hashed from
    /// `started` on — only if it is large enough to be worth it and had settled by then (see
    /// the module's comment). The caller has checked that the fingerprint was the same after
    /// the hashing as before it ([`super::chunks::send_file`] does, for every send).
    pub fn remember(
        &self,
        file: Fingerprint,
        started: SystemTime,
        algorithm: HashAlgorithm,
        hash: &str,
    ) {
        let before = file;
        if before.size < MIN_SIZE || !before.settled_before(started) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let key = (before.dev, before.ino, algorithm);
        if entries
            .get(&key)
            .is_some_and(|(f, h)| *f == before && h == hash)
        {
            return;
        }
        if entries.len() >= MAX_ENTRIES
            && let Some(evicted) = entries.keys().next().copied()
        {
            entries.remove(&evicted);
        }
        entries.insert(key, (before, hash.to_string()));
        if let Some(path) = &self.path {
            // One `write` of one line with O_APPEND: concurrent writers (a server and a
            // client sharing a home) interleave whole lines. A failure only costs a re-hash.
            let _ = OpenOptions::new()
                .create(true)
                .mode(0o600)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&line_of(before, algorithm, hash)));
        }
    }
}

impl HashCache {
    /// The delta signature of exactly this version of a file, if one was kept.
    pub fn signature(&self, file: Fingerprint) -> Option<Signature> {
        self.signatures.as_ref()?.lookup(file)
    }

    /// Keeps the signature of a file this side just built from a delta and put in place
    /// (`file` is its fingerprint there), without waiting for it to settle: a stale signature
    /// can only make the next delta match less, never make wrong bytes kept (the whole-file
    /// hash decides), while a hash must never be stale.
    pub fn keep_built_signature(&self, file: Fingerprint, signature: &Signature) {
        if let Some(signatures) = &self.signatures
            && file.size >= MIN_SIZE
        {
            signatures.keep(file, signature);
        }
    }

    /// Keeps a file's signature, on the same terms as [`HashCache::remember`].
    pub fn remember_signature(
        &self,
        file: Fingerprint,
        started: SystemTime,
        signature: &Signature,
    ) {
        if let Some(signatures) = &self.signatures {
            signatures.remember(file, started, signature);
        }
    }
}

fn line_of(file: Fingerprint, algorithm: HashAlgorithm, hash: &str) -> Vec<u8> {
    let entry = Entry {
        file,
        algorithm,
        hash: hash.to_string(),
    };
    let mut line = serde_json::to_vec(&entry).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests;
