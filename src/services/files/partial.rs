//! Partial files: where a transfer writes before its bytes are verified, so that nothing but a
//! complete, verified file ever appears under the final name — on either side.
//!
//! The partial of `dir/NAME` is `dir/.NAME.ferry-part`, a fixed name so that a re-run finds and
//! resumes it. It is locked (flock) while a transfer writes it; a second transfer to the same
//! target meanwhile writes its own uniquely named partial instead (and does not resume), so two
//! writers never mix their bytes and the last verified one wins whole.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::hashing::Hasher;
use crate::auth::token::random_bytes;
use crate::protocol::HashAlgorithm;

/// A locked partial file.
///
/// The lock is std's `File::try_lock` (flock) and deliberately not `nix::fcntl::Flock`: that one
/// unlocks explicitly on drop, releasing the lock while the writer thread's duplicate handle may
/// still be writing. The lock belongs to the open file description, so this way it lasts until
/// the last handle — the writer's included — is closed.
pub struct Partial {
    file: File,
    path: PathBuf,
    /// Whether it is the fixed, resumable partial (not a unique one).
    pub resumable: bool,
}

/// The fixed partial name of `target`.
pub fn partial_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.ferry-part"))
}

impl Partial {
    /// Opens (or creates) the partial of `target`, locked for this transfer.
    ///
    /// # Errors
    /// The directory is not writable, or the partial name is taken by something else.
    pub fn open(target: &Path) -> std::io::Result<Partial> {
        let fixed = partial_path(target);
        let file = open_no_follow(&fixed, false)?;
        match file.try_lock() {
            Ok(()) => Ok(Partial {
                file,
                path: fixed,
                resumable: true,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
            Err(std::fs::TryLockError::WouldBlock) => {
                let hex = crate::protocol::hex::encode(&random_bytes::<6>());
                let unique = fixed.with_file_name(format!(
                    "{}-{hex}",
                    fixed
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                let file = open_no_follow(&unique, true)?;
                file.try_lock().map_err(std::io::Error::from)?;
                Ok(Partial {
                    file,
                    path: unique,
                    resumable: false,
                })
            }
        }
    }

    /// Bytes already in the partial.
    pub fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether the partial is empty.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Hashes the first `len` bytes, returning the hasher (to continue with the rest) and the
    /// hex digest of the prefix alone.
    ///
    /// # Errors
    /// Read errors.
    pub fn hash_prefix(
        &mut self,
        algorithm: HashAlgorithm,
        len: u64,
    ) -> std::io::Result<(Hasher, String)> {
        hash_prefix(&mut self.file, algorithm, len)
    }

    /// Keeps the first `len` bytes and positions the file after them for appending.
    ///
    /// # Errors
    /// I/O errors.
    pub fn keep(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    /// A second handle for the writer thread (the lock stays with `self`).
    ///
    /// # Errors
    /// The handle cannot be duplicated.
    pub fn writer(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// Makes the partial the file `target`: durable, with its mode and mtime, renamed into place.
    ///
    /// # Errors
    /// I/O errors; the partial then stays (and may be resumed).
    pub fn finish(
        self,
        target: &Path,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
    ) -> std::io::Result<()> {
        apply_metadata(&self.file, mode, mtime_ns)?;
        self.file.sync_all()?;
        std::fs::rename(&self.path, target)?;
        if let Some(dir) = target.parent() {
            // The rename is durable once the directory is.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    /// Deletes the partial (its bytes failed verification).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens without following a symlink at the last component; `new` demands a fresh file.
fn open_no_follow(path: &Path, new: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW);
    if new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Hashes the first `len` bytes of `file` (from its start).
///
/// # Errors
/// Read errors, or a file shorter than `len`.
pub fn hash_prefix(
    file: &mut File,
    algorithm: HashAlgorithm,
    len: u64,
) -> std::io::Result<(Hasher, String)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Hasher::new(algorithm);
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let prefix = hasher.clone().finish_hex();
    Ok((hasher, prefix))
}

/// Sets permission bits and modification time, for every file and directory a transfer
/// creates, on either end. Only the rwx bits are applied: setuid, setgid and sticky bits from
/// the peer are dropped, so neither end can plant a setuid program on the other.
///
/// # Errors
/// I/O errors.
pub fn apply_metadata(
    file: &File,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = mode {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    if let Some(mtime) = mtime_ns.and_then(time_from_ns) {
        file.set_modified(mtime)?;
    }
    Ok(())
}

/// A modification time in ns since the epoch as a `SystemTime`.
pub fn time_from_ns(ns: i64) -> Option<SystemTime> {
    if ns >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_nanos(ns as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(ns.unsigned_abs()))
    }
}

/// A file's modification time in ns since the epoch (saturating), as entries and transfers
/// carry it.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// A `SystemTime` as ns since the epoch (saturating).
pub fn ns_from_time(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_second_writer_gets_its_own_partial_and_nothing_resumable() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("file.bin");
        let mut first = Partial::open(&target).unwrap();
        assert!(first.resumable);
        first.writer().unwrap().write_all(b"hello").unwrap();
        let second = Partial::open(&target).unwrap();
        assert!(!second.resumable);
        assert_eq!(second.len().unwrap(), 0);
        let (_, prefix) = first.hash_prefix(HashAlgorithm::Sha256, 5).unwrap();
        assert_eq!(prefix.len(), 64);
        first
            .finish(&target, Some(0o4640), Some(1_000_000_000_000))
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        second.discard();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.bin")]);
        let meta = std::fs::metadata(&target).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "setuid dropped");
        assert_eq!(ns_from_time(meta.modified().unwrap()), 1_000_000_000_000);
    }

    #[test]
    fn times_round_trip_both_sides_of_the_epoch() {
        for ns in [0, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_000] {
            assert_eq!(ns_from_time(time_from_ns(ns).unwrap()), ns);
        }
    }
}
