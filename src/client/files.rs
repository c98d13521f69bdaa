//! The client peer of the file service: list, get and put one file (resuming after a checked
//! prefix), mkdir and remove. Trees are in `tree`.

use crate::protocol::{
    Get, GetEnd, GetReady, List, ListEntries, Mkdir, Put, PutDone, PutEnd, PutReady, PutStart,
    Remove,
};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::error::unexpected;
use crate::connection::Connection;
use crate::protocol::{FileEntry, HashAlgorithm, Message};
use crate::transfer::chunks::{self as transfer, CHUNK, TransferError};
use crate::transfer::hashing::Hasher;
use crate::transfer::partial::{self, Partial};

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The file's size.
    pub size: u64,
    /// Bytes that were already there and verified (0 when nothing was resumed).
    pub resumed_from: u64,
    /// The whole-file hash both sides agreed on, hex.
    pub hash: String,
    pub algorithm: HashAlgorithm,
}

/// Transfer events, for a progress bar or nothing; the transfer code knows no UI.
pub trait Progress: Send {
    fn begin(&mut self, _name: &str, _size: u64, _resumed_from: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn end(&mut self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

fn local(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Local {
        path: path.to_path_buf(),
        source,
    }
}

fn transfer_error(path: &Path, e: TransferError) -> ClientError {
    match e {
        TransferError::Local(source) => ClientError::Local {
            path: path.to_path_buf(),
            source,
        },
        TransferError::FileChanged => ClientError::Local {
            path: path.to_path_buf(),
            source: std::io::Error::other("the file changed while it was being sent"),
        },
        TransferError::Connection(e) => e.into(),
        TransferError::Peer(refusal) => ClientError::Server(refusal),
        TransferError::Protocol(message) => ClientError::Protocol(message),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Most entries [`list`] collects: a hostile or broken server must not grow the client's
/// memory without bound (this many entries is a few hundred MB). [`list_each`] has no limit.
pub const MAX_COLLECTED_ENTRIES: usize = 1 << 21;

/// Lists `path`, handing each batch to `each` as it arrives: a directory's entries (the whole
/// tree with `recursive`), or for a file one entry with an empty path. Returns the count.
///
/// # Errors
/// The server's refusal, a broken connection, or `each`'s error.
pub async fn list_each<S>(
    conn: &mut Connection<S>,
    path: &str,
    recursive: bool,
    each: impl FnMut(Vec<FileEntry>) -> Result<(), ClientError>,
) -> Result<u64, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = Message::List(List {
        path: path.to_string(),
        recursive,
        itself: false,
    });
    receive_listing(conn, &request, each).await
}

/// The entry describing `path` itself, file or directory (one round trip, however large a
/// directory it is).
///
/// # Errors
/// The server's refusal (`not_found` when it does not exist) or a broken connection.
pub async fn describe<S>(conn: &mut Connection<S>, path: &str) -> Result<FileEntry, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = Message::List(List {
        path: path.to_string(),
        recursive: false,
        itself: true,
    });
    let mut found = None;
    receive_listing(conn, &request, |batch| {
        found = found.take().or(batch.into_iter().next());
        Ok(())
    })
    .await?;
    found.ok_or_else(|| {
        ClientError::Protocol(format!("the server described '{path}' with no entry"))
    })
}

async fn receive_listing<S>(
    conn: &mut Connection<S>,
    request: &Message,
    mut each: impl FnMut(Vec<FileEntry>) -> Result<(), ClientError>,
) -> Result<u64, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(request).await?;
    let mut count = 0u64;
    loop {
        match conn.read_message().await? {
            Message::ListEntries(ListEntries { entries }) => {
                count += entries.len() as u64;
                each(entries)?;
            }
            Message::ListDone(_) => return Ok(count),
            other => return Err(unexpected(other)),
        }
    }
}

/// Lists `path` into one vector (see [`list_each`]), at most [`MAX_COLLECTED_ENTRIES`].
///
/// # Errors
/// As [`list_each`], and a listing over the limit.
pub async fn list<S>(
    conn: &mut Connection<S>,
    path: &str,
    recursive: bool,
) -> Result<Vec<FileEntry>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut all = Vec::new();
    list_each(conn, path, recursive, |batch| {
        if all.len() + batch.len() > MAX_COLLECTED_ENTRIES {
            return Err(ClientError::Protocol(format!(
                "the listing of '{path}' has more than {MAX_COLLECTED_ENTRIES} entries"
            )));
        }
        all.extend(batch);
        Ok(())
    })
    .await?;
    Ok(all)
}

/// Downloads `remote` to `target` through its partial, resuming a verified prefix.
///
/// # Errors
/// The server's refusal, a hash mismatch (nothing is kept), local I/O, a broken connection.
pub async fn get_file<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = target.to_path_buf();
    let opened_at = target.clone();
    let (partial, prefix) = blocking(move || -> std::io::Result<_> {
        let mut partial = Partial::open(&opened_at)?;
        let held = partial.held_bytes()?;
        let prefix = if partial.resumable && held > 0 {
            partial.hash_prefix(algorithm, held).ok().map(|p| (held, p))
        } else {
            None
        };
        Ok((partial, prefix))
    })
    .await?
    .map_err(local(&target))?;
    let (held, prefix_hasher, prefix_hash) = match prefix {
        Some((held, (hasher, hex))) => (held, Some(hasher), Some(hex)),
        None => (0, None, None),
    };
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: held,
        prefix_hash,
    }))
    .await?;
    let (size, mode, mtime_ns, offset) = match conn.read_message().await? {
        Message::GetReady(GetReady {
            size,
            mode,
            mtime_ns,
            offset,
        }) if (offset == 0 || offset == held) && offset <= size => (size, mode, mtime_ns, offset),
        other => {
            if held == 0 {
                blocking(move || partial.discard()).await?;
            }
            return Err(unexpected(other));
        }
    };
    let hasher = match (offset, prefix_hasher) {
        (0, _) | (_, None) => Hasher::new(algorithm),
        (_, Some(hasher)) => hasher,
    };
    let (partial, writer) = blocking(move || -> std::io::Result<_> {
        let mut partial = partial;
        partial.keep(offset)?;
        let writer = partial.writer()?;
        Ok((partial, writer))
    })
    .await?
    .map_err(local(&target))?;
    progress.begin(remote, size, offset);
    let received = transfer::receive_file(conn, writer, size - offset, hasher, &mut |n| {
        progress.advance(n)
    })
    .await;
    progress.end();
    let ours = received.map_err(|e| transfer_error(&target, e))?;
    let theirs = match conn.read_message().await? {
        Message::GetEnd(GetEnd { hash }) => hash,
        other => return Err(unexpected(other)),
    };
    if ours != theirs {
        blocking(move || partial.discard()).await?;
        return Err(ClientError::Integrity(format!(
            "{remote} arrived corrupted ({} {ours}, server said {theirs}); nothing was kept",
            algorithm.name()
        )));
    }
    let finish_at = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    blocking(move || partial.finish(&finish_at, Some(mode), Some(mtime_ns)))
        .await?
        .map_err(local(&target))?;
    Ok(Transfer {
        size,
        resumed_from: offset,
        hash: ours,
        algorithm,
    })
}

/// Uploads `source` to `remote`, resuming after the server's verified prefix.
///
/// # Errors
/// The server's refusal (including `integrity`), local I/O, a broken connection.
pub async fn put_file<S>(
    conn: &mut Connection<S>,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let file = File::open(source).map_err(local(source))?;
    let meta = file.metadata().map_err(local(source))?;
    if !meta.is_file() {
        return Err(ClientError::Local {
            path: source.to_path_buf(),
            source: std::io::Error::other("not a regular file (use put -r for a directory)"),
        });
    }
    let size = meta.len();
    conn.write_message(&Message::Put(Put {
        path: remote.to_string(),
        size,
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        hash: algorithm,
    }))
    .await?;
    let (held, theirs) = match conn.read_message().await? {
        Message::PutReady(PutReady {
            offset,
            prefix_hash,
        }) => (offset, prefix_hash),
        other => return Err(unexpected(other)),
    };
    let (start, hasher, file) = match theirs {
        Some(theirs) if held > 0 && held <= size => {
            let (ours, file) = blocking(move || {
                let mut file = file;
                (partial::hash_prefix(&mut file, algorithm, held), file)
            })
            .await?;
            match ours {
                Ok((hasher, ours)) if ours == theirs => (held, hasher, file),
                _ => (0, Hasher::new(algorithm), file),
            }
        }
        _ => (0, Hasher::new(algorithm), file),
    };
    conn.write_message(&Message::PutStart(PutStart { offset: start }))
        .await?;
    progress.begin(remote, size, start);
    let chunk = CHUNK.min(conn.max_data_payload());
    let sent = transfer::send_file(conn, file, start, size - start, hasher, chunk, &mut |n| {
        progress.advance(n)
    })
    .await;
    progress.end();
    let ours = sent.map_err(|e| transfer_error(source, e))?;
    conn.write_message(&Message::PutEnd(PutEnd { hash: ours.clone() }))
        .await?;
    match conn.read_message().await? {
        Message::PutDone(PutDone { hash, .. }) if hash == ours => Ok(Transfer {
            size,
            resumed_from: start,
            hash,
            algorithm,
        }),
        Message::PutDone(PutDone { hash, .. }) => Err(ClientError::Integrity(format!(
            "the server stored {hash} but we sent {ours}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// Creates a remote directory (and parents); sets mode and mtime when given.
///
/// # Errors
/// The server's refusal or a broken connection.
pub async fn mkdir<S>(
    conn: &mut Connection<S>,
    path: &str,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Mkdir(Mkdir {
        path: path.to_string(),
        mode,
        mtime_ns,
    }))
    .await?;
    expect_done(conn).await
}

/// Removes a remote file, symlink or empty directory.
///
/// # Errors
/// The server's refusal or a broken connection.
pub async fn remove<S>(conn: &mut Connection<S>, path: &str) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Remove(Remove {
        path: path.to_string(),
    }))
    .await?;
    expect_done(conn).await
}

async fn expect_done<S>(conn: &mut Connection<S>) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match conn.read_message().await? {
        Message::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// `base/rel` for remote paths (`/`-separated, never absolute).
pub fn join_remote(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    match (base, rel) {
        ("" | ".", rel) => rel.to_string(),
        (base, "") => base.to_string(),
        (base, rel) => format!("{base}/{rel}"),
    }
}

/// The last name of a remote or local path, for default targets.
pub fn base_name(path: &str) -> Option<String> {
    PathBuf::from(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}
