//! Abandoned partial files: a transfer that never came back leaves its `.NAME.ferry-part`
//! behind (kept so that a re-run resumes). Those untouched for `limits.partial_max_age_ms`
//! and held by no transfer (each writer holds an exclusive lock on its partial) are removed.
//!
//! The walk goes only through directory descriptors beneath the root, never following a
//! symlink, like every other file operation of the server.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime};

use rustix::fs::{Dir, FileType, FlockOperation, Mode, OFlags};

use super::sandbox::Sandbox;
use crate::transfer::dir_at::{lstat_at, open_read_at, remove_at};
use crate::transfer::partial::is_partial_name;

/// Directories deeper than this are not walked (a tree this deep is not made by transfers).
const MAX_DEPTH: usize = 64;

/// Removes the partials beneath the root untouched for `max_age`; returns how many. Runs on a
/// blocking thread.
pub fn sweep_partials(sandbox: &Sandbox, max_age: Duration) -> usize {
    let Ok(root) = rustix::fs::openat(
        sandbox.root_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let cutoff = SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let mut pending = vec![(root, 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = Dir::read_from(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            match entry.file_type() {
                FileType::Directory if depth < MAX_DEPTH => {
                    if let Ok(child) = rustix::fs::openat(
                        &dir,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        pending.push((child, depth + 1));
                    }
                }
                FileType::RegularFile if is_partial_name(&name) => {
                    // Claimed (locked) while it is removed: a transfer that comes back meanwhile
                    // cannot take it over half-deleted.
                    let Some(claimed) = claim(&dir, &name, cutoff) else {
                        continue;
                    };
                    // The name is removed only while it still holds the file claimed: a swap
                    // between the claim and the unlink leaves whatever replaced it alone.
                    if still_named(&dir, &name, &claimed)
                        && remove_at(dir.as_fd(), &name, false).is_ok()
                    {
                        tracing::info!(partial = %name, "removed an abandoned partial file");
                        removed += 1;
                    }
                }
                _ => {}
            }
        }
    }
    removed
}

/// Whether `name` in `dir` is still the file `claimed` (same device and inode).
fn still_named(dir: &OwnedFd, name: &str, claimed: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(ours), Ok(Some(named))) = (claimed.metadata(), lstat_at(dir.as_fd(), name)) else {
        return false;
    };
    named.dev() == ours.dev() && named.ino() == ours.ino()
}

/// The partial `name` in `dir`, locked, if it is older than `cutoff` and no transfer holds it.
fn claim(dir: &OwnedFd, name: &str, cutoff: SystemTime) -> Option<File> {
    let Ok(fd) = open_read_at(dir.as_fd(), name) else {
        return None;
    };
    let file = File::from(fd);
    let old = file
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified < cutoff);
    // A transfer in progress holds the lock; the sweep's own lock goes with `file`.
    (old && rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok())
        .then_some(file)
}
