//! The server root as a sandbox: every client path is resolved under it and nothing outside it
//! is ever read, written, created or removed — not through `..`, an absolute path, or a
//! symlink, and not while a local user swaps directories and symlinks under a running request.
//!
//! Two layers: [`components`] (in `protocol::path`) is a pure check of the path text (only plain names), and
//! [`Sandbox`] acts on disk **only through directory descriptors**: the root is opened once at
//! start, every client path is opened from it with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` (the kernel refuses any resolution that would leave the root, at the
//! moment of the open), and every later step — `fstat`, `*at` creation, rename, unlink, mkdir —
//! acts on the descriptors that resolution returned. A path is never checked and then used
//! again by name, so there is no window between the check and the use for a swap to slip into.
//! Symlinks inside the root are followed while they stay inside; the final name of a write,
//! remove or mkdir is never followed.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::protocol::path::components;
use crate::protocol::{ErrorCode, Refusal};
pub use crate::transfer::dir_at::remove_at;
use crate::transfer::dir_at::{identity_at, lstat_at};

fn refuse(code: ErrorCode, message: String) -> Refusal {
    Refusal::new(code, message)
}

/// [`components`], plus what only the server refuses: names of partial files, which belong to
/// transfers in progress (another client naming one could write into, read or remove someone
/// else's upload).
///
/// # Errors
/// [`ErrorCode::BadPath`] naming the problem.
pub fn client_components(path: &str) -> Result<Vec<&str>, Refusal> {
    let names = components(path)?;
    if let Some(name) = names
        .iter()
        .find(|n| crate::transfer::partial::is_partial_name(n))
    {
        return Err(refuse(
            ErrorCode::BadPath,
            format!("'{name}' is the partial file of a transfer in progress; it cannot be named"),
        ));
    }
    Ok(names)
}

/// How every client path is resolved: beneath the directory it starts from, never through a
/// `/proc` magic link. The kernel checks this during the walk itself.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// How often a resolution the kernel could not prove safe (`EAGAIN`: a rename raced the walk)
/// is retried before the request is refused.
const RACE_RETRIES: usize = 16;

/// The root directory, held open. Cheap to clone (one shared descriptor).
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: Arc<OwnedFd>,
}

/// A directory found under the root (held open) and a plain name in it: where a write, a
/// remove or a mkdir acts.
#[derive(Debug)]
pub struct Place {
    /// The directory, opened beneath the root.
    pub dir: Arc<OwnedFd>,
    /// The last name, a plain name in `dir`.
    pub name: String,
}

impl Sandbox {
    /// Opens the root. The root path itself is trusted (the operator chose it); everything
    /// below it is not.
    ///
    /// # Errors
    /// The root cannot be opened as a directory.
    pub fn at(root: &Path) -> io::Result<Sandbox> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Sandbox { root: Arc::new(fd) })
    }

    /// The root directory's descriptor.
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the client path `path` beneath the root with `flags`, following symlinks only
    /// while they stay beneath it.
    ///
    /// # Errors
    /// `bad_path` (outside the root, a partial's name), `not_found`, `io`.
    pub fn open(&self, path: &str, flags: OFlags) -> Result<OwnedFd, Refusal> {
        let names = client_components(path)?;
        open_beneath(self.root.as_fd(), &names.join("/"), flags, path)
    }

    /// Opens a regular file for reading. Opened without blocking (a FIFO would otherwise wait
    /// for a writer) and checked on the descriptor itself, so what is sent is what was checked.
    ///
    /// # Errors
    /// `not_a_file` for directories, devices, FIFOs and sockets; as [`Sandbox::open`].
    pub fn open_regular(&self, path: &str) -> Result<(File, std::fs::Metadata), Refusal> {
        let fd = self.open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        )?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_error(path, &e))?;
        if meta.is_dir() {
            return Err(refuse(
                ErrorCode::NotAFile,
                format!("'{path}' is a directory; use get -r"),
            ));
        }
        if !meta.is_file() {
            return Err(refuse(
                ErrorCode::NotAFile,
                format!("'{path}' is not a regular file (a device, fifo or socket)"),
            ));
        }
        // Regular files ignore O_NONBLOCK, but clear it so the flag cannot surprise a reader.
        let _ = rustix::fs::fcntl_setfl(&file, OFlags::empty());
        Ok((file, meta))
    }

    /// The directory that holds `path`'s last name, opened beneath the root, and that name.
    ///
    /// # Errors
    /// `bad_path` for the root itself (no name) and as [`Sandbox::open`]; `not_a_file` when
    /// the parent is not a directory.
    pub fn place(&self, path: &str) -> Result<Place, Refusal> {
        self.place_among(path, &mut PlaceDirs::default())
    }

    /// As [`Sandbox::place`], taking the directory from `dirs` when an earlier place of the
    /// same batch opened it: a tree's files come a hundred to a directory, and one `openat2`
    /// per directory instead of per file is a tenth of what a small put costs the server.
    /// The descriptor stays the directory it was when first opened, as it would for a single
    /// request that takes a few milliseconds; a batch lives no longer than that.
    ///
    /// # Errors
    /// As [`Sandbox::place`].
    pub fn place_among(&self, path: &str, dirs: &mut PlaceDirs) -> Result<Place, Refusal> {
        let names = client_components(path)?;
        let Some((name, parents)) = names.split_last() else {
            return Err(refuse(
                ErrorCode::BadPath,
                "the server root itself cannot be named here".into(),
            ));
        };
        let parent = parents.join("/");
        let dir = match dirs.opened.get(&parent) {
            Some(dir) => Arc::clone(dir),
            None => {
                let dir = Arc::new(open_beneath(
                    self.root.as_fd(),
                    &parent,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    path,
                )?);
                dirs.opened.insert(parent, Arc::clone(&dir));
                dir
            }
        };
        Ok(Place {
            dir,
            name: (*name).to_string(),
        })
    }
}

/// Directories a batch of places has opened, by their path beneath the root.
#[derive(Default)]
pub struct PlaceDirs {
    opened: std::collections::HashMap<String, Arc<OwnedFd>>,
}

impl Place {
    /// What is at this place, not following a symlink; `None` when nothing is.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn lstat(&self) -> io::Result<Option<std::fs::Metadata>> {
        lstat_at(self.dir.as_fd(), &self.name)
    }

    /// What kind of thing is at this place, not following a symlink; `None` when nothing is.
    /// One `statx`, for the hot path of a put.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn kind(&self) -> io::Result<Option<rustix::fs::FileType>> {
        Ok(identity_at(self.dir.as_fd(), &self.name)?.map(|found| found.kind))
    }
}

/// Opens `rel` (plain names joined by `/`, or empty for `dir` itself) beneath `dir`.
fn open_beneath(
    dir: BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
    shown: &str,
) -> Result<OwnedFd, Refusal> {
    openat2_retrying(dir, rel, flags, BENEATH).map_err(|e| errno_error(shown, e))
}

/// Opens `rel` beneath `dir` following no symlink at all: how a tree walk re-enters the
/// directories it listed.
///
/// # Errors
/// As [`Sandbox::open`]; a symlink anywhere in `rel` is `bad_path`.
pub fn open_dir_no_symlinks(dir: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, Refusal> {
    openat2_retrying(
        dir,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| errno_error(rel, e))
}

/// `openat2`, retried while the kernel could not prove the resolution safe (`EAGAIN`: a
/// rename raced the walk), at most [`RACE_RETRIES`] times.
fn openat2_retrying(
    dir: BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { "." } else { rel };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < RACE_RETRIES => tries += 1,
            result => return result,
        }
    }
}

fn errno_error(path: &str, e: Errno) -> Refusal {
    match e {
        Errno::XDEV => refuse(
            ErrorCode::BadPath,
            format!("'{path}' leads outside the server root (through a symlink)"),
        ),
        Errno::LOOP => refuse(
            ErrorCode::BadPath,
            format!("'{path}' goes through a symlink ferry does not follow here"),
        ),
        Errno::NOTDIR => refuse(
            ErrorCode::NotAFile,
            format!("'{path}': a part of it that should be a directory is not one"),
        ),
        Errno::AGAIN => refuse(
            ErrorCode::Io,
            format!("'{path}' was being renamed while it was opened; try again"),
        ),
        e => io_error(path, &io::Error::from(e)),
    }
}

/// A file system error about `path`, with the matching code.
pub fn io_error(path: &str, e: &io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::NotFound => refuse(ErrorCode::NotFound, format!("'{path}' does not exist")),
        _ => refuse(ErrorCode::Io, format!("'{path}': {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_are_refused_from_clients() {
        for bad in [
            ".x.ferry-part",
            "d/.report.txt.ferry-part",
            ".y.ferry-part/z",
            ".a.ferry-part-0123abcd",
        ] {
            assert_eq!(
                client_components(bad).unwrap_err().code,
                ErrorCode::BadPath,
                "{bad:?}"
            );
        }
        assert!(client_components(".hidden").is_ok());
        assert!(client_components("ferry-part").is_ok());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join("sub/ok.txt"), "ok").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("outrel")).unwrap();
        std::os::unix::fs::symlink("sub/ok.txt", root.join("in")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("outdir")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root", root.join("magic")).unwrap();
        let sandbox = Sandbox::at(&root).unwrap();
        for bad in ["out", "outrel", "outdir/secret", "magic/etc/passwd"] {
            assert_eq!(
                sandbox.open_regular(bad).unwrap_err().code,
                ErrorCode::BadPath,
                "{bad}"
            );
        }
        let (mut file, _) = sandbox.open_regular("in").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "ok");
        assert_eq!(
            sandbox.open_regular("nope").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            sandbox.open_regular("sub").unwrap_err().code,
            ErrorCode::NotAFile
        );
        assert_eq!(
            sandbox.place("outdir/new").unwrap_err().code,
            ErrorCode::BadPath
        );
        let place = sandbox.place("in").unwrap();
        assert!(place.lstat().unwrap().unwrap().is_symlink());
        assert!(
            sandbox
                .place("sub/new.txt")
                .unwrap()
                .lstat()
                .unwrap()
                .is_none()
        );
        assert_eq!(
            sandbox.place("sub/ok.txt/x").unwrap_err().code,
            ErrorCode::NotAFile
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RWXU,
            0,
        )
        .unwrap();
        let sandbox = Sandbox::at(dir.path()).unwrap();
        assert_eq!(
            sandbox.open_regular("fifo").unwrap_err().code,
            ErrorCode::NotAFile
        );
    }
}
