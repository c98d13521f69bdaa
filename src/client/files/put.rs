//! `put` from the client's side: the sender's end of a transfer.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, blocking, local, transfer_error};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::Connection;
use crate::protocol::{
    ChunkHashing, ErrorCode, HashAlgorithm, Message, Put, PutDone, PutEnd, PutReady, PutStart,
    Refusal,
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
        chunk_hash: delta.then_some(ChunkHashing::Xxh3),
        compress,
    }))
    .await?;
    // While the server signs its copy, this side cuts its own (dropped, it stops, when the
    // server holds no base).
    let cut = match delta {
        true => {
            Some(Cut::start(&file, size, avg, ChunkHashing::Xxh3, to_hash).map_err(local(source))?)
        }
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
            // A server that signed at another average, or hashed its chunks another way (an
            // older one: BLAKE3), than asked: cut again as it did.
            let cut = match cut {
                Some(cut) if cut.fits(signature.avg, signature.hashing) => cut,
                _ => Cut::start(&file, size, signature.avg, signature.hashing, to_hash)
                    .map_err(local(source))?,
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
pub(super) struct Opened<'a> {
    pub(super) file: File,
    pub(super) fingerprint: Fingerprint,
    pub(super) at: SystemTime,
    pub(super) source: &'a Path,
}

/// Sends bytes `start..size` of the file, hashed as they go or with the hash cache's answer,
/// plainly or as a delta against `signature` (compressed where it pays with `compress`), and
/// returns the whole file's hash and the bytes
/// the server took from its base. If the file cannot be read or changed, the server is told
/// (an `error`: it waits for bytes that will not come) before the error is returned.
#[allow(clippy::too_many_arguments)] // The steps of one send; a struct would only rename them.
pub(super) async fn send_bytes<S>(
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
