//! `get` from a client that holds an older version of the file (its base): the file goes as a
//! delta against it.
//!
//! A client announces its base in one of two ways. With `base`, the signature follows the
//! request at once (a signature it had kept). With `signing`, it has not signed yet: this side
//! opens the file and starts cutting it the way the client signs (its average and chunk hash)
//! while the client reads its base, and reads the signature when `base_signed` brings it. The two
//! reads then overlap, one per core, as they do for a `put` that names its average; before,
//! the client signed and only then did the server start to cut.
//!
//! Either way the signature is read whatever the answer (a refusal included), so the stream
//! stays in step.

use std::fs::{File, Metadata};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};

use super::get::{Prepared, Send, batch_small, io, prepare, send_large};
use crate::connection::{Connection, ConnectionError};
use crate::metrics::TransferKind;
use crate::protocol::{
    BaseSigned, DeltaBase, ErrorCode, Get, HashAlgorithm, Message, Permission, Refusal, Signing,
};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::TransferError;
use crate::transfer::delta::{self, RemoteSignature, cut::Cut};
use crate::transfer::hash_cache::Fingerprint;

/// How a delta `get` announced its base.
pub enum Announced {
    /// With `base`: the signature follows the request.
    Now(DeltaBase),
    /// With `signing`: `base_signed` and the signature follow once the client has signed.
    Later(Signing),
}

impl Announced {
    /// How `request` announces a base, if it does. A request that names both `base` and
    /// `signing` cannot be followed (two signatures would come, or one the server does not
    /// expect): the session ends.
    ///
    /// # Errors
    /// Both are named.
    pub fn of(request: &mut Get) -> Result<Option<Announced>, RequestError> {
        match (request.base.take(), request.signing.take()) {
            (None, None) => Ok(None),
            (Some(base), None) => Ok(Some(Announced::Now(base))),
            (None, Some(signing)) => Ok(Some(Announced::Later(signing))),
            (Some(_), Some(_)) => Err(RequestError::OutOfStep(Refusal::new(
                ErrorCode::BadMessage,
                "a get names both `base` and `signing`",
            ))),
        }
    }
}

/// Serves a `get` whose client holds an older version: the file is sent as a delta against it
/// when it is large enough for one to pay, else whole.
///
/// # Errors
/// The connection failed, or the stream is out of step (refusals are answered here).
pub async fn serve_delta_get<S>(
    conn: &mut Connection<S>,
    request: Get,
    announced: Announced,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (now, signing) = match announced {
        Announced::Now(base) => (Some(read_signature(conn, &base).await?), None),
        Announced::Later(signing) => (None, Some(signing)),
    };
    let opened_at = SystemTime::now();
    let started = Instant::now();
    let prepared = match ctx.need(Permission::Read, "get") {
        Ok(()) => {
            let sandbox = ctx.sandbox.clone();
            let (budget, peer) = (Arc::clone(&ctx.resume_budget), ctx.peer);
            off_runtime(move || prepare(&sandbox, request, |bytes| budget.take(peer, bytes)))
                .await?
        }
        Err(refusal) => Err(refusal),
    };
    let (signature, cut) = match signing {
        None => (now, None),
        Some(signing) => {
            let cut = match &prepared {
                Ok(Prepared::Large {
                    file, meta, hasher, ..
                }) => cut_ahead(ctx, file, meta, hasher.algorithm(), &signing),
                _ => None,
            };
            (read_later_signature(conn).await?, cut)
        }
    };
    let served = async {
        match prepared? {
            Prepared::Small { ready, bytes, hash } => {
                let mut batch = conn.batch();
                batch_small(&mut batch, ready, &bytes, hash)?;
                conn.write_batch(batch).await.map_err(io)?;
                Ok(())
            }
            Prepared::Large {
                path,
                file,
                meta,
                start,
                hasher,
                compress,
            } => {
                let signature = signature.filter(|_| meta.len() >= delta::DELTA_MIN);
                let send = Send {
                    file,
                    meta,
                    start,
                    hasher,
                    opened_at,
                    signature,
                    cut,
                    compress,
                };
                send_large(conn, ctx, &path, send).await
            }
        }
    }
    .await;
    match served {
        Ok(()) => {
            ctx.metrics.request("get", "ok");
            ctx.metrics.transfer(TransferKind::Get, started.elapsed());
            Ok(())
        }
        Err(RequestError::Refused(refusal)) => {
            ctx.metrics.request("get", refusal.code.name());
            conn.write_message(&Message::Error(refusal))
                .await
                .map_err(io)
        }
        Err(other) => Err(other),
    }
}

/// Starts cutting the file the way the client signs its base, while it signs: only when a
/// delta can follow (a file large enough, an average this side cuts at). The whole file is
/// hashed beside unless its hash is kept.
fn cut_ahead(
    ctx: &SessionContext,
    file: &File,
    meta: &Metadata,
    algorithm: HashAlgorithm,
    signing: &Signing,
) -> Option<Cut> {
    if meta.len() < delta::DELTA_MIN || !delta::valid_average(signing.avg) {
        return None;
    }
    let cached = ctx
        .hashes
        .lookup(Fingerprint::of(meta), algorithm)
        .is_some();
    let whole = (!cached).then_some(algorithm);
    Cut::start(file, meta.len(), signing.avg, signing.chunk_hash, whole).ok()
}

/// Reads past whatever signature follows `request` (a refused one: the stream stays in step).
///
/// # Errors
/// A signature that is not one, or the connection failed.
pub async fn skip_signature<S>(conn: &mut Connection<S>, request: &Get) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(base) = &request.base {
        read_signature(conn, base).await?;
    } else if request.signing.is_some() {
        read_later_signature(conn).await?;
    }
    Ok(())
}

/// Reads the signature that follows a delta `get`; one that is not a signature leaves the
/// stream out of step, and ends the session with that answer.
///
/// # Errors
/// As above, or the connection failed.
pub async fn read_signature<S>(
    conn: &mut Connection<S>,
    base: &DeltaBase,
) -> Result<RemoteSignature, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match delta::wire::read_signature(conn, base).await {
        Ok(signature) => Ok(signature),
        Err(TransferError::Connection(e)) => Err(e.into()),
        Err(TransferError::Peer(refusal)) => Err(RequestError::Abandoned(refusal)),
        Err(e) => Err(RequestError::OutOfStep(Refusal::new(
            ErrorCode::BadMessage,
            format!("a get's signature: {e}"),
        ))),
    }
}

/// Reads `base_signed` and the signature it announces, after a `get` with `signing`: none when
/// the client could not sign its base after all.
///
/// # Errors
/// Anything but `base_signed` (the stream is out of step), a signature that is not one, or the
/// connection failed.
async fn read_later_signature<S>(
    conn: &mut Connection<S>,
) -> Result<Option<RemoteSignature>, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let out_of_step = |what: String| {
        RequestError::OutOfStep(Refusal::new(
            ErrorCode::UnexpectedMessage,
            format!("a get with `signing` is followed by `base_signed`, not {what}"),
        ))
    };
    match conn.read_message().await {
        Ok(Message::BaseSigned(BaseSigned { base: Some(base) })) => {
            read_signature(conn, &base).await.map(Some)
        }
        Ok(Message::BaseSigned(BaseSigned { base: None })) => Ok(None),
        Ok(Message::Error(refusal)) => Err(RequestError::Abandoned(refusal)),
        Ok(other) => Err(out_of_step(format!("`{}`", other.kind()))),
        Err(ConnectionError::UnexpectedData(channel)) => {
            Err(out_of_step(format!("data on channel {channel}")))
        }
        Err(e) => Err(e.into()),
    }
}
