//! Links on the local side of a tree copy: symlinks made as links (their text byte for byte,
//! their own mtime), hard links kept among a tree's files (`-H`), and the rule that nothing a
//! copy writes goes through a symlink.
//!
//! A `get -r` now makes symlinks whose text a server chose, so a later run must not write
//! through one: a hostile server could list `a` as a link to `~/.ssh` in one run and a file
//! `a/authorized_keys` in the next. [`RealDirs`] checks every directory between the target and
//! what is written (a link where the source has a directory is removed by the plan first).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::plan::Plan;
use crate::client::ClientError;
use crate::protocol::FileEntry;

/// Files of a tree that are hard links to an earlier file of it: made as links, not copied.
#[derive(Debug, Default)]
pub struct HardLinks {
    /// Each linked path and the first path of its group.
    links: Vec<(String, String)>,
    linked: HashSet<String>,
}

impl HardLinks {
    /// The groups a listing names (`hard_link_of`), among the files the plan copies; nothing
    /// when `-H` is off.
    pub fn of(plan: &Plan, enabled: bool) -> HardLinks {
        let pairs = plan
            .files
            .iter()
            .filter_map(|(e, _)| Some((e.path.clone(), e.hard_link_of.clone()?)));
        HardLinks::among(plan, enabled, pairs)
    }

    /// The groups of a local walk (device and inode of each file with other links).
    pub fn of_inodes(plan: &Plan, enabled: bool, inodes: &[(String, (u64, u64))]) -> HardLinks {
        let mut first: HashMap<(u64, u64), &str> = HashMap::new();
        let mut pairs = Vec::new();
        for (path, inode) in inodes {
            match first.get(inode) {
                Some(original) => pairs.push((path.clone(), original.to_string())),
                None => {
                    first.insert(*inode, path);
                }
            }
        }
        HardLinks::among(plan, enabled, pairs.into_iter())
    }

    fn among(
        plan: &Plan,
        enabled: bool,
        pairs: impl Iterator<Item = (String, String)>,
    ) -> HardLinks {
        if !enabled {
            return HardLinks::default();
        }
        let files: HashSet<&str> = plan.files.iter().map(|(e, _)| e.path.as_str()).collect();
        let links: Vec<(String, String)> = pairs
            .filter(|(path, first)| path != first && files.contains(first.as_str()))
            .collect();
        let linked = links.iter().map(|(path, _)| path.clone()).collect();
        HardLinks { links, linked }
    }

    /// Whether `path` is made as a link rather than copied.
    pub fn is_link(&self, path: &str) -> bool {
        self.linked.contains(path)
    }

    /// Each linked path and the path it links to.
    pub fn links(&self) -> impl Iterator<Item = &(String, String)> {
        self.links.iter()
    }
}

/// The directories between a tree's target and what is written, checked to be directories
/// and not symlinks (each once).
pub struct RealDirs {
    target: PathBuf,
    known: HashSet<PathBuf>,
}

impl RealDirs {
    /// Checks beneath `target` (itself the user's choice: it may be a link).
    pub fn new(target: &Path) -> Self {
        RealDirs {
            target: target.to_path_buf(),
            known: HashSet::new(),
        }
    }

    /// Checks that every directory from the target down to `path`'s parent is a directory
    /// and not a symlink (a missing one is fine: it is about to be made).
    ///
    /// # Errors
    /// [`ClientError::Protocol`] naming the link in the way.
    pub fn check_parent(&mut self, path: &Path) -> Result<(), ClientError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        let Ok(below) = parent.strip_prefix(&self.target) else {
            return Ok(());
        };
        let mut at = self.target.clone();
        for name in below.components() {
            at.push(name);
            if self.known.contains(&at) {
                continue;
            }
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                    return Err(ClientError::Protocol(format!(
                        "{} is not a directory here (a link or a file); ferry does not write through it",
                        at.display()
                    )));
                }
                Ok(_) => {
                    self.known.insert(at.clone());
                }
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Forgets `path` (removed), so it is checked again if something is made there.
    pub fn forget(&mut self, path: &Path) {
        self.known.remove(path);
    }
}

/// A temporary name beside `path`, hidden as a partial is (never listed, never a target).
fn beside(path: &Path) -> PathBuf {
    let (parent, name) = crate::transfer::partial::parent_and_name(path);
    parent.join(crate::transfer::partial::unique_partial_name(&name))
}

/// Makes `path` the symlink `link` describes (its text, its own mtime), replacing a file or a
/// link there at once: made under a temporary name and renamed over it.
///
/// # Errors
/// I/O errors.
pub fn make_link(path: &Path, link: &FileEntry) -> std::io::Result<()> {
    let text = link
        .target
        .as_deref()
        .ok_or_else(|| std::io::Error::other("a symlink without its text"))?;
    let temporary = beside(path);
    std::os::unix::fs::symlink(text, &temporary)?;
    let placed = (|| {
        let (parent, name) = crate::transfer::partial::parent_and_name(&temporary);
        let dir = std::fs::File::open(parent)?;
        crate::transfer::metadata::set_link_mtime(
            std::os::fd::AsFd::as_fd(&dir),
            &name,
            link.mtime_ns,
        )?;
        std::fs::rename(&temporary, path)
    })();
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed
}

/// Makes `path` a hard link to `original` (already in place), replacing a file there.
///
/// # Errors
/// I/O errors.
pub fn hard_link(original: &Path, path: &Path) -> std::io::Result<()> {
    if let (Ok(a), Ok(b)) = (std::fs::metadata(original), std::fs::symlink_metadata(path))
        && (a.dev(), a.ino()) == (b.dev(), b.ino())
    {
        return Ok(());
    }
    let temporary = beside(path);
    std::fs::hard_link(original, &temporary)?;
    let placed = std::fs::rename(&temporary, path);
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed
}

/// Sets the mode and mtime of the regular file at `path`, never through a symlink.
///
/// # Errors
/// I/O errors; a link or anything but a file there.
pub fn set_attrs(path: &Path, mode: u32, mtime_ns: i64) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    crate::transfer::metadata::apply_metadata(&file, Some(mode), Some(mtime_ns))
}
