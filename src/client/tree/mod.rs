//! Whole trees (`get -r`, `put -r`) as a walk plus single-file transfers, so every file of a
//! tree is verified on its own. Directories get their mode and mtime last, after their contents
//! stopped changing them. Symlinks, devices and fifos inside a tree are not transferred: they
//! are reported in [`TreeReport::skipped`].
//!
//! Both directions keep the connection full instead of paying a round trip per file: the
//! server answers requests in order, so the client sends many before it reads the first
//! answer. `get -r` asks for up to [`GETS_AHEAD`] files ahead; `put -r` sends small files as
//! `whole` puts (request, bytes and `put_end` back to back), up to [`PUTS_AHEAD`] unanswered,
//! and larger ones with the resumable exchange. Received files are made durable in batches
//! ([`commit_all`]: two `syncfs` per batch instead of two `fsync` per file); the server does
//! the same with the puts it receives.

mod get;
mod put;
mod received;

pub use get::{GETS_AHEAD, SMALL_GET, get_tree};
pub use put::{PUTS_AHEAD, WHOLE_PUT_MAX, put_tree};

use super::ClientError;
use super::files::{Check, Transfer};
use crate::protocol::HashAlgorithm;

/// How a tree is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeOptions {
    /// The whole-file hash that proves each file.
    pub algorithm: HashAlgorithm,
    /// Which files count as the same on both sides (and are not copied).
    pub check: Check,
    /// Files the target holds an older version of are sent as deltas (`--whole-file` off).
    pub delta: bool,
}

/// What a tree transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeReport {
    /// Directories created.
    pub dirs: u64,
    /// Each file's relative path and transfer.
    pub files: Vec<(String, Transfer)>,
    /// Relative paths not transferred (symlinks, devices, fifos, non-UTF-8 names), with why.
    pub skipped: Vec<(String, String)>,
    /// Relative paths already the same on both sides (by the tree's [`Check`]): not moved.
    pub up_to_date: Vec<String>,
}

/// Whether the connection is still in step after `e` (the request was answered whole), so the
/// answers to the requests behind it can still be read.
fn in_step(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(_) | ClientError::Integrity(_))
}
