//! Verified files made durable and given their names in batches: a tree's files on the client,
//! pipelined small puts on the server. Each waits sealed — a named partial ([`Partial`]) or an
//! unnamed file ([`Unnamed`]) — until [`commit_all`] syncs the whole batch at once and renames
//! or links each into place.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::dir_at::identity_at;
use super::metadata::apply_metadata;
use super::partial::Partial;
use super::replaced::Replaced;
use super::unnamed::Unnamed;

/// A verified file waiting to be made durable and given its name together with others: a
/// named partial (still locked) or an unnamed file ([`Unnamed`]).
pub struct Sealed {
    staged: Staged,
    target: String,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
}

/// Where a sealed file's bytes wait.
enum Staged {
    Named(Partial),
    Unnamed(Unnamed),
}

impl Staged {
    fn file(&self) -> &File {
        match self {
            Staged::Named(partial) => &partial.file,
            Staged::Unnamed(unnamed) => &unnamed.file,
        }
    }

    fn dir(&self) -> &OwnedFd {
        match self {
            Staged::Named(partial) => &partial.dir,
            Staged::Unnamed(unnamed) => &unnamed.dir,
        }
    }
}

impl Unnamed {
    /// Gives the written file `mode` and `mtime_ns` now (on the thread that wrote it: nobody
    /// else can see it yet, and the commit has less to do) and hands it over to be made
    /// durable and linked as `target` in its directory ([`commit_all`]).
    ///
    /// # Errors
    /// The metadata could not be applied.
    pub fn seal(
        self,
        target: &str,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
    ) -> std::io::Result<Sealed> {
        apply_metadata(&self.file, mode, mtime_ns)?;
        Ok(Sealed {
            staged: Staged::Unnamed(self),
            target: target.to_string(),
            mode: None,
            mtime_ns: None,
        })
    }
}

/// Writes `bytes` as the whole new content of `name` in `dir`, sealed for [`commit_all`]: into
/// an unnamed file where the file system can ([`Unnamed`]), else into its partial (deleted
/// again if the write fails). For files received whole in one go: a tree's small files, on
/// either end.
///
/// # Errors
/// The file could not be created or written (disk full, permissions).
pub fn write_whole(
    dir: Arc<OwnedFd>,
    name: &str,
    bytes: &[u8],
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> std::io::Result<Sealed> {
    use std::io::Write;
    if let Some(mut unnamed) = Unnamed::create(Arc::clone(&dir))? {
        unnamed.file().write_all(bytes)?;
        return unnamed.seal(name, mode, mtime_ns);
    }
    let mut partial = Partial::open_at(dir, name)?;
    match partial
        .keep(0)
        .and_then(|()| partial.writer()?.write_all(bytes))
    {
        Ok(()) => Ok(Sealed::partial(partial, name, mode, mtime_ns)),
        Err(e) => {
            partial.discard();
            Err(e)
        }
    }
}

impl Sealed {
    /// Hands a verified partial over to be made durable and renamed together with others
    /// ([`commit_all`], which applies `mode` and `mtime_ns` first, as [`Partial::finish`]
    /// does). No I/O here: a batch does all of it in one trip to a blocking thread.
    pub fn partial(
        partial: Partial,
        target: &str,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
    ) -> Sealed {
        Sealed {
            staged: Staged::Named(partial),
            target: target.to_string(),
            mode,
            mtime_ns,
        }
    }

    /// Deletes the partial instead (the transfer it belongs to is abandoned); an unnamed file
    /// goes with its descriptor.
    pub fn discard(self) {
        if let Staged::Named(partial) = self.staged {
            partial.discard();
        }
    }
}

/// Makes every sealed file durable and gives each its name, as [`Partial::finish`] does for
/// one, with two `syncfs` in all instead of two `fsync`s per file: one before the renames and
/// links (so no name ever holds bytes that are not on the disk) and one after (so the names
/// are). Per file, one `fsync` costs a journal commit: 1,400 small files a second on the bench
/// machine against 12,500 without; a batch pays for one. The result of each, in order: what
/// the file is under its name (the rename or link changed its ctime), as [`Partial::finish`]
/// gives it.
pub fn commit_all(sealed: Vec<Sealed>) -> Vec<std::io::Result<std::fs::Metadata>> {
    // Each file's metadata applied, and its device and inode noted for the checks below.
    let applied: Vec<std::io::Result<(u64, u64)>> = sealed
        .iter()
        .map(|s| {
            apply_metadata(s.staged.file(), s.mode, s.mtime_ns)?;
            let meta = s.staged.file().metadata()?;
            Ok((meta.dev(), meta.ino()))
        })
        .collect();
    let Some(first) = sealed.first() else {
        return Vec::new();
    };
    let synced = rustix::fs::syncfs(first.staged.dir()).map_err(std::io::Error::from);
    // Every file must be on the file system the first one is on for that `syncfs` to cover
    // it; one elsewhere (a mount inside the tree) is synced on its own.
    let first_dev = applied
        .iter()
        .find_map(|a| a.as_ref().ok().map(|(dev, _)| *dev));
    // Files the renames replace are freed after the batch, off its path (see [`Replaced`]).
    let mut replaced = Replaced::default();
    let results: Vec<std::io::Result<std::fs::Metadata>> = sealed
        .iter()
        .zip(&applied)
        .map(|(s, applied)| {
            let (dev, ino) = match applied {
                Ok(id) => *id,
                Err(e) => return Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            if let Err(e) = &synced {
                return Err(std::io::Error::new(e.kind(), e.to_string()));
            }
            if Some(dev) != first_dev {
                s.staged.file().sync_all()?;
            }
            match &s.staged {
                Staged::Unnamed(unnamed) => unnamed.link(&s.target)?,
                Staged::Named(partial) => {
                    let named = identity_at(partial.dir.as_fd(), &partial.name)?;
                    if !named.is_some_and(|named| named.dev == dev && named.ino == ino) {
                        return Err(std::io::Error::other(
                            "the partial file was replaced while it was written; nothing was kept",
                        ));
                    }
                    replaced.hold(&partial.dir, &s.target);
                    rustix::fs::renameat(
                        partial.dir.as_fd(),
                        &*partial.name,
                        partial.dir.as_fd(),
                        &*s.target,
                    )?;
                }
            }
            s.staged.file().metadata()
        })
        .collect();
    let _ = rustix::fs::syncfs(first.staged.dir());
    replaced.close_in_background();
    // Names in directories of another file system were not covered by that sync.
    for ((s, result), applied) in sealed.iter().zip(&results).zip(&applied) {
        let dev = applied.as_ref().ok().map(|(dev, _)| *dev);
        if result.is_ok() && dev != first_dev {
            let _ = rustix::fs::fsync(s.staged.dir());
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::metadata::ns_from_time;
    use std::io::Write;
    use std::path::Path;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unnamed_files_get_their_name_only_at_the_commit_and_replace_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), b"old bytes").unwrap();
        std::fs::create_dir(dir.path().join("a_dir")).unwrap();
        let fd = Arc::new(OwnedFd::from(File::open(dir.path()).unwrap()));
        let mut sealed = Vec::new();
        for (name, bytes) in [
            ("new", &b"new bytes"[..]),
            ("old", b"newer"),
            ("a_dir", b"x"),
        ] {
            let mut unnamed = Unnamed::create(Arc::clone(&fd))
                .unwrap()
                .expect("O_TMPFILE");
            unnamed.file().write_all(bytes).unwrap();
            sealed.push(
                unnamed
                    .seal(name, Some(0o4640), Some(1_000_000_000_000))
                    .unwrap(),
            );
        }
        // Written, with mode and mtime, and still nowhere to be seen.
        assert_eq!(names_in(dir.path()), ["a_dir", "old"]);
        assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"old bytes");
        let results = commit_all(sealed);
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(results[2].is_err(), "a directory is never replaced");
        assert_eq!(names_in(dir.path()), ["a_dir", "new", "old"]);
        assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), b"new bytes");
        assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"newer");
        assert!(names_in(&dir.path().join("a_dir")).is_empty());
        let meta = std::fs::metadata(dir.path().join("new")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "setuid dropped");
        assert_eq!(ns_from_time(meta.modified().unwrap()), 1_000_000_000_000);
    }

    #[test]
    fn an_unnamed_file_dropped_before_its_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fd = Arc::new(OwnedFd::from(File::open(dir.path()).unwrap()));
        let mut unnamed = Unnamed::create(fd).unwrap().expect("O_TMPFILE");
        unnamed.file().write_all(b"abandoned").unwrap();
        unnamed.seal("file", None, None).unwrap().discard();
        assert!(names_in(dir.path()).is_empty());
    }
}
