//! An upload between its `put` and its `put_done`: the target's directory opened beneath the
//! root, the partial there, what an earlier attempt left in it, the data (plain or as a delta
//! against the file it replaces) and the rename into place. Each step either hands the upload
//! on or ends the request with its refusal.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::FileType;
use tokio::io::{AsyncRead, AsyncWrite};

use super::sandbox::{Place, PlaceDirs, Sandbox, io_error};
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Put, Refusal};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, TransferError};
use crate::transfer::delta::{self, Signature, prefill::Prefill, receive::Base};
use crate::transfer::dir_at::open_read_at;
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::partial::Partial;
use crate::transfer::resume::Offer;

/// An upload between its `put` and its `put_done`.
pub(super) struct Upload {
    pub(super) request: Put,
    /// The final name, in the partial's directory.
    pub(super) target: String,
    pub(super) partial: Partial,
    /// The new file's signature, when a delta built it from its first byte: kept once the file
    /// is in place.
    built: Option<Signature>,
}

impl Upload {
    /// Opens the target's directory beneath the root and the partial there.
    pub(super) async fn open(sandbox: &Sandbox, request: Put) -> Result<Upload, RequestError> {
        let sandbox = sandbox.clone();
        let path = request.path.clone();
        let (target, partial) = off_runtime(move || open_put(&sandbox, &path)).await??;
        Ok(Upload {
            request,
            target,
            partial,
            built: None,
        })
    }

    /// What the partial holds of an earlier attempt.
    pub(super) async fn offer(self) -> Result<(Upload, Offer), RequestError> {
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
    pub(super) async fn ensure_space(self, held: u64) -> Result<Upload, RequestError> {
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
    pub(super) async fn receive<S>(
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
        // A partial being filled ahead was empty and is written at explicit offsets: it is
        // not cut back under the filling.
        if base.as_ref().is_none_or(|base| base.prefill.is_none()) {
            upload.partial.keep(start)?;
        }
        let writer = upload.partial.writer()?;
        let left = upload.request.size - start;
        let delta = base.is_some();
        let received = match base {
            Some(base) => delta::receive::receive_delta(
                conn,
                writer,
                base,
                start,
                left,
                hasher,
                compressed,
                &mut |_| {},
            )
            .await
            .map(|received| {
                upload.built = received.signature;
                received.hash
            }),
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
    /// when both it and the new file are large enough for a delta to pay. With `fill_ahead`
    /// (nothing held to resume) the base is copied into the empty partial while it is signed
    /// ([`Prefill`]), so the bytes a delta keeps in place are on their way to the disk before
    /// the delta names them.
    pub(super) async fn sign_base(
        self,
        ctx: &SessionContext,
        fill_ahead: bool,
    ) -> Result<(Upload, Option<(Base, Signature)>), RequestError> {
        if self.request.size < delta::DELTA_MIN {
            return Ok((self, None));
        }
        let hashes = Arc::clone(&ctx.hashes);
        let dir = Arc::clone(self.partial.dir());
        let name = self.target.clone();
        let avg = self.request.avg;
        let size = self.request.size;
        let out = fill_ahead.then(|| self.partial.writer().ok()).flatten();
        // A client that names no chunk hash is one that knows only BLAKE3.
        let hashing = self.request.chunk_hash.unwrap_or_default();
        let signed = off_runtime(move || -> Option<(Base, Signature)> {
            let fd = open_read_at(dir.as_fd(), &name).ok()?;
            let file = std::fs::File::from(fd);
            let prefill = out.and_then(|out| Prefill::ahead_of_signing(&file, &out, size));
            let (base, signature) = delta::wire::base_of(file, &hashes, avg, hashing)?;
            Some((base.filling(prefill), signature))
        })
        .await?;
        Ok((self, signed))
    }

    /// Puts the partial in place if `ours` (the hash of what was written) is `theirs` (the
    /// client's); else nothing is kept.
    /// A delta's new file keeps the signature derived while it was built.
    pub(super) async fn finish(
        self,
        ours: &str,
        theirs: &str,
        hashes: &Arc<HashCache>,
    ) -> Result<(), RequestError> {
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
            built,
        } = self;
        let (mode, mtime) = (request.mode, request.mtime_ns);
        let hashes = Arc::clone(hashes);
        off_runtime(move || {
            let placed = partial.finish(&target, Some(mode), Some(mtime))?;
            if let Some(signature) = built {
                hashes.keep_built_signature(Fingerprint::of(&placed), &signature);
            }
            Ok::<_, io::Error>(())
        })
        .await?
        .map_err(|e| Refusal::new(ErrorCode::Io, format!("cannot finish '{path}': {e}")))?;
        Ok(())
    }

    /// Deletes the partial.
    pub(super) async fn discard(self) -> Result<(), RequestError> {
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
