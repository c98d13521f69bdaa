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
    ErrorCode, HashAlgorithm, Message, Put, PutDone, PutEnd, PutReady, PutStart, Refusal,
};
use crate::transfer::chunks::{self, CHUNK, SendHash, TransferError};
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::resume;

/// Uploads `source` to `remote`, resuming after the server's verified prefix.
///
/// # Errors
/// The server's refusal (including `integrity`), local I/O, a broken connection.
pub async fn put_file<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
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
    conn.write_message(&Message::Put(Put {
        path: remote.to_string(),
        size,
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        hash: algorithm,
    }))
    .await?;
    let (held, theirs) = match conn.read_message().await? {
        Message::PutReady(PutReady {
            offset,
            prefix_hash,
        }) => (offset, prefix_hash),
        other => return Err(unexpected(other)),
    };
    let (start, hasher, file) = blocking(move || {
        let mut file = file;
        let (start, hasher) =
            resume::start_after_offer(&mut file, algorithm, size, held, theirs.as_deref());
        (start, hasher, file)
    })
    .await?;
    conn.write_message(&Message::PutStart(PutStart { offset: start }))
        .await?;
    progress.begin(remote, size, start);
    let chunk = CHUNK.min(conn.max_data_payload());
    let known = hashes.lookup(opened, algorithm);
    let cached = known.is_some();
    let how = known.map_or(SendHash::Compute(hasher), SendHash::Known);
    let sent = chunks::send_file(
        conn,
        file,
        opened,
        start,
        size - start,
        how,
        chunk,
        &mut |n| progress.advance(n),
    )
    .await;
    progress.end();
    let ours = match sent {
        Ok(hash) => hash,
        Err(e) => {
            if let TransferError::FileChanged | TransferError::Local(_) = e {
                // The server waits for the rest of the data: tell it why none will come.
                let why = Refusal::new(ErrorCode::Io, format!("the client could not send: {e}"));
                let _ = conn.write_message(&Message::Error(why)).await;
            }
            return Err(transfer_error(source, e));
        }
    };
    if !cached {
        hashes.remember(opened, opened_at, algorithm, &ours);
    }
    conn.write_message(&Message::PutEnd(PutEnd { hash: ours.clone() }))
        .await?;
    match conn.read_message().await? {
        Message::PutDone(PutDone { hash, .. }) if hash == ours => Ok(Transfer {
            size,
            resumed_from: start,
            hash,
            algorithm,
        }),
        Message::PutDone(PutDone { hash, .. }) => Err(ClientError::Integrity(format!(
            "the server stored {hash} but we sent {ours}"
        ))),
        other => Err(unexpected(other)),
    }
}
