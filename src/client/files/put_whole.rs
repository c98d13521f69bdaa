//! Whole puts from the client's side: the request, every byte and `put_end` sent at once,
//! without waiting for an answer, so a tree's many small files are pipelined (PROTOCOL.md 5.6).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, blocking, local};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{HashAlgorithm, Message, Put, PutDone, PutEnd};
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::hashing::Hasher;

use super::put::{Opened, send_bytes};

/// A `whole` put sent (request, bytes, `put_end`) and not yet answered.
pub struct SentPut {
    /// The local file.
    pub source: PathBuf,
    /// Where it goes.
    pub remote: String,
    size: u64,
    hash: String,
    algorithm: HashAlgorithm,
}

/// Sends `source` to `remote` as a `whole` put (PROTOCOL.md 5.6): the request, every byte and
/// `put_end` at once, without waiting for an answer, so many small files can be pipelined;
/// [`receive_put`] reads the answer. No resume: meant for files small enough to resend.
///
/// # Errors
/// Local I/O (the server is told), a broken connection.
pub async fn send_whole_put<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<SentPut, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let at = SystemTime::now();
    let path = source.to_path_buf();
    let (file, meta) = blocking(move || -> std::io::Result<_> {
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok((file, meta))
    })
    .await?
    .map_err(local(source))?;
    let size = meta.len();
    let put = Message::Put(Put {
        path: remote.to_string(),
        size,
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        hash: algorithm,
        whole: true,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: false,
    });
    let opened = Opened {
        file,
        fingerprint: Fingerprint::of(&meta),
        at,
        source,
    };
    conn.write_message(&put).await?;
    let hasher = Hasher::new(algorithm);
    let known = hashes.lookup(opened.fingerprint, algorithm);
    let (hash, _) = send_bytes(
        conn,
        hashes,
        opened,
        0,
        size,
        (hasher, known),
        (None, false),
        progress,
        remote,
    )
    .await?;
    conn.write_message(&Message::PutEnd(PutEnd { hash: hash.clone() }))
        .await?;
    Ok(SentPut {
        source: source.to_path_buf(),
        remote: remote.to_string(),
        size,
        hash,
        algorithm,
    })
}

/// Reads the answer to a [`send_whole_put`].
///
/// # Errors
/// The server's refusal (`integrity` included), a broken connection.
pub async fn receive_put<S>(
    conn: &mut Connection<S>,
    sent: &SentPut,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match conn.read_message().await? {
        Message::PutDone(PutDone { hash, .. }) if hash == sent.hash => Ok(Transfer {
            size: sent.size,
            resumed_from: 0,
            matched: 0,
            hash,
            algorithm: sent.algorithm,
        }),
        Message::PutDone(PutDone { hash, .. }) => Err(ClientError::Integrity(format!(
            "the server stored {hash} but we sent {}",
            sent.hash
        ))),
        other => Err(unexpected(other)),
    }
}

/// Sends many small files as whole puts with one trip to a blocking thread (each opened, read
/// and hashed there, and checked for a change after) and one write for all: a tree's small
/// files then cost neither a trip nor a syscall each. Nothing is sent when any cannot be read,
/// so the connection stays in step. `files` are `(local path, remote path)`; each should be at
/// most [`SMALL_PUT_BATCHED`] bytes (a larger one is still sent whole, from memory).
///
/// # Errors
/// A file could not be read or changed while it was read, a broken connection.
pub async fn send_small_puts<S>(
    conn: &mut Connection<S>,
    files: Vec<(PathBuf, String)>,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<Vec<SentPut>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = blocking(move || {
        files
            .into_iter()
            .map(|(source, remote)| match read_whole(&source, algorithm) {
                Ok((bytes, hash, meta)) => Ok((source, remote, bytes, hash, meta)),
                Err(e) => Err(ClientError::Local {
                    path: source,
                    source: e,
                }),
            })
            .collect::<Result<Vec<_>, ClientError>>()
    })
    .await??;
    let mut batch = conn.batch();
    let mut sent = Vec::with_capacity(read.len());
    for (source, remote, bytes, hash, meta) in read {
        let size = bytes.len() as u64;
        progress.begin(&remote, size, 0);
        batch
            .message(&Message::Put(Put {
                path: remote.clone(),
                size,
                mode: meta.permissions().mode() & 0o7777,
                mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
                hash: algorithm,
                whole: true,
                delta: false,
                avg: None,
                chunk_hash: None,
                compress: false,
            }))
            .map_err(ConnectionError::Io)?;
        let max = conn.max_data_payload();
        for chunk in bytes.chunks(max) {
            batch.data(0, chunk).map_err(ConnectionError::Io)?;
        }
        batch
            .message(&Message::PutEnd(PutEnd { hash: hash.clone() }))
            .map_err(ConnectionError::Io)?;
        progress.advance(size);
        progress.end();
        sent.push(SentPut {
            source,
            remote,
            size,
            hash,
            algorithm,
        });
    }
    conn.write_batch(batch).await.map_err(ConnectionError::Io)?;
    Ok(sent)
}

/// Files up to this size are sent in batches by [`send_small_puts`] (larger ones by
/// [`send_whole_put`], streamed).
pub const SMALL_PUT_BATCHED: u64 = 64 * 1024;

/// Reads a regular file whole and hashes it, checking that it did not change meanwhile.
fn read_whole(
    path: &Path,
    algorithm: HashAlgorithm,
) -> std::io::Result<(Vec<u8>, String, std::fs::Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes)?;
    let now = file.metadata()?;
    if bytes.len() as u64 != meta.len() || Fingerprint::of(&now) != Fingerprint::of(&meta) {
        return Err(std::io::Error::other(
            "the file changed while it was being sent",
        ));
    }
    let mut hasher = Hasher::new(algorithm);
    hasher.update(&bytes);
    Ok((bytes, hasher.finish_hex(), meta))
}
