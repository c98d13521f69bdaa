//! Small received files written with no name at all (`O_TMPFILE`) and linked into place once
//! durable: the cheapest way to keep the partial-file promise — nothing but a complete,
//! verified, durable file ever appears under the final name — for a tree's many small files.
//!
//! A named partial costs a directory entry made, looked up again (is it still ours?) and
//! renamed away per file; an unnamed file costs one `linkat` that gives it its name. Nobody
//! else can open a file that has no name, so it needs no lock and no "still ours" check, and a
//! transfer killed before the link leaves nothing behind (the kernel frees the inode). With it,
//! a tree of 10,000 small files went 1.25 s → 0.80–1.02 s (put) on the bench machine
//! (bench/README.md).
//!
//! Not resumable — it has no name a re-run could find — so only files written whole in one
//! go use it (the small files of `get -r` and of `put -r`); where the file system or the
//! process cannot (no `O_TMPFILE`, or no `/proc` to link through), [`Unnamed::create`] says so
//! and the caller writes a named [`Partial`](super::partial::Partial) instead.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::partial::unique_partial_name;

/// A new regular file in a directory, with no name yet.
pub struct Unnamed {
    pub(super) file: File,
    pub(super) dir: Arc<OwnedFd>,
}

/// Whether this process can name an unnamed file: `linkat` needs the file as a path, and
/// `/proc/self/fd/N` is that path (the `AT_EMPTY_PATH` form needs `CAP_DAC_READ_SEARCH`).
fn proc_fd_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir())
}

impl Unnamed {
    /// Creates an unnamed file (mode 0600 until its own mode is applied) in `dir`; `None` when
    /// this file system or process cannot, so the caller falls back to a named partial.
    ///
    /// # Errors
    /// The directory is not writable, the disk is full, and other I/O errors.
    pub fn create(dir: Arc<OwnedFd>) -> std::io::Result<Option<Unnamed>> {
        if !proc_fd_usable() {
            return Ok(None);
        }
        match rustix::fs::openat(
            dir.as_fd(),
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => Ok(Some(Unnamed {
                file: File::from(fd),
                dir,
            })),
            // No O_TMPFILE here: EOPNOTSUPP from the file system, EISDIR or EINVAL from a
            // kernel that predates it (it includes O_DIRECTORY).
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The file, to write its bytes.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the file the name `target` in its directory, replacing a file already there as a
    /// rename would (atomically: through a unique partial name, then renamed over it). Only
    /// once its bytes are durable: the name appears holding them whole.
    ///
    /// # Errors
    /// I/O errors (a directory in the way: `EISDIR` from the rename); nothing is left named.
    pub(super) fn link(&self, target: &str) -> std::io::Result<()> {
        let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let link_as = |name: &str| {
            rustix::fs::linkat(
                rustix::fs::CWD,
                path.as_str(),
                self.dir.as_fd(),
                name,
                AtFlags::SYMLINK_FOLLOW,
            )
        };
        match link_as(target) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let unique = unique_partial_name(target);
                link_as(&unique)?;
                rustix::fs::renameat(self.dir.as_fd(), &*unique, self.dir.as_fd(), target).map_err(
                    |e| {
                        let _ = rustix::fs::unlinkat(self.dir.as_fd(), &*unique, AtFlags::empty());
                        e.into()
                    },
                )
            }
            Err(e) => Err(e.into()),
        }
    }
}
