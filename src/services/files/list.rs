//! `list`: one entry for a file (or, with `itself`, for any path), the children of a
//! directory, or (recursive) the whole tree without following symlinks, streamed in batches.
//! Partial files of transfers in progress are not listed.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use rustix::fs::{Mode, OFlags};
use tokio::io::{AsyncRead, AsyncWrite};

use super::sandbox::{self, Sandbox, io_error};
use crate::connection::Connection;
use crate::protocol::{
    ErrorCode, FileEntry, FileKind, List, ListDone, ListEntries, Message, Permission, Refusal,
};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::dir_at::lstat_at;
use crate::transfer::partial;

/// Entries per `list_entries` message.
const LIST_BATCH: usize = 256;

/// Serves one `list`. Each batch is read by its own short blocking task, and the client is
/// written to between them: a client that stops reading holds no thread.
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_list<S>(
    conn: &mut Connection<S>,
    request: List,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Read, "listing")?;
    let sandbox = ctx.sandbox.clone();
    let mut walk = off_runtime(move || {
        Walk::start(&sandbox, &request.path, request.recursive, request.itself)
    })
    .await??;
    let mut count = 0u64;
    loop {
        let (back, batch) = off_runtime(move || {
            let batch = walk.next_batch();
            (walk, batch)
        })
        .await?;
        walk = back;
        let entries = batch.map_err(|message| Refusal::new(ErrorCode::Io, message))?;
        if entries.is_empty() {
            break;
        }
        count += entries.len() as u64;
        conn.write_message(&Message::ListEntries(ListEntries { entries }))
            .await?;
    }
    conn.write_message(&Message::ListDone(ListDone { count }))
        .await?;
    Ok(())
}

/// A listing in progress, resumable batch by batch. Directories are re-entered from the
/// listed directory's descriptor without following any symlink.
struct Walk {
    base: OwnedFd,
    recursive: bool,
    /// The one entry of a file (or `itself`), not yet sent.
    single: Option<FileEntry>,
    /// Directories still to list, relative to `base` ("" is `base` itself).
    dirs: VecDeque<String>,
    /// The directory being listed: its descriptor, prefix and sorted names not yet described.
    current: Option<(OwnedFd, String, std::vec::IntoIter<std::ffi::CString>)>,
    /// The first path listed of each file with several hard links (device, inode).
    inodes: HashMap<(u64, u64), String>,
}

/// Hard-link groups a listing remembers, at most (beyond, further groups are listed as plain
/// files: a copy with `-H` then copies them).
const MAX_LINK_GROUPS: usize = 1 << 20;

impl Walk {
    fn start(
        sandbox: &Sandbox,
        path: &str,
        recursive: bool,
        itself: bool,
    ) -> Result<Walk, Refusal> {
        let at = sandbox.open(path, OFlags::PATH | OFlags::CLOEXEC)?;
        let meta = File::from(at.try_clone().map_err(|e| io_error(path, &e))?)
            .metadata()
            .map_err(|e| io_error(path, &e))?;
        if itself || !meta.is_dir() {
            return Ok(Walk {
                base: at,
                recursive: false,
                single: Some(describe(String::new(), &meta, None)),
                dirs: VecDeque::new(),
                current: None,
                inodes: HashMap::new(),
            });
        }
        let base = rustix::fs::openat(
            &at,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error(path, &e.into()))?;
        Ok(Walk {
            base,
            recursive,
            single: None,
            dirs: VecDeque::from([String::new()]),
            current: None,
            inodes: HashMap::new(),
        })
    }

    /// Up to [`LIST_BATCH`] more entries; empty at the end.
    fn next_batch(&mut self) -> Result<Vec<FileEntry>, String> {
        if let Some(single) = self.single.take() {
            return Ok(vec![single]);
        }
        let mut batch = Vec::with_capacity(LIST_BATCH);
        while batch.len() < LIST_BATCH {
            let Some((dir, prefix, names)) = &mut self.current else {
                let Some(prefix) = self.dirs.pop_front() else {
                    break;
                };
                let dir = sandbox::open_dir_no_symlinks(self.base.as_fd(), &prefix)
                    .map_err(|e| format!("cannot read '{prefix}': {}", e.message))?;
                let mut names: Vec<std::ffi::CString> = rustix::fs::Dir::read_from(&dir)
                    .map_err(|e| format!("cannot read '{prefix}': {e}"))?
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_owned())
                    .filter(|n| {
                        let n = n.to_bytes();
                        n != b"." && n != b".." && !is_partial(n)
                    })
                    .collect();
                names.sort();
                self.current = Some((dir, prefix, names.into_iter()));
                continue;
            };
            let Some(name) = names.next() else {
                self.current = None;
                continue;
            };
            let (shown, utf8) = match name.to_str() {
                Ok(text) => (text.to_string(), true),
                Err(_) => (escape_invalid_utf8(name.to_bytes()), false),
            };
            let rel = if prefix.is_empty() {
                shown
            } else {
                format!("{prefix}/{shown}")
            };
            let Ok(Some((mut e, inode))) = entry_at(dir.as_fd(), name.as_c_str(), rel.clone())
            else {
                continue;
            };
            if let Some(inode) = inode.filter(|_| self.recursive) {
                e.hard_link_of = self.inodes.get(&inode).cloned();
                if e.hard_link_of.is_none() && self.inodes.len() < MAX_LINK_GROUPS {
                    self.inodes.insert(inode, rel.clone());
                }
            }
            e.not_utf8 = !utf8;
            // A directory no request can name cannot be walked into either: it is listed, and a
            // tree copy names it skipped.
            if self.recursive && e.kind == FileKind::Dir && utf8 {
                self.dirs.push_back(rel);
            }
            batch.push(e);
        }
        Ok(batch)
    }
}

/// Whether a name on disk is one of ferry's partial files (hidden from listings).
fn is_partial(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(partial::is_partial_name)
}

/// A name that is not UTF-8 as text: its valid parts as they are, each invalid byte as `\xNN`.
pub fn escape_invalid_utf8(name: &[u8]) -> String {
    let mut shown = String::with_capacity(name.len() + 8);
    for chunk in name.utf8_chunks() {
        shown.push_str(chunk.valid());
        for byte in chunk.invalid() {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    shown
}

/// A file's device and inode.
type Inode = (u64, u64);

/// Describes `name` in `dir` (not following a symlink), listed as `path`; with its device
/// and inode when it is a regular file with other hard links.
fn entry_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    path: String,
) -> io::Result<Option<(FileEntry, Option<Inode>)>> {
    let Some(meta) = lstat_at(dir, name)? else {
        return Ok(None);
    };
    let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
    let target = if meta.is_symlink() {
        rustix::fs::readlinkat(dir, name, Vec::new())
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok(Some((describe(path, &meta, target), inode)))
}

/// A listing entry from metadata.
pub(super) fn describe(
    path: String,
    meta: &std::fs::Metadata,
    target: Option<String>,
) -> FileEntry {
    let kind = if meta.is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    FileEntry {
        path,
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
        mode: meta.mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(meta),
        target,
        not_utf8: false,
        hard_link_of: None,
    }
}
