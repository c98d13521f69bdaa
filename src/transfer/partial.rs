//! Partial files: where a transfer writes before its bytes are verified, so that nothing but a
//! complete, verified file ever appears under the final name — on either side.
//!
//! The partial of `dir/NAME` is `dir/.NAME.ferry-part` (see [`partial_name`] for names too long
//! for that), a fixed name so that a re-run finds and resumes it. Everything happens relative
//! to the directory's descriptor: the partial is created exclusively (`O_CREAT | O_EXCL |
//! O_NOFOLLOW`), or an existing one is reopened without following a link and used only if it is
//! a regular file with one link owned by this process's user (a hard link to a file elsewhere,
//! a symlink, a FIFO or a directory put there by someone else is set aside, never written
//! through), and the rename into place is from that same directory, after checking that the
//! name still holds the very file written. It is locked (flock) while a transfer writes it; a
//! second transfer to the same target meanwhile writes its own uniquely named partial instead
//! (and does not resume), so two writers never mix their bytes and the last verified one wins
//! whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::dir_at::{identity_at, remove_at};
use super::hashing::Hasher;
use super::metadata::apply_metadata;
use super::replaced::Replaced;
use crate::protocol::HashAlgorithm;
use crate::random::random_bytes;

/// The suffix that marks a partial file.
pub const PARTIAL_SUFFIX: &str = ".ferry-part";
/// Longest file name the usual file systems take (NAME_MAX).
const NAME_MAX: usize = 255;

/// The fixed partial name of the file `name`: `.NAME.ferry-part`, or, when that would exceed
/// 255 bytes, `.PREFIX~HASH.ferry-part` with PREFIX the longest start of NAME that fits and HASH
/// the first 16 hex digits of SHA-256(NAME) (so a long name still has one fixed, resumable
/// partial; PROTOCOL.md describes it for other clients).
pub fn partial_name(name: &str) -> String {
    let plain = format!(".{name}{PARTIAL_SUFFIX}");
    if plain.len() <= NAME_MAX {
        return plain;
    }
    let digest = crate::protocol::hex::encode(
        &ring::digest::digest(&ring::digest::SHA256, name.as_bytes()).as_ref()[..8],
    );
    let room = NAME_MAX - 1 - 1 - digest.len() - PARTIAL_SUFFIX.len();
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}~{digest}{PARTIAL_SUFFIX}", &name[..cut])
}

/// A partial name for `name` that no other transfer uses: the fixed one with a random suffix
/// (`.NAME.ferry-part-1a2b3c4d5e6f`), cut to fit NAME_MAX.
pub fn unique_partial_name(name: &str) -> String {
    let hex = crate::protocol::hex::encode(&random_bytes::<6>());
    let stem = partial_name(name);
    let stem = stem.strip_suffix(PARTIAL_SUFFIX).unwrap_or(&stem);
    let keep = stem
        .len()
        .min(NAME_MAX - PARTIAL_SUFFIX.len() - 1 - hex.len());
    let mut cut = keep;
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{PARTIAL_SUFFIX}-{hex}", &stem[..cut])
}

/// Whether `name` is a partial file's (fixed or unique) name.
pub fn is_partial_name(name: &str) -> bool {
    name.starts_with('.')
        && (name.ends_with(PARTIAL_SUFFIX) || name.contains(&format!("{PARTIAL_SUFFIX}-")))
}

/// The fixed partial path of `target` (the client's own side).
pub fn partial_path(target: &Path) -> std::path::PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(partial_name(&name))
}

/// The directory a local `target` is in (`.` for a bare name) and its name there.
pub fn parent_and_name(target: &Path) -> (&Path, String) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (parent, name)
}

/// Opens the local directory `path` to act on names inside it.
///
/// # Errors
/// It is missing, not a directory, or not readable.
pub fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// A locked partial file, held by its directory's descriptor and its name in it.
///
/// The lock is std's `File::try_lock` (flock) and deliberately not `nix::fcntl::Flock`: that one
/// unlocks explicitly on drop, releasing the lock while the writer thread's duplicate handle may
/// still be writing. The lock belongs to the open file description, so this way it lasts until
/// the last handle — the writer's included — is closed.
pub struct Partial {
    pub(super) file: File,
    pub(super) dir: Arc<OwnedFd>,
    pub(super) name: String,
    /// Whether it is the fixed, resumable partial (not a unique one).
    pub resumable: bool,
    /// Created empty by this open and not written since: keeping nothing of it costs no
    /// syscall (a tree's many small files each would pay for one).
    empty: bool,
}

impl Partial {
    /// Opens (or creates) the partial of the local file `target`: the client's side, where
    /// the path is the user's own.
    ///
    /// # Errors
    /// The directory is missing or not writable.
    pub fn open(target: &Path) -> std::io::Result<Partial> {
        let (parent, name) = parent_and_name(target);
        Partial::open_at(Arc::new(open_dir(parent)?), &name)
    }

    /// Opens (or creates) the partial of `name` in `dir`, locked for this transfer.
    ///
    /// # Errors
    /// The directory is not writable.
    pub fn open_at(dir: Arc<OwnedFd>, name: &str) -> std::io::Result<Partial> {
        let fixed = partial_name(name);
        if let Some((file, created)) = open_usable(&dir, &fixed)? {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Partial {
                        file,
                        dir,
                        name: fixed,
                        resumable: true,
                        empty: created,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
                Err(std::fs::TryLockError::WouldBlock) => {}
            }
        }
        // Busy (another transfer writes it) or unusable: a fresh partial of our own.
        let unique = unique_partial_name(name);
        let file = create_exclusive(&dir, &unique)?;
        file.try_lock().map_err(std::io::Error::from)?;
        Ok(Partial {
            file,
            dir,
            name: unique,
            resumable: false,
            empty: true,
        })
    }

    /// Bytes already in the partial.
    pub fn held_bytes(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
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
        if self.empty && len == 0 {
            self.empty = false;
            return Ok(());
        }
        self.empty = false;
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    /// A second handle for the writer (the lock stays with `self`).
    ///
    /// # Errors
    /// The handle cannot be duplicated.
    pub fn writer(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// The directory that holds the partial (and its target).
    pub fn dir(&self) -> &Arc<OwnedFd> {
        &self.dir
    }

    /// Makes the partial the file `target` (a name in the same directory): durable, with its
    /// mode and mtime, renamed into place. The rename happens only while the partial's name
    /// still holds the very file written, and never replaces a directory.
    ///
    /// # Errors
    /// I/O errors, or the partial's name was taken over meanwhile; the partial then stays (and
    /// may be resumed).
    pub fn finish(
        self,
        target: &str,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
    ) -> std::io::Result<std::fs::Metadata> {
        apply_metadata(&self.file, mode, mtime_ns)?;
        self.file.sync_all()?;
        if !self.still_named()? {
            return Err(std::io::Error::other(
                "the partial file was replaced while it was written; nothing was kept",
            ));
        }
        let mut replaced = Replaced::default();
        replaced.hold(&self.dir, target);
        rustix::fs::renameat(self.dir.as_fd(), &*self.name, self.dir.as_fd(), target)?;
        // The rename is durable once the directory is.
        let _ = rustix::fs::fsync(self.dir.as_fd());
        replaced.close_in_background();
        // What the file is now, under its name (the rename changed its ctime).
        self.file.metadata()
    }

    /// Deletes the partial (its bytes failed verification), if its name still holds it.
    pub fn discard(self) {
        if self.still_named().unwrap_or(false) {
            let _ = remove_at(self.dir.as_fd(), &self.name, false);
        }
    }

    /// Whether the partial's name in its directory still refers to the open file.
    pub(super) fn still_named(&self) -> std::io::Result<bool> {
        let ours = self.file.metadata()?;
        Ok(identity_at(self.dir.as_fd(), &self.name)?
            .is_some_and(|named| named.dev == ours.dev() && named.ino == ours.ino()))
    }
}

/// Creates `name` in `dir` as a new file, never following or reusing anything already there.
fn create_exclusive(dir: &OwnedFd, name: &str) -> std::io::Result<File> {
    let fd = rustix::fs::openat(
        dir.as_fd(),
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// The existing partial `name` in `dir` if it is safe to resume — a regular file with a single
/// link, owned by this process's user — or else a freshly created one in its place; `None` when
/// the name is held by a directory (then a unique partial is used instead).
fn open_usable(dir: &OwnedFd, name: &str) -> std::io::Result<Option<(File, bool)>> {
    for _ in 0..4 {
        match create_exclusive(dir, name) {
            Ok(file) => return Ok(Some((file, true))),
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {}
        }
        let opened = rustix::fs::openat(
            dir.as_fd(),
            name,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata()?;
                if meta.is_file()
                    && meta.nlink() == 1
                    && meta.uid() == rustix::process::geteuid().as_raw()
                {
                    rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
                    return Ok(Some((file, false)));
                }
                if meta.is_dir() {
                    return Ok(None);
                }
            }
            Err(Errno::ISDIR) => return Ok(None),
            // A symlink (ELOOP), a FIFO or socket (ENXIO), gone again (ENOENT): set aside.
            Err(Errno::LOOP | Errno::NXIO | Errno::NOENT | Errno::ACCESS | Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
        // Not ours to write: remove the name (a hard link's other names are untouched).
        match remove_at(dir.as_fd(), name, false) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(Errno::ISDIR.raw_os_error()) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::metadata::ns_from_time;
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
        assert_eq!(second.held_bytes().unwrap(), 0);
        let (_, prefix) = first.hash_prefix(HashAlgorithm::Sha256, 5).unwrap();
        assert_eq!(prefix.len(), 64);
        first
            .finish("file.bin", Some(0o4640), Some(1_000_000_000_000))
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

    /// The names in `dir`, sorted.
    #[test]
    fn long_names_get_partial_names_that_fit_and_match_the_protocol() {
        assert_eq!(partial_name("report.pdf"), ".report.pdf.ferry-part");
        let long = "a".repeat(250);
        // The same value PROTOCOL.md's rule gives in the Python client.
        assert_eq!(
            partial_name(&long),
            format!(".{}~3f3e35e0a775d9b1.ferry-part", "a".repeat(226))
        );
        for name in ["é".repeat(127), "x".repeat(243), "x".repeat(255)] {
            let partial = partial_name(&name);
            assert!(partial.len() <= 255, "{} bytes", partial.len());
            assert!(is_partial_name(&partial));
        }
        assert!(!is_partial_name("ferry-part") && !is_partial_name(".hidden"));
    }
}
