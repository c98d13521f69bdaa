//! `get` from the client's side: the receiver's end of a transfer.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, blocking, local, transfer_error};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::Connection;
use crate::protocol::{
    BaseSigned, ChunkHashing, Get, GetEnd, GetReady, HashAlgorithm, Message, Signing,
};
use crate::transfer::chunks::{self, TransferError};
use crate::transfer::delta::{self, Signature, prefill::Prefill, receive::Base};
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::partial::Partial;
use crate::transfer::resume::Offer;
use std::sync::Arc;

/// Downloads `remote` to `target` through its partial, resuming a verified prefix; with
/// `delta` (the cache of signatures), as a delta against what `target` holds now; with
/// `compress`, taking compressed blocks where the server finds they pay. A delta that fails
/// verification is fetched again whole, once.
///
/// # Errors
/// The server's refusal, a hash mismatch (nothing is kept), local I/O, a broken connection.
pub async fn get_file<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    delta: Option<Arc<HashCache>>,
    compress: bool,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let with_delta = delta.is_some();
    let got = get_once(conn, remote, target, algorithm, delta, compress, progress).await;
    match got {
        Err(e) if with_delta && super::failed_verification(&e) => {
            get_once(conn, remote, target, algorithm, None, compress, progress).await
        }
        other => other,
    }
}

/// One attempt of [`get_file`].
async fn get_once<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    delta: Option<Arc<HashCache>>,
    compress: bool,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let asked = ask_get(conn, remote, target, algorithm, delta, compress).await?;
    let (transfer, verified) = receive_get(conn, asked, progress).await?;
    let (_, finish_at) = crate::transfer::partial::parent_and_name(target);
    let (mode, mtime_ns) = (verified.mode, verified.mtime_ns);
    blocking(move || {
        let placed = verified
            .partial
            .finish(&finish_at, Some(mode), Some(mtime_ns))?;
        if let Some((hashes, signature)) = verified.built {
            hashes.keep_built_signature(Fingerprint::of(&placed), &signature);
        }
        Ok::<_, std::io::Error>(())
    })
    .await?
    .map_err(local(target))?;
    Ok(transfer)
}

/// A `get` sent and not yet answered: the partial it will fill and what it offered to resume.
pub struct AskedGet {
    remote: String,
    target: PathBuf,
    algorithm: HashAlgorithm,
    partial: Partial,
    offer: Offer,
    /// The partial emptied and a handle to write it, when nothing was offered (the answer can
    /// then only start at 0): made in the same trip to a blocking thread as the partial.
    writer: Option<std::fs::File>,
    /// The older version the target holds, when a delta was asked for against it.
    base: Option<Base>,
    /// Compressed blocks were asked for.
    compress: bool,
    /// Where a delta's new file keeps its signature.
    hashes: Option<Arc<HashCache>>,
}

/// A file received whole and verified, still in its partial: the caller makes it durable and
/// renames it into place (alone with [`Partial::finish`], or with others).
pub struct VerifiedGet {
    /// The partial holding the verified bytes.
    pub partial: Partial,
    /// The server's mode and mtime for the file.
    pub mode: u32,
    #[allow(missing_docs)]
    pub mtime_ns: i64,
    /// A delta's new file's signature, derived as it was built, and the cache to keep it in
    /// once the file is in place.
    pub built: Option<(Arc<HashCache>, Signature)>,
}

impl AskedGet {
    /// Whether it asked for a delta.
    pub fn is_delta(&self) -> bool {
        self.base.is_some()
    }
}

/// Opens `target`'s partial and sends the `get` for `remote`, offering what the partial holds;
/// the answer is read by [`receive_get`]. Many may be asked before the first answer is read:
/// the server answers requests in order.
///
/// # Errors
/// Local I/O, a broken connection.
pub async fn ask_get<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    delta: Option<Arc<HashCache>>,
    compress: bool,
) -> Result<AskedGet, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opened_at = target.to_path_buf();
    let hashes = delta.clone();
    let (partial, offer, writer, base) = blocking(move || -> std::io::Result<_> {
        let mut partial = Partial::open(&opened_at)?;
        let offer = Offer::of(&mut partial, algorithm, u64::MAX);
        let writer = if offer.offset == 0 {
            partial.keep(0)?;
            Some(partial.writer()?)
        } else {
            None
        };
        let base = delta.and_then(|hashes| open_base(&opened_at, hashes));
        // With nothing to resume, the base goes into the partial while it is signed and the
        // server cuts (the delta then finds most of it written).
        let base = match (base, &writer) {
            (Some(base), Some(writer)) => Some(base.filling(writer)),
            (base, _) => base,
        };
        Ok((partial, offer, writer, base))
    })
    .await?
    .map_err(local(target))?;
    let (kept, signing) = match &base {
        Some(OpenedBase::Signed(_, signature)) => (Some(signature.base()), None),
        Some(OpenedBase::Unsigned { size, .. }) => (None, Some(signing_for(*size))),
        None => (None, None),
    };
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: offer.offset,
        prefix_hash: offer.prefix_hash.clone(),
        base: kept,
        signing,
        compress,
    }))
    .await?;
    let base = match base {
        Some(OpenedBase::Signed(base, signature)) => {
            delta::wire::write_signature(conn, &signature).await?;
            Some(base)
        }
        Some(OpenedBase::Unsigned {
            file,
            size,
            hashes,
            prefill,
        }) => sign_after_asking(conn, file, &signing_for(size), hashes)
            .await?
            .map(|base| base.filling(prefill)),
        None => None,
    };
    Ok(AskedGet {
        remote: remote.to_string(),
        target: target.to_path_buf(),
        algorithm,
        partial,
        offer,
        writer,
        base,
        compress,
        hashes,
    })
}

/// What `target` holds as a delta's base.
enum OpenedBase {
    /// Its signature was kept (this very version was signed or built before, at whatever
    /// average and chunk hash: the server cuts its file the way the base says).
    Signed(Base, Signature),
    /// It must be signed: after the request goes, so the server cuts its file meanwhile.
    Unsigned {
        file: std::fs::File,
        size: u64,
        /// Where its signature is kept once computed.
        hashes: Arc<HashCache>,
        /// It is being copied into the partial meanwhile.
        prefill: Option<Prefill>,
    },
}

/// How this side will sign a base of `size` bytes: at the average it would choose, with XXH3.
fn signing_for(size: u64) -> Signing {
    Signing {
        size,
        avg: delta::average_for(size),
        chunk_hash: ChunkHashing::Xxh3,
    }
}

/// Signs `file` as `signing` announced, once the `get` is on its way (the server cuts its file
/// meanwhile), and sends `base_signed` with the signature; `None`, and a `base_signed` without
/// a base, when the file changed while it was read.
///
/// # Errors
/// A broken connection, or the blocking thread failed.
async fn sign_after_asking<S>(
    conn: &mut Connection<S>,
    file: std::fs::File,
    signing: &Signing,
    hashes: Arc<HashCache>,
) -> Result<Option<Base>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.flush().await?;
    let (avg, hashing) = (signing.avg, signing.chunk_hash);
    let signed = blocking(move || {
        let (fingerprint, signature) =
            delta::wire::sign_base(&file, &hashes, Some(avg), hashing).ok()?;
        Some((Base::new(file, fingerprint, &signature), signature))
    })
    .await?;
    conn.write_message(&Message::BaseSigned(BaseSigned {
        base: signed.as_ref().map(|(_, signature)| signature.base()),
    }))
    .await?;
    match signed {
        Some((base, signature)) => {
            delta::wire::write_signature(conn, &signature).await?;
            Ok(Some(base))
        }
        None => Ok(None),
    }
}

/// The file at `target` as a delta's base: a regular file large enough for a delta to pay.
/// Anything else (nothing there, a link, a read error) means no delta.
fn open_base(target: &Path, hashes: Arc<HashCache>) -> Option<OpenedBase> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(target)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < delta::DELTA_MIN {
        return None;
    }
    let fingerprint = Fingerprint::of(&meta);
    Some(match hashes.signature(fingerprint) {
        Some(kept) => OpenedBase::Signed(Base::new(file, fingerprint, &kept), kept),
        None => OpenedBase::Unsigned {
            file,
            size: meta.len(),
            hashes,
            prefill: None,
        },
    })
}

impl OpenedBase {
    /// The same base, copied into `writer` (the empty partial) from now on, when it is large
    /// enough ([`Prefill`]).
    fn filling(self, writer: &std::fs::File) -> Self {
        match self {
            OpenedBase::Signed(base, signature) => {
                let prefill = Prefill::ahead_of_signing(&base.file, writer, u64::MAX);
                OpenedBase::Signed(base.filling(prefill), signature)
            }
            OpenedBase::Unsigned {
                file, size, hashes, ..
            } => OpenedBase::Unsigned {
                prefill: Prefill::ahead_of_signing(&file, writer, u64::MAX),
                file,
                size,
                hashes,
            },
        }
    }
}

/// Reads the answer to `asked`: the data into its partial, then the server's hash, compared
/// with the hash of what the partial holds. A mismatch keeps nothing.
///
/// # Errors
/// The server's refusal, a hash mismatch, local I/O, a broken connection.
pub async fn receive_get<S>(
    conn: &mut Connection<S>,
    asked: AskedGet,
    progress: &mut dyn Progress,
) -> Result<(Transfer, VerifiedGet), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let AskedGet {
        remote,
        target,
        algorithm,
        partial,
        offer,
        writer,
        base,
        compress,
        hashes,
    } = asked;
    let target = target.as_path();
    let ready = match conn.read_message().await? {
        Message::GetReady(ready) if offer.allows(ready.offset) && ready.offset <= ready.size => {
            ready
        }
        other => {
            if offer.offset == 0 {
                blocking(move || partial.discard()).await?;
            }
            return Err(unexpected(other));
        }
    };
    let GetReady {
        size,
        mode,
        mtime_ns,
        offset,
        delta,
        compress: compressed,
    } = ready;
    if compressed && !compress {
        return Err(ClientError::Protocol(
            "the server sent compressed blocks unasked".into(),
        ));
    }
    let base = match (delta, base) {
        (false, _) => None,
        (true, Some(base)) => Some(base),
        (true, None) => {
            return Err(ClientError::Protocol(
                "the server sent a delta where no base was offered".into(),
            ));
        }
    };
    let hasher = offer.hasher_for(offset, algorithm);
    let (partial, writer) = match writer {
        Some(writer) if offset == 0 => (partial, writer),
        _ => blocking(move || -> std::io::Result<_> {
            let mut partial = partial;
            partial.keep(offset)?;
            let writer = partial.writer()?;
            Ok((partial, writer))
        })
        .await?
        .map_err(local(target))?,
    };
    progress.begin(&remote, size, offset);
    let received = match base {
        Some(base) => delta::receive::receive_delta(
            conn,
            writer,
            base,
            offset,
            size - offset,
            hasher,
            compressed,
            &mut |n| progress.advance(n),
        )
        .await
        .map(|built| (built.hash, built.matched, built.signature)),
        None => chunks::receive_file(conn, writer, size - offset, hasher, compressed, &mut |n| {
            progress.advance(n)
        })
        .await
        .map(|hash| (hash, 0, None)),
    };
    progress.end();
    let (ours, matched, signature) = match received {
        Ok(received) => received,
        Err(TransferError::FileChanged) => {
            // Built partly from another version of the base: nothing of it is kept.
            blocking(move || partial.discard()).await?;
            return Err(ClientError::Local {
                path: target.to_path_buf(),
                source: std::io::Error::other(
                    "it changed here during the delta; nothing was kept, try again",
                ),
            });
        }
        Err(e) => return Err(transfer_error(target, e)),
    };
    let theirs = match conn.read_message().await? {
        Message::GetEnd(GetEnd { hash }) => hash,
        other => return Err(unexpected(other)),
    };
    if ours != theirs {
        blocking(move || partial.discard()).await?;
        return Err(ClientError::Integrity(format!(
            "{remote} arrived corrupted ({} {ours}, server said {theirs}); nothing was kept",
            algorithm.name()
        )));
    }
    Ok((
        Transfer {
            size,
            resumed_from: offset,
            matched,
            hash: ours,
            algorithm,
        },
        VerifiedGet {
            partial,
            mode,
            mtime_ns,
            built: hashes.zip(signature),
        },
    ))
}
