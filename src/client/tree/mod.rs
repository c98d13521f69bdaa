//! Whole trees (`get -r`, `put -r`), rsync's job: both sides listed, a [`plan`] of what
//! changes (with filters, a mirror's removals and a dry run that stops at the plan), then
//! single-file transfers, so every file of a tree is verified on its own — as a delta when the
//! target holds an older version. Symlinks are copied as symlinks (their text byte for byte),
//! hard links kept with `-H`; devices and fifos are named and skipped ([`TreeReport::skipped`]).
//! Directories get their mode and mtime last, after their contents stopped changing them.
//!
//! Both directions keep the connection full instead of paying a round trip per file: the
//! server answers requests in order, so the client sends many before it reads the first
//! answer. `get -r` asks for up to [`GETS_AHEAD`] files ahead; `put -r` sends small files as
//! `whole` puts (request, bytes and `put_end` back to back), up to [`PUTS_AHEAD`] unanswered,
//! and larger ones with the resumable exchange. Received files are made durable in batches
//! ([`commit_all`](crate::transfer::commit::commit_all): two `syncfs` per batch instead of two `fsync` per file); the server does
//! the same with the puts it receives.

pub mod filter;
mod get;
pub mod links;
pub mod local;
pub mod plan;
mod put;
mod received;

pub use filter::{Filter, IGNORE_FILE, Rule};
pub use get::{GETS_AHEAD, SMALL_GET, get_tree};
pub use local::Links;
pub use plan::Delete;
pub use put::{PUTS_AHEAD, WHOLE_PUT_MAX, local_filter as source_filter, put_tree};

use super::ClientError;
use super::files::{Check, Transfer};
use crate::protocol::HashAlgorithm;

/// How a tree is copied.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// The whole-file hash that proves each file.
    pub algorithm: HashAlgorithm,
    /// Which files count as the same on both sides (and are not copied).
    pub check: Check,
    /// Files the target holds an older version of are sent as deltas (`--whole-file` off).
    pub delta: bool,
    /// Large files' blocks go zstd-compressed where it pays (`-z`).
    pub compress: bool,
    /// `--exclude` / `--include` rules.
    pub filter: Filter,
    /// The source's `.ferryignore` is read (`--no-ignore` off).
    pub ignore_file: bool,
    /// Symlinks copied as links (`-l`) or followed (`--copy-links`, local sources only).
    pub links: Links,
    /// Hard links among the tree's files are kept (`-H`).
    pub hard_links: bool,
    /// What a mirror removes from the target.
    pub delete: Delete,
    /// Only plan: the report lists what would change, and nothing changes on either side.
    pub dry_run: bool,
    /// Asked before a mirror removes anything (where, files, directories, bytes); `None` goes
    /// ahead (the caller asked or was told to).
    pub approve_removals: Option<ApproveRemovals>,
}

/// Asked before a mirror removes anything: the target, then the files, directories and bytes
/// to remove; `true` goes ahead.
pub type ApproveRemovals = fn(&str, u64, u64, u64) -> bool;

impl TreeOptions {
    /// A plain copy: deltas on, links kept, nothing removed.
    pub fn new(algorithm: HashAlgorithm, check: Check) -> Self {
        TreeOptions {
            algorithm,
            check,
            delta: true,
            compress: false,
            filter: Filter::default(),
            ignore_file: true,
            links: Links::Keep,
            hard_links: false,
            delete: Delete::Nothing,
            dry_run: false,
            approve_removals: None,
        }
    }
}

/// One change a tree copy makes (or, in a dry run, would make).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A file the target lacks.
    Create,
    /// A file the target holds another version of (sent as a delta when deltas are on).
    Update,
    /// A symlink made or its text changed.
    Link,
    /// A hard link to another file of the tree.
    HardLink,
    /// A directory made.
    Mkdir,
    /// A file already the same whose mode or mtime is set.
    Attrs,
    /// Removed from the target.
    Delete,
}

impl Change {
    /// How a dry run names it.
    pub fn word(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Link => "link",
            Change::HardLink => "hardlink",
            Change::Mkdir => "mkdir",
            Change::Attrs => "attrs",
            Change::Delete => "delete",
        }
    }
}

/// What a tree transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeReport {
    /// Directories created.
    pub dirs: u64,
    /// Each file's relative path and transfer.
    pub files: Vec<(String, Transfer)>,
    /// Relative paths not transferred (devices, fifos, non-UTF-8 names), with why.
    pub skipped: Vec<(String, String)>,
    /// Relative paths already the same on both sides (by the tree's [`Check`]): not moved.
    pub up_to_date: Vec<String>,
    /// Symlinks and hard links made.
    pub links: Vec<String>,
    /// Files already the same whose mode or mtime was set.
    pub attrs: Vec<String>,
    /// Paths removed from the target (a mirror's, or what was in the way).
    pub removed: Vec<String>,
    /// A dry run's plan: every change it would make, in order, with the size of each file.
    pub planned: Vec<(String, Change, u64)>,
}

/// Whether a file the target holds with the same content needs its mode or mtime set to the
/// source's (rsync's `-a` keeps both even when no byte moves).
fn attrs_differ(source: &crate::protocol::FileEntry, held: &crate::protocol::FileEntry) -> bool {
    source.mode & 0o777 != held.mode & 0o777 || source.mtime_ns != held.mtime_ns
}

/// Whether the connection is still in step after `e` (the request was answered whole), so the
/// answers to the requests behind it can still be read.
fn in_step(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(_) | ClientError::Integrity(_))
}
