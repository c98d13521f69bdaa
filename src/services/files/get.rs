//! `get`: sends a regular file, resuming after a prefix the client proves it holds.
//!
//! Gets a client pipelined (a tree, PROTOCOL.md 5.2) arrive together; the session hands them
//! over as one run ([`serve_gets`]), whose files are opened — and, when small, read and hashed —
//! in one trip to a blocking thread, and whose small answers go out in one write. A tree's
//! many small files would otherwise each pay for two trips and three writes.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use super::get_delta::{Announced, serve_delta_get};
use crate::connection::{Connection, ConnectionError};
use crate::metrics::TransferKind;
use crate::protocol::{ErrorCode, Get, GetEnd, GetReady, Message, Permission, Refusal};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, CHUNK, SendHash, TransferError};
use crate::transfer::delta::{self, RemoteSignature, cut::Cut};
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::hashing::Hasher;
use crate::transfer::resume;

/// Files whose bytes to send are at most this many are read whole in the trip that opens them
/// and answered within the run's one write.
pub const SMALL_FILE: u64 = 64 * 1024;
/// Answers buffered before they are written, at most.
const BATCH_BYTES: usize = 1 << 20;

/// Serves one `get`.
///
/// # Errors
/// The connection failed (refusals are answered here).
pub async fn serve_get<S>(
    conn: &mut Connection<S>,
    request: Get,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = request;
    match Announced::of(&mut request)? {
        None => serve_gets(conn, vec![request], ctx).await,
        Some(announced) => serve_delta_get(conn, request, announced, ctx).await,
    }
}

/// One get, opened and decided on a blocking thread.
pub(super) enum Prepared {
    /// Read whole already: the answer is ready.
    Small {
        ready: GetReady,
        bytes: Vec<u8>,
        hash: String,
    },
    /// To be streamed.
    Large {
        path: String,
        file: File,
        meta: Metadata,
        start: u64,
        hasher: Hasher,
        /// Its blocks go compressed where it pays (the client asked).
        compress: bool,
    },
}

/// Serves a run of gets, answering each in order: its refusal, or its file. The files are
/// opened off the runtime, without blocking (a FIFO cannot freeze it), and each is checked on
/// the very descriptor that is sent.
///
/// # Errors
/// The connection failed, or the stream is out of step.
pub async fn serve_gets<S>(
    conn: &mut Connection<S>,
    requests: Vec<Get>,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opened_at = SystemTime::now();
    let started = std::time::Instant::now();
    let prepared: Vec<Result<Prepared, Refusal>> = match ctx.need(Permission::Read, "get") {
        Err(refusal) => requests.iter().map(|_| Err(refusal.clone())).collect(),
        Ok(()) => {
            let sandbox = ctx.sandbox.clone();
            let (budget, peer) = (Arc::clone(&ctx.resume_budget), ctx.peer);
            off_runtime(move || {
                requests
                    .into_iter()
                    .map(|request| prepare(&sandbox, request, |bytes| budget.take(peer, bytes)))
                    .collect()
            })
            .await?
        }
    };
    let mut batch = conn.batch();
    let mut batched = 0usize;
    for one in prepared {
        match one {
            Err(refusal) => {
                ctx.metrics.request("get", refusal.code.name());
                batch.message(&Message::Error(refusal)).map_err(io)?;
            }
            Ok(Prepared::Small { ready, bytes, hash }) => {
                ctx.metrics.request("get", "ok");
                ctx.metrics.transfer(TransferKind::Get, started.elapsed());
                batch_small(&mut batch, ready, &bytes, hash)?;
                batched += bytes.len();
            }
            Ok(Prepared::Large {
                path,
                file,
                meta,
                start,
                hasher,
                compress,
            }) => {
                conn.write_batch(std::mem::replace(&mut batch, conn.batch()))
                    .await
                    .map_err(io)?;
                batched = 0;
                let send = Send {
                    file,
                    meta,
                    start,
                    hasher,
                    opened_at,
                    signature: None,
                    cut: None,
                    compress,
                };
                let sent = send_large(conn, ctx, &path, send).await;
                match sent {
                    Ok(()) => {
                        ctx.metrics.request("get", "ok");
                        ctx.metrics.transfer(TransferKind::Get, started.elapsed());
                    }
                    Err(RequestError::Refused(refusal)) => {
                        ctx.metrics.request("get", refusal.code.name());
                        conn.write_message(&Message::Error(refusal))
                            .await
                            .map_err(io)?;
                    }
                    Err(fatal) => return Err(fatal),
                }
            }
        }
        if batched >= BATCH_BYTES {
            conn.write_batch(std::mem::replace(&mut batch, conn.batch()))
                .await
                .map_err(io)?;
            batched = 0;
        }
    }
    conn.write_batch(batch).await.map_err(io)?;
    Ok(())
}

/// Adds a small file's whole answer to `batch`: `get_ready`, its bytes, `get_end`.
///
/// # Errors
/// A frame larger than the peer takes.
pub(super) fn batch_small(
    batch: &mut crate::connection::FrameBatch,
    ready: GetReady,
    bytes: &[u8],
    hash: String,
) -> Result<(), RequestError> {
    batch.message(&Message::GetReady(ready)).map_err(io)?;
    if !bytes.is_empty() {
        batch.data(0, bytes).map_err(io)?;
    }
    batch.message(&Message::GetEnd(GetEnd { hash })).map_err(io)
}

pub(super) fn io(e: std::io::Error) -> RequestError {
    ConnectionError::Io(e).into()
}

/// Opens one get's file beneath the root and decides where to start; reads it whole when what
/// is left to send is small. A resume offer is checked only when `may_hash` grants the hashing
/// it costs (`resume_budget`); otherwise the get starts from the beginning.
pub(super) fn prepare(
    sandbox: &super::sandbox::Sandbox,
    request: Get,
    may_hash: impl Fn(u64) -> bool,
) -> Result<Prepared, Refusal> {
    let path = request.path;
    let compress = request.compress;
    let (mut file, meta) = sandbox.open_regular(&path)?;
    let offer = request
        .prefix_hash
        .as_deref()
        .filter(|_| request.offset > 0 && request.offset <= meta.len())
        .filter(|_| may_hash(request.offset));
    let (start, hasher) =
        resume::start_after_offer(&mut file, request.hash, meta.len(), request.offset, offer);
    if meta.len() - start > SMALL_FILE {
        return Ok(Prepared::Large {
            path,
            file,
            meta,
            start,
            hasher,
            compress,
        });
    }
    let (bytes, hash) = read_small(&file, &meta, start, hasher).map_err(|e| match e {
        TransferError::FileChanged => changed(&path),
        e => Refusal::new(ErrorCode::Io, format!("reading '{path}': {e}")),
    })?;
    Ok(Prepared::Small {
        ready: ready_of(&meta, start),
        bytes,
        hash,
    })
}

fn ready_of(meta: &Metadata, start: u64) -> GetReady {
    GetReady {
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(meta),
        offset: start,
        delta: false,
        compress: false,
    }
}

/// A large file to stream, as `prepare` found it.
pub(super) struct Send {
    pub(super) file: File,
    pub(super) meta: Metadata,
    pub(super) start: u64,
    /// Has seen the bytes before `start`.
    pub(super) hasher: Hasher,
    pub(super) opened_at: SystemTime,
    /// The client's base, when the file goes as a delta against it.
    pub(super) signature: Option<RemoteSignature>,
    /// The file's cut, started while the client was still signing its base (used when it fits
    /// the signature that came).
    pub(super) cut: Option<Cut>,
    /// Blocks go compressed where it pays.
    pub(super) compress: bool,
}

/// Streams a large file: `get_ready`, the data (plain, or a delta against the client's base),
/// `get_end`. The hash comes from the cache when this version of the file was hashed before,
/// and is kept when it was not.
pub(super) async fn send_large<S>(
    conn: &mut Connection<S>,
    ctx: &SessionContext,
    path: &str,
    send: Send,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Send {
        file,
        meta,
        start,
        hasher,
        opened_at,
        signature,
        cut,
        compress,
    } = send;
    let opened = Fingerprint::of(&meta);
    let algorithm = hasher.algorithm();
    let size = meta.len();
    let mut ready = ready_of(&meta, start);
    ready.delta = signature.is_some();
    ready.compress = compress;
    conn.write_message(&Message::GetReady(ready)).await?;
    let chunk = CHUNK.min(conn.max_data_payload());
    let known = ctx.hashes.lookup(opened, algorithm);
    let cached = known.is_some();
    let how = known.map_or(SendHash::Compute(hasher), SendHash::Known);
    let sent = match signature {
        Some(signature) => {
            let whole = (!cached).then_some(algorithm);
            let fits = |cut: &Cut| {
                cut.fits(signature.avg, signature.hashing) && cut.hashes_whole() != cached
            };
            let cut = match cut {
                Some(cut) if fits(&cut) => Ok(cut),
                _ => Cut::start(&file, size, signature.avg, signature.hashing, whole),
            };
            match cut {
                Ok(cut) => delta::send::send_delta(
                    conn,
                    cut,
                    file,
                    opened,
                    start,
                    signature,
                    how,
                    chunk,
                    compress,
                    &mut |_| {},
                )
                .await
                .map(|sent| sent.hash),
                Err(e) => Err(TransferError::Local(e)),
            }
        }
        None => {
            chunks::send_file(
                conn,
                file,
                opened,
                start,
                size - start,
                how,
                chunk,
                compress,
                &mut |_| {},
            )
            .await
        }
    };
    match sent {
        Ok(hash) => {
            if !cached {
                ctx.hashes.remember(opened, opened_at, algorithm, &hash);
            }
            conn.write_message(&Message::GetEnd(GetEnd { hash }))
                .await?;
            Ok(())
        }
        Err(TransferError::FileChanged) => Err(changed(path).into()),
        Err(TransferError::Local(e)) => {
            Err(Refusal::new(ErrorCode::Io, format!("reading '{path}': {e}")).into())
        }
        Err(TransferError::Connection(e)) => Err(e.into()),
        Err(TransferError::Peer(refusal)) => Err(RequestError::OutOfStep(refusal)),
        Err(TransferError::Protocol(why)) => Err(RequestError::OutOfStep(Refusal::new(
            ErrorCode::BadMessage,
            why,
        ))),
    }
}

fn changed(path: &str) -> Refusal {
    Refusal::new(
        ErrorCode::Io,
        format!("'{path}' changed while it was being sent; try again"),
    )
}

/// Reads bytes `start..` of a small file and the whole file's hash (`hasher` has seen the
/// bytes before `start`), then checks that it did not change meanwhile.
fn read_small(
    file: &File,
    opened: &Metadata,
    start: u64,
    mut hasher: Hasher,
) -> Result<(Vec<u8>, String), TransferError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(opened.len() - start).unwrap_or(0)];
    file.read_exact_at(&mut bytes, start).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TransferError::FileChanged
        } else {
            TransferError::Local(e)
        }
    })?;
    hasher.update(&bytes);
    let now = file.metadata().map_err(TransferError::Local)?;
    if Fingerprint::of(&now) != Fingerprint::of(opened) {
        return Err(TransferError::FileChanged);
    }
    Ok((bytes, hasher.finish_hex()))
}
