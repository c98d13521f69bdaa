//! `put`: receives a file into its partial, verifies it, and renames it into place.
//!
//! An upload is a short conversation — `put`, `put_ready`, `put_start`, the data, `put_end`,
//! `put_done` — and `Upload` walks it one step per method, each step either handing on to
//! the next or ending the request with its refusal. Nothing reaches the final name unless the
//! whole file arrived and hashed to what the client said.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::held_puts::{Held, HeldPuts};
use super::sandbox::{Place, PlaceDirs, Sandbox, io_error};
use crate::audit::AuditEvent;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{
    ErrorCode, Frame, Message, Permission, Put, PutDone, PutEnd, PutReady, PutStart, Refusal,
};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, TransferError};
use crate::transfer::delta::{self, Signature, receive::Base};
use crate::transfer::hashing::Hasher;
use crate::transfer::partial::Partial;
use crate::transfer::resume::Offer;
use rustix::fs::FileType;
use std::os::fd::AsFd;

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
        upload.sign_base(ctx).await?
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
    upload.finish(&ours, &theirs).await?;
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
        return upload.finish(&ours, &theirs).await;
    }
    if held.is_full() {
        held.commit_in_background(conn, ctx).await?;
    }
    let Upload {
        request,
        target,
        partial,
    } = upload;
    let sealed = partial.seal(&target, Some(request.mode), Some(request.mtime_ns));
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

/// An upload between its `put` and its `put_done`.
struct Upload {
    request: Put,
    /// The final name, in the partial's directory.
    target: String,
    partial: Partial,
}

impl Upload {
    /// Opens the target's directory beneath the root and the partial there.
    async fn open(sandbox: &Sandbox, request: Put) -> Result<Upload, RequestError> {
        let sandbox = sandbox.clone();
        let path = request.path.clone();
        let (target, partial) = off_runtime(move || open_put(&sandbox, &path)).await??;
        Ok(Upload {
            request,
            target,
            partial,
        })
    }

    /// What the partial holds of an earlier attempt.
    async fn offer(self) -> Result<(Upload, Offer), RequestError> {
        let mut upload = self;
        off_runtime(move || {
            let offer = Offer::of(
                &mut upload.partial,
                upload.request.hash,
                upload.request.size,
            );
            (upload, offer)
        })
        .await
    }

    /// Refuses at once what cannot fit, rather than fill the disk and then fail.
    async fn ensure_space(self, held: u64) -> Result<Upload, RequestError> {
        let needed = self.request.size - held;
        let Some(free) = free_bytes(self.partial.dir()).filter(|free| needed > *free) else {
            return Ok(self);
        };
        let path = self.request.path.clone();
        if held == 0 {
            // Opening made an empty partial: leave nothing behind.
            self.discard().await?;
        }
        Err(Refusal::new(
            ErrorCode::NoSpace,
            format!(
                "no space for '{path}' on the server: it needs {needed} more bytes, {free} are free"
            ),
        )
        .into())
    }

    /// Receives the data from `start` to the end, plain or as a delta against `base` (its
    /// blocks compressed where it pays when `compressed` was agreed); the hash of the whole
    /// file as written.
    async fn receive<S>(
        self,
        conn: &mut Connection<S>,
        start: u64,
        offer: Offer,
        base: Option<Base>,
        compressed: bool,
    ) -> Result<(Upload, String), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut upload = self;
        let hasher = offer.hasher_for(start, upload.request.hash);
        upload.partial.keep(start)?;
        let writer = upload.partial.writer()?;
        let left = upload.request.size - start;
        let delta = base.is_some();
        let received = match base {
            Some(base) => delta::receive::receive_delta(
                conn,
                writer,
                base,
                left,
                hasher,
                compressed,
                &mut |_| {},
            )
            .await
            .map(|built| built.hash),
            None => chunks::receive_file(conn, writer, left, hasher, compressed, &mut |_| {}).await,
        };
        let path = upload.request.path.clone();
        match received {
            Ok(hash) => Ok((upload, hash)),
            Err(TransferError::Local(e)) if is_disk_full(&e) => {
                // A partial that filled the disk would keep every other upload failing too:
                // give the space back.
                upload.discard().await?;
                Err(Refusal::new(
                    ErrorCode::NoSpace,
                    format!(
                        "the server's disk filled up while writing '{path}' ({e}); nothing was kept"
                    ),
                )
                .into())
            }
            // The partial stays: once the cause is fixed, the transfer resumes.
            Err(TransferError::Local(e)) => {
                Err(Refusal::new(ErrorCode::Io, format!("cannot write '{path}': {e}")).into())
            }
            // More or fewer bytes than announced: the stream is out of step, so this answer
            // is the session's last. The partial stays (nothing reaches the final name), and a
            // re-run resumes from what was written.
            Err(TransferError::Protocol(why)) => Err(RequestError::OutOfStep(Refusal::new(
                ErrorCode::BadMessage,
                format!("put of '{path}' broke off: {why}; the session ends"),
            ))),
            Err(TransferError::Peer(refusal)) => Err(RequestError::Abandoned(refusal)),
            Err(TransferError::Connection(e)) => Err(e.into()),
            Err(TransferError::FileChanged) if delta => {
                // Built partly from another version of the base: nothing of it is kept.
                upload.discard().await?;
                Err(Refusal::new(
                    ErrorCode::Io,
                    format!("'{path}' changed on the server during the delta; nothing was kept, try again"),
                )
                .into())
            }
            Err(TransferError::FileChanged) => Err(RequestError::OutOfStep(Refusal::new(
                ErrorCode::BadMessage,
                format!("put of '{path}' broke off; the session ends"),
            ))),
        }
    }

    /// The file the put replaces, as a delta's base with its signature: only a regular file
    /// reached by its own name in the target's directory (never through a symlink), and only
    /// when both it and the new file are large enough for a delta to pay.
    async fn sign_base(
        self,
        ctx: &SessionContext,
    ) -> Result<(Upload, Option<(Base, Signature)>), RequestError> {
        if self.request.size < delta::DELTA_MIN {
            return Ok((self, None));
        }
        let hashes = Arc::clone(&ctx.hashes);
        let dir = Arc::clone(self.partial.dir());
        let name = self.target.clone();
        let signed = off_runtime(move || -> Option<(Base, Signature)> {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(dir.as_fd(), name.as_str(), flags, Mode::empty()).ok()?;
            let file = std::fs::File::from(fd);
            let meta = file.metadata().ok()?;
            if !meta.is_file() || meta.len() < delta::DELTA_MIN {
                return None;
            }
            let (fingerprint, signature) = delta::wire::sign_base(&file, &hashes).ok()?;
            let offsets = signature.offsets();
            Some((
                Base {
                    file,
                    fingerprint,
                    offsets,
                },
                signature,
            ))
        })
        .await?;
        Ok((self, signed))
    }

    /// Puts the partial in place if `ours` (the hash of what was written) is `theirs` (the
    /// client's); else nothing is kept.
    async fn finish(self, ours: &str, theirs: &str) -> Result<(), RequestError> {
        let path = self.request.path.clone();
        if ours != theirs {
            let algorithm = self.request.hash.name();
            self.discard().await?;
            return Err(Refusal::new(
                ErrorCode::Integrity,
                format!("'{path}' arrived corrupted ({algorithm} {ours}, sender said {theirs}); nothing was kept"),
            )
            .into());
        }
        let Upload {
            request,
            target,
            partial,
        } = self;
        let (mode, mtime) = (request.mode, request.mtime_ns);
        off_runtime(move || partial.finish(&target, Some(mode), Some(mtime)))
            .await?
            .map_err(|e| Refusal::new(ErrorCode::Io, format!("cannot finish '{path}': {e}")))?;
        Ok(())
    }

    /// Deletes the partial.
    async fn discard(self) -> Result<(), RequestError> {
        let partial = self.partial;
        off_runtime(move || partial.discard()).await
    }
}

/// Where a put writes: the target's directory (opened beneath the root) checked so that the
/// target is a regular file or nothing, and its partial opened there.
pub(super) fn open_put(sandbox: &Sandbox, path: &str) -> Result<(String, Partial), Refusal> {
    let place = checked_place(sandbox, path, &mut PlaceDirs::default())?;
    let partial = Partial::open_at(Arc::clone(&place.dir), &place.name)
        .map_err(|e| Refusal::new(ErrorCode::Io, format!("cannot write '{path}': {e}")))?;
    Ok((place.name, partial))
}

/// The place a put of `path` writes to (its directory taken from `dirs` when a batch already
/// opened it), if nothing but a regular file or nothing is there: a symlink is never written
/// through (`bad_path`) and a directory or device never replaced (`not_a_file`).
pub(super) fn checked_place(
    sandbox: &Sandbox,
    path: &str,
    dirs: &mut PlaceDirs,
) -> Result<Place, Refusal> {
    let place = sandbox.place_among(path, dirs)?;
    match place.kind().map_err(|e| io_error(path, &e))? {
        Some(FileType::Symlink) => Err(Refusal::new(
            ErrorCode::BadPath,
            format!("'{path}' is a symlink; ferry does not write through symlinks"),
        )),
        Some(kind) if kind != FileType::RegularFile => Err(Refusal::new(
            ErrorCode::NotAFile,
            format!("'{path}' exists and is not a regular file"),
        )),
        _ => Ok(place),
    }
}

/// Bytes an unprivileged writer may still use on the file system that holds `dir`; `None`
/// when it cannot be told (the write then finds out).
fn free_bytes(dir: &OwnedFd) -> Option<u64> {
    let stats = rustix::fs::fstatvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Whether a write failed for want of space (disk full or quota exceeded).
pub(super) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
