//! Whether a transfer can be skipped because the other side already holds the same file, as
//! rsync decides: by size and modification time, or with [`Check::Checksum`] by the content's
//! hash. The hash check needs no message of its own: a `get` that offers the whole local file
//! as its verified prefix is answered with no data at all when the server's file is the same.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{blocking, local, unexpected};
use crate::client::ClientError;
use crate::connection::Connection;
use crate::protocol::{FileEntry, FileKind, Get, GetEnd, GetReady, HashAlgorithm, Message};
use crate::transfer::chunks;
use crate::transfer::hashing::Hasher;

/// How "already there" is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Never: every file is transferred.
    Never,
    /// Same size and same modification time (to the nanosecond ferry keeps).
    SizeAndTime,
    /// Same size and same whole-file hash (reads both copies).
    Checksum(HashAlgorithm),
}

/// Whether the local file `local` and the server's file `remote` (as `entry` describes it,
/// `None` when it does not exist) are the same by `check`.
///
/// # Errors
/// A broken connection, or the local file cannot be read.
pub async fn is_same<S>(
    conn: &mut Connection<S>,
    remote: &str,
    entry: Option<&FileEntry>,
    local_path: &Path,
    check: Check,
) -> Result<bool, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(entry) = entry.filter(|e| e.kind == FileKind::File) else {
        return Ok(false);
    };
    let Ok(meta) = std::fs::metadata(local_path) else {
        return Ok(false);
    };
    if !meta.is_file() || meta.len() != entry.size {
        return Ok(false);
    }
    match check {
        Check::Never => Ok(false),
        Check::SizeAndTime => Ok(crate::transfer::metadata::mtime_ns(&meta) == entry.mtime_ns),
        Check::Checksum(algorithm) => same_hash(conn, remote, local_path, algorithm).await,
    }
}

/// Offers the whole local file as a verified prefix of the server's: an equal file comes back
/// as `get_ready` at its end and its hash. A different one is sent whole, and read to nothing.
async fn same_hash<S>(
    conn: &mut Connection<S>,
    remote: &str,
    local_path: &Path,
    algorithm: HashAlgorithm,
) -> Result<bool, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let path = local_path.to_path_buf();
    let (size, ours) = blocking(move || -> std::io::Result<(u64, String)> {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let (_, hex) = crate::transfer::partial::hash_prefix(&mut file, algorithm, size)?;
        Ok((size, hex))
    })
    .await?
    .map_err(local(local_path))?;
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: size,
        prefix_hash: Some(ours.clone()),
        base: None,
        signing: None,
        compress: false,
    }))
    .await?;
    let ready = match conn.read_message().await? {
        Message::GetReady(ready) if ready.offset <= ready.size => ready,
        other => return Err(unexpected(other)),
    };
    let GetReady {
        size: theirs,
        offset,
        ..
    } = ready;
    let sink = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(local(Path::new("/dev/null")))?;
    let drained = chunks::receive_file(
        conn,
        sink,
        theirs - offset,
        Hasher::new(algorithm),
        false,
        &mut |_| {},
    )
    .await
    .map_err(|e| super::transfer_error(local_path, e))?;
    drop(drained);
    let whole = match conn.read_message().await? {
        Message::GetEnd(GetEnd { hash }) => hash,
        other => return Err(unexpected(other)),
    };
    Ok(offset == size && theirs == size && whole == ours)
}
