//! The file service's server side: `list`, `get`, `put`, `mkdir`, `remove`, all inside the
//! sandbox, with `read` or `write` permission.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::hashing::Hasher;
use super::partial::{self, Partial};
use super::sandbox::{PathError, Sandbox, io_error};
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

/// Describes one file system object.
pub fn entry(path: String, real: &Path) -> io::Result<FileEntry> {
    let meta = real.symlink_metadata()?;
    let kind = if meta.is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    Ok(FileEntry {
        path,
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
        mode: meta.mode() & 0o7777,
        mtime_ns: partial::mtime_ns(&meta),
        target: (kind == FileKind::Symlink)
            .then(|| std::fs::read_link(real).ok())
            .flatten()
            .map(|t| t.to_string_lossy().into_owned()),
    })
}

/// `list`: one entry for a file (or, with `itself`, for any path), the children of a directory,
/// or (recursive) the whole tree without following symlinks, streamed in batches.
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
    let started = async {
        need(ctx, Permission::Read, "listing")?;
        let sandbox = Sandbox::new(&ctx.root);
        let real = sandbox.resolve(&path)?;
        Ok::<_, Refusal>(real)
    };
    let real = match started.await {
        Ok(real) => real,
        Err(Refusal(code, message)) => {
            return conn.write_message(&Message::error(code, message)).await;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Result<Vec<FileEntry>, String>>(2);
    let walker = tokio::task::spawn_blocking(move || walk(&real, recursive, itself, &tx));
    let mut count = 0u64;
    while let Some(batch) = rx.recv().await {
        match batch {
            Ok(entries) => {
                count += entries.len() as u64;
                conn.write_message(&Message::ListEntries { entries })
                    .await?;
            }
            Err(message) => {
                walker.abort();
                return conn
                    .write_message(&Message::error(ErrorCode::Io, message))
                    .await;
            }
        }
    }
    conn.write_message(&Message::ListDone { count }).await
}

fn walk(
    real: &Path,
    recursive: bool,
    itself: bool,
    out: &mpsc::Sender<Result<Vec<FileEntry>, String>>,
) {
    let send = |batch| out.blocking_send(batch).is_ok();
    let root_meta = match real.metadata() {
        Ok(meta) => meta,
        Err(e) => {
            send(Err(e.to_string()));
            return;
        }
    };
    if itself || !root_meta.is_dir() {
        // A file lists as itself: one entry with an empty relative path.
        let _ = match entry(String::new(), real) {
            Ok(e) => send(Ok(vec![e])),
            Err(e) => send(Err(e.to_string())),
        };
        return;
    }
    let mut batch = Vec::with_capacity(LIST_BATCH);
    // Breadth first: a stable, level-by-level order.
    let mut dirs: std::collections::VecDeque<(PathBuf, String)> =
        std::collections::VecDeque::from([(real.to_path_buf(), String::new())]);
    while let Some((dir, prefix)) = dirs.pop_front() {
        let mut children: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(e) => {
                send(Err(format!("cannot read '{prefix}': {e}")));
                return;
            }
        };
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(e) = entry(rel.clone(), &child.path()) else {
                continue;
            };
            if recursive && e.kind == FileKind::Dir {
                dirs.push_back((child.path(), rel));
            }
            batch.push(e);
            if batch.len() == LIST_BATCH && !send(Ok(std::mem::take(&mut batch))) {
                return;
            }
        }
    }
    if !batch.is_empty() {
        send(Ok(batch));
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
    let opened = async {
        need(ctx, Permission::Read, "get")?;
        let real = Sandbox::new(&ctx.root).resolve(&path)?;
        let meta = real.metadata().map_err(|e| io_error(&path, &e))?;
        if meta.is_dir() {
            return Err(refusal(
                ErrorCode::NotAFile,
                format!("'{path}' is a directory; use get -r"),
            ));
        }
        if !meta.is_file() {
            return Err(refusal(
                ErrorCode::NotAFile,
                format!("'{path}' is not a regular file (a device, fifo or socket)"),
            ));
        }
        let file = File::open(&real).map_err(|e| io_error(&path, &e))?;
        Ok((file, meta))
    };
    let (mut file, meta) = match opened.await {
        Ok(opened) => opened,
        Err(Refusal(code, message)) => {
            return conn.write_message(&Message::error(code, message)).await;
        }
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
        mtime_ns: partial::mtime_ns(&meta),
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
    let opened = async {
        need(ctx, Permission::Write, "put")?;
        let target = Sandbox::new(&ctx.root).resolve_for_write(&path)?;
        let (target, partial) = blocking(move || {
            let partial = Partial::open(&target);
            (target, partial)
        })
        .await
        .map_err(|e| refusal(ErrorCode::Io, e.to_string()))?;
        let partial =
            partial.map_err(|e| refusal(ErrorCode::Io, format!("cannot write '{path}': {e}")))?;
        Ok((target, partial))
    };
    let (target, mut partial) = match opened.await {
        Ok(opened) => opened,
        Err(Refusal(code, message)) => {
            return conn.write_message(&Message::error(code, message)).await;
        }
    };
    let held = partial.len().unwrap_or(0);
    let held = if held <= put.size { held } else { 0 };
    // Refuse at once what cannot fit, rather than fill the disk and then fail.
    if let Some(free) = free_bytes(&target)
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

/// Bytes an unprivileged writer may still use on the file system that holds `target`; `None`
/// when it cannot be told (the write then finds out).
fn free_bytes(target: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(target.parent()?).ok()?;
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
    let root = ctx.root.to_path_buf();
    let permitted = need(ctx, Permission::Write, "mkdir");
    answer(conn, async move {
        if let Err(e) = permitted {
            return Ok(Err(e));
        }
        blocking(move || make_dirs(&Sandbox::new(&root), &path, mode, mtime_ns)).await
    })
    .await
}

fn make_dirs(
    sandbox: &Sandbox,
    path: &str,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> Result<(), Refusal> {
    let names = super::sandbox::components(path)?;
    if names.is_empty() {
        return Err(refusal(
            ErrorCode::BadPath,
            "the server root itself cannot be changed",
        ));
    }
    let mut current = sandbox.root().to_path_buf();
    for name in names {
        let next = current.join(name);
        match next.symlink_metadata() {
            Ok(meta) if meta.is_dir() => current = next,
            Ok(meta) if meta.is_symlink() => {
                let real = next.canonicalize().map_err(|e| io_error(path, &e))?;
                if !real.starts_with(sandbox.root()) || !real.is_dir() {
                    return Err(refusal(
                        ErrorCode::BadPath,
                        format!("'{path}' leads outside the server root (through a symlink)"),
                    ));
                }
                current = real;
            }
            Ok(_) => {
                return Err(refusal(
                    ErrorCode::NotAFile,
                    format!("'{name}' in '{path}' exists and is not a directory"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::fs::create_dir(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && next.is_dir() => {}
                    Err(e) => return Err(io_error(path, &e).into()),
                }
                current = next;
            }
            Err(e) => return Err(io_error(path, &e).into()),
        }
    }
    if mode.is_some() || mtime_ns.is_some() {
        let dir = File::open(&current).map_err(|e| io_error(path, &e))?;
        partial::apply_metadata(&dir, mode, mtime_ns).map_err(|e| io_error(path, &e))?;
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
    let root = ctx.root.to_path_buf();
    let permitted = need(ctx, Permission::Write, "remove");
    answer(conn, async move {
        if let Err(e) = permitted {
            return Ok(Err(e));
        }
        blocking(move || remove(&Sandbox::new(&root), &path)).await
    })
    .await
}

fn remove(sandbox: &Sandbox, path: &str) -> Result<(), Refusal> {
    let names = super::sandbox::components(path)?;
    let Some((name, parents)) = names.split_last() else {
        return Err(refusal(
            ErrorCode::BadPath,
            "the server root itself cannot be removed",
        ));
    };
    let parent = sandbox.resolve(&parents.join("/"))?;
    let target = parent.join(name);
    let meta = target.symlink_metadata().map_err(|e| io_error(path, &e))?;
    let removed = if meta.is_dir() {
        std::fs::remove_dir(&target)
    } else {
        std::fs::remove_file(&target)
    };
    removed.map_err(|e| io_error(path, &e).into())
}
