//! The file service's server side: `list`, `get`, `put`, `mkdir`, `remove`, all inside the
//! sandbox, with `read` or `write` permission.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use tokio::io::{AsyncRead, AsyncWrite};

use super::hashing::Hasher;
use super::partial::{self, Partial};
use super::sandbox::{self, PathError, Sandbox, io_error, lstat_at};
use super::transfer::{self, CHUNK, TransferError};
use crate::connection::Connection;
use crate::protocol::{ErrorCode, FileEntry, FileKind, HashAlgorithm, Message, Permission};
use crate::services::SessionContext;

/// Entries per `list_entries` message.
const LIST_BATCH: usize = 256;

/// A refusal to send as `error`; the session continues.
struct Refusal(ErrorCode, String);

impl From<PathError> for Refusal {
    fn from(e: PathError) -> Self {
        Refusal(e.code, e.message)
    }
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal(code, message.into())
}

fn need(ctx: &SessionContext, permission: Permission, what: &str) -> Result<(), Refusal> {
    if ctx.identity.permissions.contains(permission) {
        Ok(())
    } else {
        Err(refusal(
            ErrorCode::PermissionDenied,
            format!("{what} needs the '{permission}' permission; connect with a token that has it"),
        ))
    }
}

/// Runs `work` and answers `done`, or its refusal as an `error`.
async fn answer<S, F>(conn: &mut Connection<S>, work: F) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = Result<Result<(), Refusal>, io::Error>>,
{
    match work.await? {
        Ok(()) => conn.write_message(&Message::Done).await,
        Err(Refusal(code, message)) => conn.write_message(&Message::error(code, message)).await,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)
}

/// Describes `name` in `dir` (not following a symlink), listed as `path`.
fn entry_at(dir: BorrowedFd<'_>, name: &str, path: String) -> io::Result<Option<FileEntry>> {
    let Some(meta) = lstat_at(dir, name)? else {
        return Ok(None);
    };
    let target = if meta.is_symlink() {
        rustix::fs::readlinkat(dir, name, Vec::new())
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok(Some(describe(path, &meta, target)))
}

/// A listing entry from metadata.
fn describe(path: String, meta: &std::fs::Metadata, target: Option<String>) -> FileEntry {
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
        mtime_ns: super::metadata::mtime_ns(meta),
        target,
    }
}

/// `list`: one entry for a file (or, with `itself`, for any path), the children of a directory,
/// or (recursive) the whole tree without following symlinks, streamed in batches. Partial files
/// of transfers in progress are not listed.
pub async fn serve_list<S>(
    conn: &mut Connection<S>,
    path: String,
    recursive: bool,
    itself: bool,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(Refusal(code, message)) = need(ctx, Permission::Read, "listing") {
        return conn.write_message(&Message::error(code, message)).await;
    }
    let sandbox = ctx.sandbox.clone();
    let started = blocking(move || Walk::start(&sandbox, &path, recursive, itself)).await?;
    let mut walk = match started {
        Ok(walk) => walk,
        Err(Refusal(code, message)) => {
            return conn.write_message(&Message::error(code, message)).await;
        }
    };
    // Each batch is read by its own short blocking task, and the client is written to between
    // them: a client that stops reading holds no thread.
    let mut count = 0u64;
    loop {
        let (back, batch) = blocking(move || {
            let batch = walk.next_batch();
            (walk, batch)
        })
        .await?;
        walk = back;
        match batch {
            Ok(entries) if entries.is_empty() => break,
            Ok(entries) => {
                count += entries.len() as u64;
                conn.write_message(&Message::ListEntries { entries })
                    .await?;
            }
            Err(message) => {
                return conn
                    .write_message(&Message::error(ErrorCode::Io, message))
                    .await;
            }
        }
    }
    conn.write_message(&Message::ListDone { count }).await
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
    current: Option<(OwnedFd, String, std::vec::IntoIter<String>)>,
}

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
                let mut names: Vec<String> = rustix::fs::Dir::read_from(&dir)
                    .map_err(|e| format!("cannot read '{prefix}': {e}"))?
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "." && n != ".." && !partial::is_partial_name(n))
                    .collect();
                names.sort();
                self.current = Some((dir, prefix, names.into_iter()));
                continue;
            };
            let Some(name) = names.next() else {
                self.current = None;
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(Some(e)) = entry_at(dir.as_fd(), &name, rel.clone()) else {
                continue;
            };
            if self.recursive && e.kind == FileKind::Dir {
                self.dirs.push_back(rel);
            }
            batch.push(e);
        }
        Ok(batch)
    }
}

/// `get`: sends a regular file, resuming after a verified prefix.
pub async fn serve_get<S>(
    conn: &mut Connection<S>,
    path: String,
    algorithm: HashAlgorithm,
    offset: u64,
    prefix_hash: Option<String>,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(Refusal(code, message)) = need(ctx, Permission::Read, "get") {
        return conn.write_message(&Message::error(code, message)).await;
    }
    // Opened off the runtime, without blocking, and checked on the descriptor that is sent.
    let sandbox = ctx.sandbox.clone();
    let wanted = path.clone();
    let (mut file, meta) = match blocking(move || sandbox.open_regular(&wanted)).await? {
        Ok(opened) => opened,
        Err(e) => return conn.write_message(&Message::error(e.code, e.message)).await,
    };
    let size = meta.len();
    // Resume only after checking the client's prefix against ours.
    let (start, hasher, file) = match prefix_hash {
        Some(theirs) if offset > 0 && offset <= size => {
            let (result, file) = blocking(move || {
                let r = partial::hash_prefix(&mut file, algorithm, offset);
                (r, file)
            })
            .await?;
            match result {
                Ok((hasher, ours)) if ours == theirs => (offset, hasher, file),
                _ => (0, Hasher::new(algorithm), file),
            }
        }
        _ => (0, Hasher::new(algorithm), file),
    };
    conn.write_message(&Message::GetReady {
        size,
        mode: meta.mode() & 0o7777,
        mtime_ns: super::metadata::mtime_ns(&meta),
        offset: start,
    })
    .await?;
    let chunk = CHUNK.min(conn.max_data_payload());
    match transfer::send_file(conn, file, start, size - start, hasher, chunk, &mut |_| {}).await {
        Ok(hash) => conn.write_message(&Message::GetEnd { hash }).await,
        Err(TransferError::FileChanged) => {
            let message = format!("'{path}' changed while it was being sent; try again");
            conn.write_message(&Message::error(ErrorCode::Io, message))
                .await
        }
        Err(TransferError::Local(e)) => {
            conn.write_message(&Message::error(
                ErrorCode::Io,
                format!("reading '{path}': {e}"),
            ))
            .await
        }
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// The request fields of a `put`.
pub struct PutRequest {
    pub path: String,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    pub algorithm: HashAlgorithm,
}

/// `put`: receives a file into its partial, verifies it, and renames it into place.
pub async fn serve_put<S>(
    conn: &mut Connection<S>,
    put: PutRequest,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let path = put.path.clone();
    if let Err(Refusal(code, message)) = need(ctx, Permission::Write, "put") {
        return conn.write_message(&Message::error(code, message)).await;
    }
    let sandbox = ctx.sandbox.clone();
    let wanted = path.clone();
    let (target, mut partial) = match blocking(move || open_put(&sandbox, &wanted)).await? {
        Ok(opened) => opened,
        Err(Refusal(code, message)) => {
            return conn.write_message(&Message::error(code, message)).await;
        }
    };
    let held = partial.held_bytes().unwrap_or(0);
    let held = if held <= put.size { held } else { 0 };
    // Refuse at once what cannot fit, rather than fill the disk and then fail.
    if let Some(free) = free_bytes(partial.dir())
        && put.size - held > free
    {
        let message = format!(
            "no space for '{path}' on the server: it needs {} more bytes, {free} are free",
            put.size - held
        );
        if held == 0 {
            // Opening made an empty partial: leave nothing behind.
            blocking(move || partial.discard()).await?;
        }
        return conn
            .write_message(&Message::error(ErrorCode::NoSpace, message))
            .await;
    }
    let (partial_back, prefix) = blocking(move || {
        let prefix = if held > 0 {
            partial.hash_prefix(put.algorithm, held).ok()
        } else {
            None
        };
        (partial, prefix)
    })
    .await?;
    partial = partial_back;
    let (held, prefix_hasher, prefix_hash) = match prefix {
        Some((hasher, hex)) => (held, Some(hasher), Some(hex)),
        None => (0, None, None),
    };
    conn.write_message(&Message::PutReady {
        offset: held,
        prefix_hash,
    })
    .await?;
    let start = match conn
        .read_message()
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
    {
        Message::PutStart { offset } if offset == 0 || offset == held => offset,
        other => {
            let message = format!(
                "expected 'put_start' with offset 0 or {held}, got '{}'",
                other.kind()
            );
            return conn
                .write_message(&Message::error(ErrorCode::UnexpectedMessage, message))
                .await;
        }
    };
    let hasher = match (start, prefix_hasher) {
        (0, _) | (_, None) => Hasher::new(put.algorithm),
        (_, Some(hasher)) => hasher,
    };
    partial.keep(start)?;
    let writer = partial.writer()?;
    let received =
        transfer::receive_file(conn, writer, put.size - start, hasher, &mut |_| {}).await;
    let ours = match received {
        Ok(hash) => hash,
        Err(TransferError::Local(e)) if is_disk_full(&e) => {
            // A partial that filled the disk would keep every other upload failing too:
            // give the space back.
            blocking(move || partial.discard()).await?;
            let message = format!(
                "the server's disk filled up while writing '{path}' ({e}); nothing was kept"
            );
            return conn
                .write_message(&Message::error(ErrorCode::NoSpace, message))
                .await;
        }
        Err(TransferError::Local(e)) => {
            // The partial stays: once the cause is fixed, the transfer resumes.
            let message = format!("cannot write '{path}': {e}");
            return conn
                .write_message(&Message::error(ErrorCode::Io, message))
                .await;
        }
        Err(TransferError::Protocol(why)) => {
            // More or fewer bytes than announced: the stream is out of step, so this answer is
            // the session's last. The partial stays (nothing reaches the final name), and a
            // re-run resumes from what was written.
            let message = format!("put of '{path}' broke off: {why}; the session ends");
            let _ = conn
                .write_message(&Message::error(ErrorCode::BadMessage, message.clone()))
                .await;
            let _ = conn.shutdown().await;
            return Err(io::Error::other(message));
        }
        Err(e) => return Err(io::Error::other(e.to_string())),
    };
    let theirs = match conn
        .read_message()
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
    {
        Message::PutEnd { hash } => hash,
        other => {
            let message = format!("expected 'put_end', got '{}'", other.kind());
            return conn
                .write_message(&Message::error(ErrorCode::UnexpectedMessage, message))
                .await;
        }
    };
    if ours != theirs {
        blocking(move || partial.discard()).await?;
        let message = format!(
            "'{path}' arrived corrupted ({} {ours}, sender said {theirs}); nothing was kept",
            put.algorithm.name()
        );
        return conn
            .write_message(&Message::error(ErrorCode::Integrity, message))
            .await;
    }
    let (mode, mtime) = (put.mode, put.mtime_ns);
    let finished = blocking(move || partial.finish(&target, Some(mode), Some(mtime))).await?;
    match finished {
        Ok(()) => {
            conn.write_message(&Message::PutDone {
                size: put.size,
                hash: ours,
            })
            .await
        }
        Err(e) => {
            conn.write_message(&Message::error(
                ErrorCode::Io,
                format!("cannot finish '{path}': {e}"),
            ))
            .await
        }
    }
}

/// Where a put writes: the target's directory (opened beneath the root) checked so that the
/// target is a regular file or nothing, and its partial opened there.
fn open_put(sandbox: &Sandbox, path: &str) -> Result<(String, Partial), Refusal> {
    let place = sandbox.place(path)?;
    match place.lstat().map_err(|e| io_error(path, &e))? {
        Some(meta) if meta.is_symlink() => {
            return Err(refusal(
                ErrorCode::BadPath,
                format!("'{path}' is a symlink; ferry does not write through symlinks"),
            ));
        }
        Some(meta) if !meta.is_file() => {
            return Err(refusal(
                ErrorCode::NotAFile,
                format!("'{path}' exists and is not a regular file"),
            ));
        }
        _ => {}
    }
    let partial = Partial::open_at(Arc::clone(&place.dir), &place.name)
        .map_err(|e| refusal(ErrorCode::Io, format!("cannot write '{path}': {e}")))?;
    Ok((place.name, partial))
}

/// Bytes an unprivileged writer may still use on the file system that holds `dir`; `None`
/// when it cannot be told (the write then finds out).
fn free_bytes(dir: &OwnedFd) -> Option<u64> {
    let stats = nix::sys::statvfs::fstatvfs(dir).ok()?;
    // The field types differ by platform (u64 here, u32 on some 32-bit targets).
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stats.blocks_available()).saturating_mul(u64::from(stats.fragment_size())))
}

/// Whether a write failed for want of space (disk full or quota exceeded).
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// `mkdir`: creates a directory and its parents, never through a symlink that leaves the root;
/// sets mode and mtime when given.
pub async fn serve_mkdir<S>(
    conn: &mut Connection<S>,
    path: String,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sandbox = ctx.sandbox.clone();
    let permitted = need(ctx, Permission::Write, "mkdir");
    answer(conn, async move {
        if let Err(e) = permitted {
            return Ok(Err(e));
        }
        blocking(move || make_dirs(&sandbox, &path, mode, mtime_ns)).await
    })
    .await
}

/// Creates each missing directory of `path` with `mkdirat` in its verified parent, re-opening
/// every level beneath the root. Mode and mtime go only to a directory this request named by
/// its own final name — never through a symlink, and never to the root itself.
fn make_dirs(
    sandbox: &Sandbox,
    path: &str,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> Result<(), Refusal> {
    let names = sandbox::client_components(path)?;
    if names.is_empty() {
        return Err(refusal(
            ErrorCode::BadPath,
            "the server root itself cannot be changed",
        ));
    }
    let mut last = None;
    for depth in 1..=names.len() {
        let prefix = names[..depth].join("/");
        let place = sandbox.place(&prefix)?;
        let existing = place.lstat().map_err(|e| io_error(path, &e))?;
        let through_link = match existing {
            Some(meta) if meta.is_dir() => false,
            Some(meta) if meta.is_symlink() => true,
            Some(_) => {
                return Err(refusal(
                    ErrorCode::NotAFile,
                    format!("'{}' in '{path}' exists and is not a directory", place.name),
                ));
            }
            None => {
                match rustix::fs::mkdirat(
                    place.dir.as_fd(),
                    &*place.name,
                    Mode::from_raw_mode(0o777),
                ) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_error(path, &e.into()).into()),
                }
                false
            }
        };
        // The level must be a directory beneath the root, whatever a link or a swap made of it.
        let opened = sandbox.open(
            &prefix,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        )?;
        last = Some((opened, through_link));
    }
    if let Some((dir, through_link)) = last
        && (mode.is_some() || mtime_ns.is_some())
        && !through_link
    {
        let dir = File::from(dir);
        let root = File::from(
            sandbox
                .root_fd()
                .try_clone_to_owned()
                .map_err(|e| io_error(path, &e))?,
        );
        let (d, r) = (
            dir.metadata().map_err(|e| io_error(path, &e))?,
            root.metadata().map_err(|e| io_error(path, &e))?,
        );
        if (d.dev(), d.ino()) != (r.dev(), r.ino()) {
            super::metadata::apply_metadata(&dir, mode, mtime_ns)
                .map_err(|e| io_error(path, &e))?;
        }
    }
    Ok(())
}

/// `remove`: deletes a file, a symlink (not its target) or an empty directory.
pub async fn serve_remove<S>(
    conn: &mut Connection<S>,
    path: String,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sandbox = ctx.sandbox.clone();
    let permitted = need(ctx, Permission::Write, "remove");
    answer(conn, async move {
        if let Err(e) = permitted {
            return Ok(Err(e));
        }
        blocking(move || remove(&sandbox, &path)).await
    })
    .await
}

/// Removes the last name of `path` from its verified parent directory.
fn remove(sandbox: &Sandbox, path: &str) -> Result<(), Refusal> {
    let place = sandbox.place(path).map_err(|e| match e.code {
        ErrorCode::BadPath if sandbox::client_components(path).is_ok_and(|n| n.is_empty()) => {
            refusal(
                ErrorCode::BadPath,
                "the server root itself cannot be removed",
            )
        }
        _ => e.into(),
    })?;
    let meta = place
        .lstat()
        .map_err(|e| io_error(path, &e))?
        .ok_or_else(|| refusal(ErrorCode::NotFound, format!("'{path}' does not exist")))?;
    sandbox::remove_at(place.dir.as_fd(), &place.name, meta.is_dir()).map_err(|e| {
        if e.kind() == io::ErrorKind::DirectoryNotEmpty {
            refusal(
                ErrorCode::NotEmpty,
                format!(
                    "'{path}' is a directory that still holds something; remove its contents first"
                ),
            )
        } else {
            io_error(path, &e).into()
        }
    })
}
