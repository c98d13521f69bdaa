//! The client peer of the file service: list, get and put one file (resuming after a checked
//! prefix: [`get_file`] and [`put_file`]), mkdir and remove. Trees are in `tree`.

mod compare;
mod get;
mod get_whole;
mod put;
mod put_whole;

pub use compare::{Check, is_same};
pub use get::{AskedGet, VerifiedGet, ask_get, get_file, receive_get};
pub use get_whole::{SMALL_GET_CAP, SmallGet, ask_whole_get, get_to_writer, receive_small_get};
pub use put::put_file;
pub use put_whole::{SMALL_PUT_BATCHED, SentPut, receive_put, send_small_puts, send_whole_put};

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::error::unexpected;
use crate::connection::Connection;
use crate::protocol::{
    FileEntry, HashAlgorithm, List, ListEntries, Message, Mkdir, Remove, Rename,
};
use crate::transfer::chunks::TransferError;

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The file's size.
    pub size: u64,
    /// Bytes that were already there and verified (0 when nothing was resumed).
    pub resumed_from: u64,
    /// Bytes of the rest the receiver took from its older version (a delta): they did not
    /// cross the wire.
    pub matched: u64,
    /// The whole-file hash both sides agreed on, hex.
    pub hash: String,
    /// The hash algorithm that proved it.
    pub algorithm: HashAlgorithm,
}

/// Whether `e` says a transfer's bytes did not verify (on either side): the one failure a
/// delta is retried whole for.
pub fn failed_verification(e: &ClientError) -> bool {
    match e {
        ClientError::Integrity(_) => true,
        ClientError::Server(refusal) => refusal.code == crate::protocol::ErrorCode::Integrity,
        _ => false,
    }
}

/// Transfer events, for a progress bar or nothing; the transfer code knows no UI.
pub trait Progress: Send {
    /// A tree copy will move `files` files of `bytes` bytes in all (called once, before the
    /// first file begins).
    fn plan(&mut self, _files: u64, _bytes: u64) {}
    /// A file of `size` bytes starts, `resumed_from` of them already in place.
    fn begin(&mut self, _name: &str, _size: u64, _resumed_from: u64) {}
    /// `bytes` more were moved.
    fn advance(&mut self, _bytes: u64) {}
    /// The file is done (or failed).
    fn end(&mut self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

pub(super) fn local(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Local {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn transfer_error(path: &Path, e: TransferError) -> ClientError {
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

/// [`crate::transfer::blocking`], its failure (a panic, a stopping runtime) as a client error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    Ok(crate::transfer::blocking(f).await?)
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

/// Moves a remote path to another (a file at `to` is replaced).
///
/// # Errors
/// The server's refusal or a broken connection.
pub async fn rename<S>(conn: &mut Connection<S>, from: &str, to: &str) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Rename(Rename {
        from: from.to_string(),
        to: to.to_string(),
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

/// Sends `mkdir` for every `(path, mode, mtime_ns)` at once and then reads every answer (the
/// server answers in order, so a parent made before its child stays so): one round trip for
/// a whole tree's directories.
///
/// # Errors
/// The first refusal (every answer is still read), or a broken connection.
pub async fn mkdir_all<S>(
    conn: &mut Connection<S>,
    dirs: &[(String, Option<u32>, Option<i64>)],
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let requests: Vec<Message> = dirs
        .iter()
        .map(|(path, mode, mtime_ns)| {
            Message::Mkdir(Mkdir {
                path: path.clone(),
                mode: *mode,
                mtime_ns: *mtime_ns,
            })
        })
        .collect();
    all_done(conn, &requests).await
}

/// Sends every request (each answered `done`) at once and then reads every answer, in order:
/// one round trip for a tree's removals or links.
///
/// # Errors
/// The first refusal (every answer is still read), or a broken connection.
pub async fn all_done<S>(conn: &mut Connection<S>, requests: &[Message]) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for request in requests {
        conn.write_message(request).await?;
    }
    let mut first = None;
    for _ in requests {
        match expect_done(conn).await {
            Ok(()) => {}
            Err(e @ ClientError::Server(_)) => {
                first.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    first.map_or(Ok(()), Err)
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
