//! A local tree as entries of the same shape a server lists, so one planner compares a source
//! and a target whichever side each is on.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::filter::Filter;
use crate::client::ClientError;
use crate::client::files::join_remote;
use crate::protocol::{FileEntry, FileKind};

/// How a walk treats symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Links {
    /// Symlinks are entries of their own (their text), never followed (`-l`, part of `-a`).
    #[default]
    Keep,
    /// What a symlink points to is walked instead (`--copy-links`); a dangling one is skipped.
    Follow,
}

/// A walked tree: its entries (relative paths, parents before children; `""` the top) with
/// where each is on disk, and what was left out with why.
#[derive(Debug, Default)]
pub struct LocalTree {
    /// Each entry and its local path.
    pub entries: Vec<(FileEntry, PathBuf)>,
    /// Paths not taken (names that are not UTF-8, dangling links followed, loops), with why.
    pub skipped: Vec<(String, String)>,
    /// Each file's device and inode when it has other hard links (for `-H`).
    pub inodes: Vec<(String, (u64, u64))>,
}

/// Walks `root` (names sorted, parents first), leaving out what `filter` excludes (an
/// excluded directory is not entered). A missing root is an empty tree.
///
/// # Errors
/// A directory or entry that cannot be read.
pub fn walk(root: &Path, filter: &Filter, links: Links) -> Result<LocalTree, ClientError> {
    let local_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Local { path, source }
    };
    let mut tree = LocalTree::default();
    let top = match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => return Ok(tree),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tree),
        Err(e) => return Err(local_err(root)(e)),
    };
    tree.entries
        .push((entry_of(String::new(), &top, None), root.to_path_buf()));
    // Directories being walked (followed links could lead back into them).
    let mut seen: HashSet<(u64, u64)> = HashSet::from([(top.dev(), top.ino())]);
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = pending.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(local_err(&dir))?
            .filter_map(Result::ok)
            .collect();
        children.sort_by_key(std::fs::DirEntry::file_name);
        let mut subdirs = Vec::new();
        for child in children {
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                let shown = child.file_name().to_string_lossy().into_owned();
                tree.skipped
                    .push((join_remote(&rel_dir, &shown), "name is not UTF-8".into()));
                continue;
            };
            let rel = join_remote(&rel_dir, &name);
            let path = child.path();
            let lmeta = std::fs::symlink_metadata(&path).map_err(local_err(&path))?;
            let (meta, target) = if lmeta.file_type().is_symlink() {
                match links {
                    Links::Keep => {
                        let text = std::fs::read_link(&path).map_err(local_err(&path))?;
                        let Some(text) = text.to_str().map(str::to_string) else {
                            tree.skipped
                                .push((rel, "the link's text is not UTF-8".into()));
                            continue;
                        };
                        (lmeta, Some(text))
                    }
                    Links::Follow => match std::fs::metadata(&path) {
                        Ok(meta) => (meta, None),
                        Err(_) => {
                            tree.skipped.push((rel, "dangling symlink".into()));
                            continue;
                        }
                    },
                }
            } else {
                (lmeta, None)
            };
            let is_dir = meta.is_dir() && target.is_none();
            if filter.excludes(&rel, is_dir) {
                continue;
            }
            if is_dir {
                if !seen.insert((meta.dev(), meta.ino())) {
                    tree.skipped
                        .push((rel, "a link back into the tree (a loop)".into()));
                    continue;
                }
                subdirs.push((path.clone(), rel.clone()));
            } else if meta.is_file() && meta.nlink() > 1 {
                tree.inodes.push((rel.clone(), (meta.dev(), meta.ino())));
            }
            tree.entries.push((entry_of(rel, &meta, target), path));
        }
        // Depth first, in name order: pushed in reverse so the first name is walked first.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(tree)
}

/// The entry describing `meta` (and, for a symlink, its text).
fn entry_of(rel: String, meta: &std::fs::Metadata, target: Option<String>) -> FileEntry {
    let kind = if target.is_some() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    FileEntry {
        path: rel,
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(meta),
        target,
        not_utf8: false,
        hard_link_of: None,
    }
}
