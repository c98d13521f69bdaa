//! `put`: receives a file into its partial, verifies it, and renames it into place.
//!
//! An upload is a short conversation — `put`, `put_ready`, `put_start`, the data, `put_end`,
//! `put_done` — and `Upload` walks it one step per method, each step either handing on to
//! the next or ending the request with its refusal. Nothing reaches the final name unless the
//! whole file arrived and hashed to what the client said.

use tokio::io::{AsyncRead, AsyncWrite};

use super::held_puts::{Held, HeldPuts};
use super::upload::Upload;
pub(super) use super::upload::{checked_place, is_disk_full};
use crate::audit::AuditEvent;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{
    ErrorCode, Frame, Message, Permission, Put, PutDone, PutEnd, PutReady, PutStart, Refusal,
};
use crate::services::{RequestError, SessionContext};
use crate::transfer::commit::Sealed;
use crate::transfer::delta;
use crate::transfer::hashing::Hasher;
use crate::transfer::resume::Offer;

/// Serves one `put`.
///
/// # Errors
/// The refusal to answer with, or the session must end (the connection failed, or the data
/// was out of step with the size announced).
pub async fn serve_put<S>(
    conn: &mut Connection<S>,
    request: Put,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if request.whole {
        return serve_whole_put(conn, request, ctx, held).await;
    }
    ctx.need(Permission::Write, "put")?;
    let upload = Upload::open(&ctx.sandbox, request).await?;
    let (upload, offer) = upload.offer().await?;
    let upload = upload.ensure_space(offer.offset).await?;
    let (upload, base) = if upload.request.delta {
        upload.sign_base(ctx, offer.offset == 0).await?
    } else {
        (upload, None)
    };
    let compressed = upload.request.compress;
    conn.write_message(&Message::PutReady(PutReady {
        offset: offer.offset,
        prefix_hash: offer.prefix_hash.clone(),
        base: base.as_ref().map(|(_, signature)| signature.base()),
        compress: compressed,
    }))
    .await?;
    if let Some((_, signature)) = &base {
        delta::wire::write_signature(conn, signature).await?;
    }
    let (start, use_delta) = match conn.read_message().await? {
        Message::PutStart(PutStart { offset, delta }) if offer.allows(offset) => (offset, delta),
        other => {
            return Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                format!(
                    "expected 'put_start' with offset 0 or {}, got '{}'",
                    offer.offset,
                    other.kind()
                ),
            )
            .into());
        }
    };
    let base = match (use_delta, base) {
        (false, _) => None,
        (true, Some((base, _))) => Some(base),
        (true, None) => {
            return Err(RequestError::OutOfStep(Refusal::new(
                ErrorCode::UnexpectedMessage,
                "'put_start' asked for a delta where no base was offered; the session ends",
            )));
        }
    };
    let (upload, ours) = upload.receive(conn, start, offer, base, compressed).await?;
    let theirs = match conn.read_message().await? {
        Message::PutEnd(PutEnd { hash }) => hash,
        other => {
            return Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                format!("expected 'put_end', got '{}'", other.kind()),
            )
            .into());
        }
    };
    let size = upload.request.size;
    let path = upload.request.path.clone();
    upload.finish(&ours, &theirs, &ctx.hashes).await?;
    let done = PutDone { size, hash: ours };
    audit_write(ctx, path, &done);
    conn.write_message(&Message::PutDone(done)).await?;
    Ok(())
}

/// Records a file written under its name (verified, durable, in place).
pub(super) fn audit_write(ctx: &SessionContext, path: String, done: &PutDone) {
    ctx.audit.record(AuditEvent::FileWrite {
        actor: ctx.actor(),
        path,
        size: done.size,
        hash: done.hash.clone(),
    });
}

/// Serves one `whole` put: the bytes and `put_end` follow the request at once. Every refusal
/// is answered only after what the client already sent for this put was read (so the next
/// request is in step), and after the held puts before it were answered (so answers keep the
/// requests' order). A verified file is held for the next commit, which answers it.
async fn serve_whole_put<S>(
    conn: &mut Connection<S>,
    request: Put,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let size = request.size;
    if size <= SMALL_PUT {
        return serve_small_put(conn, request, ctx, held).await;
    }
    if !held.is_empty() && !bytes_at_hand(conn, held, size).await {
        // This put's bytes are not here: the held ones must not wait on this client (their
        // partials stay open and locked until committed).
        held.commit_in_background(conn, ctx).await?;
    }
    let prepared = async {
        ctx.need(Permission::Write, "put")?;
        Upload::open(&ctx.sandbox, request)
            .await?
            .ensure_space(0)
            .await
    }
    .await;
    let upload = match prepared {
        Ok(upload) => upload,
        Err(RequestError::Refused(refusal)) => {
            // The held puts are answered first (and not kept while this one's bytes come).
            held.commit(conn, ctx).await?;
            skip_whole_put(conn, size).await?;
            return Err(refusal.into());
        }
        Err(other) => return Err(other),
    };
    let received = upload.receive(conn, 0, Offer::nothing(), None, false).await;
    let (upload, ours) = match received {
        Ok(received) => received,
        Err(RequestError::Refused(refusal)) => {
            // The data was read to its end: only `put_end` is left of this put.
            held.commit(conn, ctx).await?;
            expect_put_end(conn).await?;
            return Err(refusal.into());
        }
        Err(other) => return Err(other),
    };
    let theirs = put_end_holding(conn, held, ctx).await?;
    let path = upload.request.path.clone();
    if ours != theirs {
        held.commit(conn, ctx).await?;
        return upload.finish(&ours, &theirs, &ctx.hashes).await;
    }
    if held.is_full() {
        held.commit_in_background(conn, ctx).await?;
    }
    let Upload {
        request,
        target,
        partial,
        ..
    } = upload;
    let sealed = Sealed::partial(partial, &target, Some(request.mode), Some(request.mtime_ns));
    held.hold(
        conn,
        ctx,
        Held::Sealed(sealed),
        PutDone { size, hash: ours },
        path,
    )
    .await
}

/// Whether a whole put of `size` bytes has its data at hand: one data frame carrying all of
/// it, already here or arriving within the held puts' grace ([`HeldPuts::grace`]).
async fn bytes_at_hand<S>(conn: &mut Connection<S>, held: &HeldPuts, size: u64) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(held.grace(), conn.wait_whole_frame()).await,
        Ok(Ok(()))
    ) && conn
        .buffered_data_len()
        .is_some_and(|len| len as u64 == size)
}

/// Reads a whole put's `put_end`, committing the held puts meanwhile if it takes longer than
/// their grace ([`HeldPuts::grace`]).
async fn put_end_holding<S>(
    conn: &mut Connection<S>,
    held: &mut HeldPuts,
    ctx: &SessionContext,
) -> Result<String, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !held.is_empty()
        && !matches!(
            tokio::time::timeout(held.grace(), conn.wait_whole_frame()).await,
            Ok(Ok(()))
        )
    {
        held.commit_in_background(conn, ctx).await?;
    }
    expect_put_end(conn).await
}

/// Reads the next frame of a whole put; if it takes longer than the held puts' grace
/// ([`HeldPuts::grace`]), they are committed meanwhile rather than kept waiting on this client.
async fn read_frame_holding<S>(
    conn: &mut Connection<S>,
    held: &mut HeldPuts,
    ctx: &SessionContext,
) -> Result<Option<Frame>, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !held.is_empty() {
        // `read_frame` is cancel-safe: a frame half read stays buffered for the read below.
        if let Ok(frame) = tokio::time::timeout(held.grace(), conn.read_frame()).await {
            return Ok(frame?);
        }
        held.commit_in_background(conn, ctx).await?;
    }
    Ok(conn.read_frame().await?)
}

/// Whole puts of at most this many bytes are read into memory first, then written, checked
/// and sealed in one trip to a blocking thread.
pub const SMALL_PUT: u64 = 64 * 1024;

/// A small whole put: the bytes and `put_end` are read (and hashed) first, then one trip to a
/// blocking thread opens the partial beneath the root, writes and seals it. Every refusal
/// therefore comes after all of the put was read, in step.
async fn serve_small_put<S>(
    conn: &mut Connection<S>,
    request: Put,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(refusal) = ctx.need(Permission::Write, "put") {
        held.commit(conn, ctx).await?;
        skip_whole_put(conn, request.size).await?;
        return Err(refusal.into());
    }
    let path = request.path.clone();
    let mut bytes = Vec::with_capacity(usize::try_from(request.size).unwrap_or(0));
    let mut hasher = Hasher::new(request.hash);
    while (bytes.len() as u64) < request.size {
        match read_frame_holding(conn, held, ctx).await? {
            Some(Frame::Data {
                channel: 0,
                payload,
            }) if (bytes.len() + payload.len()) as u64 <= request.size => {
                hasher.update(&payload);
                bytes.extend_from_slice(&payload);
            }
            None => return Err(ConnectionError::Closed.into()),
            Some(other) => {
                if let Frame::Message(body) = &other
                    && let Ok(Message::Error(refusal)) = Message::parse(body)
                {
                    return Err(RequestError::Abandoned(refusal));
                }
                return Err(RequestError::OutOfStep(Refusal::new(
                    ErrorCode::BadMessage,
                    format!(
                        "put of '{path}' broke off: data out of step with its size; the session ends"
                    ),
                )));
            }
        }
    }
    let theirs = put_end_holding(conn, held, ctx).await?;
    let ours = hasher.finish_hex();
    if ours != theirs {
        held.commit(conn, ctx).await?;
        let algorithm = request.hash.name();
        return Err(Refusal::new(
            ErrorCode::Integrity,
            format!("'{path}' arrived corrupted ({algorithm} {ours}, sender said {theirs}); nothing was kept"),
        )
        .into());
    }
    if held.is_full() {
        held.commit_in_background(conn, ctx).await?;
    }
    let small = Held::Small {
        bytes,
        mode: request.mode,
        mtime_ns: request.mtime_ns,
    };
    held.hold(
        conn,
        ctx,
        small,
        PutDone {
            size: request.size,
            hash: ours,
        },
        path,
    )
    .await
}

/// Reads `put_end`, the last message of a put.
async fn expect_put_end<S>(conn: &mut Connection<S>) -> Result<String, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match conn.read_message().await? {
        Message::PutEnd(PutEnd { hash }) => Ok(hash),
        Message::Error(refusal) => Err(RequestError::Abandoned(refusal)),
        other => Err(RequestError::OutOfStep(Refusal::new(
            ErrorCode::UnexpectedMessage,
            format!("expected 'put_end', got '{}'", other.kind()),
        ))),
    }
}

/// Reads and drops the `size` bytes and the `put_end` of a refused whole put.
///
/// # Errors
/// The data did not match its announced size (the session ends), or the connection failed.
pub async fn skip_whole_put<S>(conn: &mut Connection<S>, size: u64) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut left = size;
    while left > 0 {
        match conn.read_frame().await? {
            Some(Frame::Data {
                channel: 0,
                payload,
            }) if payload.len() as u64 <= left => left -= payload.len() as u64,
            Some(Frame::Message(body))
                if matches!(Message::parse(&body), Ok(Message::Error(_))) =>
            {
                return Ok(());
            }
            None => return Err(ConnectionError::Closed.into()),
            Some(_) => {
                return Err(RequestError::OutOfStep(Refusal::new(
                    ErrorCode::BadMessage,
                    format!("a whole put of {size} bytes broke off; the session ends"),
                )));
            }
        }
    }
    expect_put_end(conn).await.map(|_| ())
}
