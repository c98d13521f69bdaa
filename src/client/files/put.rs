//! `put` from the client's side: the sender's end of a transfer.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, blocking, local, transfer_error};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{
    ErrorCode, HashAlgorithm, Message, Put, PutDone, PutEnd, PutReady, PutStart, Refusal,
};
use crate::transfer::chunks::{self, CHUNK, SendHash, TransferError};
use crate::transfer::delta::{self, DELTA_MIN, RemoteSignature, cut::Cut};
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::hashing::Hasher;
use crate::transfer::resume;

/// Uploads `source` to `remote`, resuming after the server's verified prefix; with `delta`,
/// as a delta against the file the server holds there, when it offers one; with `compress`,
/// its blocks compressed where it pays, when the server takes them.
///
/// # Errors
/// The server's refusal (including `integrity`), local I/O, a broken connection.
///
/// A delta that fails verification (a false chunk match, a base that changed under it) is sent
/// again whole, once.
#[allow(clippy::too_many_arguments)] // One upload's facts and choices.
pub async fn put_file<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
    delta: bool,
    compress: bool,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let first = put_once(
        conn, hashes, source, remote, algorithm, delta, compress, progress,
    )
    .await;
    match first {
        Err(e) if delta && super::failed_verification(&e) => {
            put_once(
                conn, hashes, source, remote, algorithm, false, compress, progress,
            )
            .await
        }
        other => other,
    }
}

#[allow(clippy::too_many_arguments)] // As `put_file`.
async fn put_once<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
    delta: bool,
    compress: bool,
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
    let opened = Fingerprint::of(&meta);
    let opened_at = SystemTime::now();
    let delta = delta && size >= DELTA_MIN;
    let avg = delta::average_for(size);
    let known = hashes.lookup(opened, algorithm);
    let to_hash = known.is_none().then_some(algorithm);
    conn.write_message(&Message::Put(Put {
        path: remote.to_string(),
        size,
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        hash: algorithm,
        whole: false,
        delta,
        avg: delta.then_some(avg),
        compress,
    }))
    .await?;
    // While the server signs its copy, this side cuts its own (dropped, it stops, when the
    // server holds no base).
    let cut = match delta {
        true => Some(Cut::start(&file, size, avg, to_hash).map_err(local(source))?),
        false => None,
    };
    let (held, theirs, base, compress) = match conn.read_message().await? {
        Message::PutReady(PutReady {
            offset,
            prefix_hash,
            base,
            compress: taken,
        }) => (offset, prefix_hash, base, compress && taken),
        other => return Err(unexpected(other)),
    };
    let signature = match base {
        Some(base) => Some(
            delta::wire::read_signature(conn, &base)
                .await
                .map_err(|e| transfer_error(source, e))?,
        ),
        None => None,
    };
    let (start, hasher, file) = blocking(move || {
        let mut file = file;
        let (start, hasher) =
            resume::start_after_offer(&mut file, algorithm, size, held, theirs.as_deref());
        (start, hasher, file)
    })
    .await?;
    // Nothing left to send, or everything: a delta would only cost the pass.
    let signature = signature.filter(|_| start < size);
    let delta = match signature {
        Some(signature) => {
            // A server that signed at another average than asked: cut again at its average.
            let cut = match cut {
                Some(cut) if cut.avg() == signature.avg => cut,
                _ => Cut::start(&file, size, signature.avg, to_hash).map_err(local(source))?,
            };
            Some((signature, cut))
        }
        None => {
            // No base to send a delta against: the cut stops (it would read the file twice
            // more beside the plain send).
            drop(cut);
            None
        }
    };
    conn.write_message(&Message::PutStart(PutStart {
        offset: start,
        delta: delta.is_some(),
    }))
    .await?;
    let opened = Opened {
        file,
        fingerprint: opened,
        at: opened_at,
        source,
    };
    let (ours, matched) = send_bytes(
        conn,
        hashes,
        opened,
        start,
        size,
        (hasher, known),
        (delta, compress),
        progress,
        remote,
    )
    .await?;
    conn.write_message(&Message::PutEnd(PutEnd { hash: ours.clone() }))
        .await?;
    match conn.read_message().await? {
        Message::PutDone(PutDone { hash, .. }) if hash == ours => Ok(Transfer {
            size,
            resumed_from: start,
            matched,
            hash,
            algorithm,
        }),
        Message::PutDone(PutDone { hash, .. }) => Err(ClientError::Integrity(format!(
            "the server stored {hash} but we sent {ours}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// A local file opened for sending: its fingerprint and when it was taken.
struct Opened<'a> {
    file: File,
    fingerprint: Fingerprint,
    at: SystemTime,
    source: &'a Path,
}

/// Sends bytes `start..size` of the file, hashed as they go or with the hash cache's answer,
/// plainly or as a delta against `signature` (compressed where it pays with `compress`), and
/// returns the whole file's hash and the bytes
/// the server took from its base. If the file cannot be read or changed, the server is told
/// (an `error`: it waits for bytes that will not come) before the error is returned.
#[allow(clippy::too_many_arguments)] // The steps of one send; a struct would only rename them.
async fn send_bytes<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    opened: Opened<'_>,
    start: u64,
    size: u64,
    (hasher, known): (Hasher, Option<String>),
    (delta, compress): (Option<(RemoteSignature, Cut)>, bool),
    progress: &mut dyn Progress,
    remote: &str,
) -> Result<(String, u64), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let algorithm = hasher.algorithm();
    let cached = known.is_some();
    let how = known.map_or(SendHash::Compute(hasher), SendHash::Known);
    progress.begin(remote, size, start);
    let chunk = CHUNK.min(conn.max_data_payload());
    let sent = match delta {
        Some((signature, cut)) => delta::send::send_delta(
            conn,
            cut,
            opened.file,
            opened.fingerprint,
            start,
            signature,
            how,
            chunk,
            compress,
            &mut |n| progress.advance(n),
        )
        .await
        .map(|sent| (sent.hash, sent.matched)),
        None => chunks::send_file(
            conn,
            opened.file,
            opened.fingerprint,
            start,
            size - start,
            how,
            chunk,
            compress,
            &mut |n| progress.advance(n),
        )
        .await
        .map(|hash| (hash, 0)),
    };
    progress.end();
    match sent {
        Ok((hash, matched)) => {
            if !cached {
                hashes.remember(opened.fingerprint, opened.at, algorithm, &hash);
            }
            Ok((hash, matched))
        }
        Err(e) => {
            if let TransferError::FileChanged | TransferError::Local(_) = e {
                // The server waits for the rest of the data: tell it why none will come.
                let why = Refusal::new(ErrorCode::Io, format!("the client could not send: {e}"));
                let _ = conn.write_message(&Message::Error(why)).await;
            }
            Err(transfer_error(opened.source, e))
        }
    }
}

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
