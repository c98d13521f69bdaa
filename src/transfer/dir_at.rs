//! Operations on a name inside a directory held open: the descriptor-relative building blocks
//! both ends of a transfer use, so that no path is checked and then used again by name.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// Metadata of `name` in `dir` without following a symlink; `None` when it does not exist.
///
/// # Errors
/// I/O errors other than "not found".
pub fn lstat_at<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> io::Result<Option<std::fs::Metadata>> {
    // An O_PATH descriptor of the name itself (the link, not its target) gives std's metadata.
    match rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(File::from(fd).metadata()?)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a name in a directory is, and which file: all a caller needs to tell "still the file
/// I wrote" or "a symlink / a directory in the way", in one `statx` (where [`lstat_at`] takes
/// three: open, stat, close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Regular file, directory, symlink, …
    pub kind: rustix::fs::FileType,
    /// The device it is on.
    pub dev: u64,
    /// Its inode on that device.
    pub ino: u64,
}

/// The [`Identity`] of `name` in `dir` without following a symlink; `None` when it does not
/// exist.
///
/// # Errors
/// I/O errors other than "not found".
pub fn identity_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Identity>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Identity {
            kind: rustix::fs::FileType::from_raw_mode(st.st_mode),
            dev: st.st_dev,
            ino: st.st_ino,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens `name` in `dir` for reading as it is: never through a symlink (`ELOOP`), never
/// waiting on a FIFO (`O_NONBLOCK`).
///
/// # Errors
/// As the OS reports it.
pub fn open_read_at(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// A name as the OS sees it.
pub fn os_name(name: &str) -> &OsStr {
    OsStr::from_bytes(name.as_bytes())
}

/// Removes `name` from `dir`: a file or symlink (never its target) or an empty directory.
///
/// # Errors
/// As the OS reports it.
pub fn remove_at(dir: BorrowedFd<'_>, name: &str, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rustix::fs::unlinkat(dir, name, flags).map_err(io::Error::from)
}
