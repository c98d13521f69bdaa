//! `get` from the client's side: the receiver's end of a transfer.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, blocking, local, transfer_error};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::Connection;
use crate::protocol::{Get, GetEnd, GetReady, HashAlgorithm, Message};
use crate::transfer::chunks;
use crate::transfer::hashing::Hasher;
use crate::transfer::partial::Partial;
use crate::transfer::resume::Offer;

/// Downloads `remote` to `target` through its partial, resuming a verified prefix.
///
/// # Errors
/// The server's refusal, a hash mismatch (nothing is kept), local I/O, a broken connection.
pub async fn get_file<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let asked = ask_get(conn, remote, target, algorithm).await?;
    let (transfer, verified) = receive_get(conn, asked, progress).await?;
    let finish_at = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mode, mtime_ns) = (verified.mode, verified.mtime_ns);
    blocking(move || {
        verified
            .partial
            .finish(&finish_at, Some(mode), Some(mtime_ns))
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
) -> Result<AskedGet, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opened_at = target.to_path_buf();
    let (partial, offer) = blocking(move || -> std::io::Result<_> {
        let mut partial = Partial::open(&opened_at)?;
        let offer = Offer::of(&mut partial, algorithm, u64::MAX);
        Ok((partial, offer))
    })
    .await?
    .map_err(local(target))?;
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: offer.offset,
        prefix_hash: offer.prefix_hash.clone(),
    }))
    .await?;
    Ok(AskedGet {
        remote: remote.to_string(),
        target: target.to_path_buf(),
        algorithm,
        partial,
        offer,
    })
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
    } = ready;
    let hasher = offer.hasher_for(offset, algorithm);
    let (partial, writer) = blocking(move || -> std::io::Result<_> {
        let mut partial = partial;
        partial.keep(offset)?;
        let writer = partial.writer()?;
        Ok((partial, writer))
    })
    .await?
    .map_err(local(target))?;
    progress.begin(&remote, size, offset);
    let received = chunks::receive_file(conn, writer, size - offset, hasher, &mut |n| {
        progress.advance(n)
    })
    .await;
    progress.end();
    let ours = received.map_err(|e| transfer_error(target, e))?;
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
            hash: ours,
            algorithm,
        },
        VerifiedGet {
            partial,
            mode,
            mtime_ns,
        },
    ))
}

/// Downloads `remote` into `writer` (stdout, a pipe), verified at the end: no partial, no
/// resume, and the bytes are out before the hash is checked — a mismatch is an error after
/// them, as with any stream.
///
/// # Errors
/// The server's refusal, a hash mismatch, a write error, a broken connection.
pub async fn get_to_writer<S>(
    conn: &mut Connection<S>,
    remote: &str,
    writer: std::fs::File,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<Transfer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: 0,
        prefix_hash: None,
    }))
    .await?;
    let size = match conn.read_message().await? {
        Message::GetReady(ready) if ready.offset == 0 => ready.size,
        other => return Err(unexpected(other)),
    };
    progress.begin(remote, size, 0);
    let received = chunks::receive_file(conn, writer, size, Hasher::new(algorithm), &mut |n| {
        progress.advance(n)
    })
    .await;
    progress.end();
    let ours = received.map_err(|e| transfer_error(Path::new("-"), e))?;
    let theirs = match conn.read_message().await? {
        Message::GetEnd(GetEnd { hash }) => hash,
        other => return Err(unexpected(other)),
    };
    if ours != theirs {
        return Err(ClientError::Integrity(format!(
            "{remote} arrived corrupted ({} {ours}, server said {theirs})",
            algorithm.name()
        )));
    }
    Ok(Transfer {
        size,
        resumed_from: 0,
        hash: ours,
        algorithm,
    })
}
