//! The file a rename is about to replace, held open so that freeing it is not part of the
//! transfer.
//!
//! Why: a rename that replaces the last name of a file nobody holds open frees that file on
//! the spot, its blocks and its cached pages, before the rename returns. For a large file (a
//! delta's base, a file sent again) that took 0.28 s of a 1.5 s delta of 1 GiB on the bench
//! machine, after the new file was already durable. Held open across the rename, the old file
//! is freed when it is closed, on a thread of its own, while the answer goes out.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use super::dir_at::open_read_at;

/// The regular files at names renames are about to replace.
#[derive(Default)]
pub struct Replaced(Vec<File>);

impl Replaced {
    /// Holds what `target` in `dir` names now, if it is a regular file (opened never through
    /// a symlink, never waiting on a FIFO).
    pub fn hold(&mut self, dir: &OwnedFd, target: &str) {
        let file = open_read_at(dir.as_fd(), target)
            .ok()
            .map(File::from)
            .filter(|file| file.metadata().is_ok_and(|meta| meta.is_file()));
        self.0.extend(file);
    }

    /// Closes them on a thread of its own (or here, if no thread can be started).
    pub fn close_in_background(self) {
        if self.0.is_empty() {
            return;
        }
        let files = self.0;
        let _ = std::thread::Builder::new()
            .name("ferry-release".into())
            .spawn(move || drop(files));
    }
}
