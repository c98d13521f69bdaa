//! Operations on a name inside a directory held open: the descriptor-relative building blocks
//! both ends of a transfer use, so that no path is checked and then used again by name.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// Metadata of `name` in `dir` without following a symlink; `None` when it does not exist.
///
/// # Errors
/// I/O errors other than "not found".
pub fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<std::fs::Metadata>> {
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
