//! `get`: sends a regular file, resuming after a prefix the client proves it holds.

use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::Connection;
use crate::protocol::{ErrorCode, Get, GetEnd, GetReady, Message, Permission, Refusal};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, CHUNK, SendHash, TransferError};
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::resume;

/// Serves one `get`. The file is opened off the runtime, without blocking (a FIFO cannot
/// freeze it), and checked on the very descriptor that is sent.
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_get<S>(
    conn: &mut Connection<S>,
    request: Get,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Read, "get")?;
    let sandbox = ctx.sandbox.clone();
    let path = request.path;
    let wanted = path.clone();
    let (mut file, meta) = off_runtime(move || sandbox.open_regular(&wanted)).await??;
    let opened = Fingerprint::of(&meta);
    let opened_at = SystemTime::now();
    let size = meta.len();
    let (algorithm, offset, prefix_hash) = (request.hash, request.offset, request.prefix_hash);
    let (file, start, hasher) = off_runtime(move || {
        let (start, hasher) =
            resume::start_after_offer(&mut file, algorithm, size, offset, prefix_hash.as_deref());
        (file, start, hasher)
    })
    .await?;
    conn.write_message(&Message::GetReady(GetReady {
        size,
        mode: meta.mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        offset: start,
    }))
    .await?;
    let chunk = CHUNK.min(conn.max_data_payload());
    let known = ctx.hashes.lookup(opened, algorithm);
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
        &mut |_| {},
    )
    .await;
    match sent {
        Ok(hash) => {
            if !cached {
                ctx.hashes.remember(opened, opened_at, algorithm, &hash);
            }
            conn.write_message(&Message::GetEnd(GetEnd { hash }))
                .await?;
            Ok(())
        }
        Err(TransferError::FileChanged) => Err(Refusal::new(
            ErrorCode::Io,
            format!("'{path}' changed while it was being sent; try again"),
        )
        .into()),
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
