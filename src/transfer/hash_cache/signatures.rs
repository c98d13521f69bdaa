//! Delta signatures kept beside the whole-file hashes, keyed the same way (device, inode, and
//! the full [`Fingerprint`] checked on use), so a base that did not change is not read again
//! to be signed: one file per base in a `signatures` folder next to the hash cache, a header
//! line (the fingerprint and how it was cut) and the entries as they travel.
//!
//! The same rules as for hashes: only files that had settled when reading began, and only if
//! they did not change while read; a stale signature can only make matches fail (the receiver
//! still builds from its base and the whole-file hash decides), never make wrong bytes kept.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Fingerprint, MIN_SIZE};
use crate::protocol::{ChunkHashing, DeltaBase};
use crate::transfer::delta::Signature;

/// Signatures kept at most; beyond, the oldest make room.
const MAX_FILES: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    file: Fingerprint,
    avg: u32,
    chunks: u64,
    /// Signatures kept before XXH3 have no name: BLAKE3.
    #[serde(default)]
    hashing: ChunkHashing,
}

/// The folder of signatures.
#[derive(Debug)]
pub(super) struct Signatures {
    dir: PathBuf,
}

impl Signatures {
    /// The signatures kept in `dir` (made when the first is kept).
    pub(super) fn in_dir(dir: &Path) -> Self {
        Signatures {
            dir: dir.to_path_buf(),
        }
    }

    fn path_of(&self, file: &Fingerprint) -> PathBuf {
        self.dir.join(format!("{}-{}.sig", file.dev, file.ino))
    }

    /// The signature of exactly this version of the file, if one was kept.
    pub(super) fn lookup(&self, file: Fingerprint) -> Option<Signature> {
        let bytes = std::fs::read(self.path_of(&file)).ok()?;
        let newline = bytes.iter().position(|b| *b == b'\n')?;
        let header: Header = serde_json::from_slice(&bytes[..newline]).ok()?;
        if header.file != file {
            return None;
        }
        let base = DeltaBase {
            size: file.size,
            avg: header.avg,
            chunks: header.chunks,
            chunk_hash: header.hashing,
        };
        Signature::decode_kept(&base, &bytes[newline + 1..]).ok()
    }

    /// Keeps `signature` of the file `file`, read from `started` on, if it is large enough and
    /// had settled by then (the caller checked it did not change while read).
    pub(super) fn remember(&self, file: Fingerprint, started: SystemTime, signature: &Signature) {
        if file.size < MIN_SIZE || !file.settled_before(started) {
            return;
        }
        self.keep(file, signature);
    }

    /// Keeps `signature` of the file `file` (when it is of that size), whatever its age.
    pub(super) fn keep(&self, file: Fingerprint, signature: &Signature) {
        if signature.size != file.size {
            return;
        }
        let header = Header {
            file,
            avg: signature.avg,
            chunks: signature.chunks.len() as u64,
            hashing: signature.hashing,
        };
        let Ok(mut text) = serde_json::to_vec(&header) else {
            return;
        };
        text.push(b'\n');
        text.extend(signature.encode_kept());
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        self.make_room();
        // Best effort, written whole under a temporary name and renamed: a reader never sees
        // half a signature (and would refuse one that does not add up anyway).
        let path = self.path_of(&file);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }

    /// Removes the oldest signatures while there are [`MAX_FILES`] or more.
    fn make_room(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut kept: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if kept.len() < MAX_FILES {
            return;
        }
        kept.sort();
        for (_, path) in kept.iter().take(kept.len() + 1 - MAX_FILES) {
            let _ = std::fs::remove_file(path);
        }
    }
}
