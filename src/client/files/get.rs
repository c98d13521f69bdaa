//! `get` from the client's side: the receiver's end of a transfer.

use std::path::Path;

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
    progress.begin(remote, size, offset);
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
    let finish_at = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    blocking(move || partial.finish(&finish_at, Some(mode), Some(mtime_ns)))
        .await?
        .map_err(local(target))?;
    Ok(Transfer {
        size,
        resumed_from: offset,
        hash: ours,
        algorithm,
    })
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
