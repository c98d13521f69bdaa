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

use super::sandbox::{Sandbox, io_error};
use crate::connection::Connection;
use crate::protocol::{
    ErrorCode, Message, Permission, Put, PutDone, PutEnd, PutReady, PutStart, Refusal,
};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, TransferError};
use crate::transfer::partial::Partial;
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
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "put")?;
    let upload = Upload::open(&ctx.sandbox, request).await?;
    let (upload, offer) = upload.offer().await?;
    let upload = upload.ensure_space(offer.offset).await?;
    conn.write_message(&Message::PutReady(PutReady {
        offset: offer.offset,
        prefix_hash: offer.prefix_hash.clone(),
    }))
    .await?;
    let start = match conn.read_message().await? {
        Message::PutStart(PutStart { offset }) if offer.allows(offset) => offset,
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
    let (upload, ours) = upload.receive(conn, start, offer).await?;
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
    upload.finish(&ours, &theirs).await?;
    conn.write_message(&Message::PutDone(PutDone { size, hash: ours }))
        .await?;
    Ok(())
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

    /// Receives the data from `start` to the end; the hash of the whole file as written.
    async fn receive<S>(
        self,
        conn: &mut Connection<S>,
        start: u64,
        offer: Offer,
    ) -> Result<(Upload, String), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut upload = self;
        let hasher = offer.hasher_for(start, upload.request.hash);
        upload.partial.keep(start)?;
        let writer = upload.partial.writer()?;
        let left = upload.request.size - start;
        let received = chunks::receive_file(conn, writer, left, hasher, &mut |_| {}).await;
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
            Err(TransferError::FileChanged) => Err(RequestError::OutOfStep(Refusal::new(
                ErrorCode::BadMessage,
                format!("put of '{path}' broke off; the session ends"),
            ))),
        }
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
fn open_put(sandbox: &Sandbox, path: &str) -> Result<(String, Partial), Refusal> {
    let place = sandbox.place(path)?;
    match place.lstat().map_err(|e| io_error(path, &e))? {
        Some(meta) if meta.is_symlink() => {
            return Err(Refusal::new(
                ErrorCode::BadPath,
                format!("'{path}' is a symlink; ferry does not write through symlinks"),
            ));
        }
        Some(meta) if !meta.is_file() => {
            return Err(Refusal::new(
                ErrorCode::NotAFile,
                format!("'{path}' exists and is not a regular file"),
            ));
        }
        _ => {}
    }
    let partial = Partial::open_at(Arc::clone(&place.dir), &place.name)
        .map_err(|e| Refusal::new(ErrorCode::Io, format!("cannot write '{path}': {e}")))?;
    Ok((place.name, partial))
}

/// Bytes an unprivileged writer may still use on the file system that holds `dir`; `None`
/// when it cannot be told (the write then finds out).
fn free_bytes(dir: &OwnedFd) -> Option<u64> {
    let stats = rustix::fs::fstatvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Whether a write failed for want of space (disk full or quota exceeded).
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
