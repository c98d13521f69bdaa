//! `get`: sends a regular file, resuming after a prefix the client proves it holds.

use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::Connection;
use crate::protocol::{ErrorCode, Get, GetEnd, GetReady, Message, Permission, Refusal};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::chunks::{self, CHUNK, SendHash, TransferError};
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::hashing::Hasher;
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
    let opened_at = SystemTime::now();
    let (algorithm, offset, prefix_hash) = (request.hash, request.offset, request.prefix_hash);
    // One trip to a blocking thread for the opening and the resume decision: a tree's many
    // small files each pay for every trip.
    let (file, meta, start, hasher, small) = off_runtime(move || {
        let (mut file, meta) = sandbox.open_regular(&wanted)?;
        let (start, hasher) = resume::start_after_offer(
            &mut file,
            algorithm,
            meta.len(),
            offset,
            prefix_hash.as_deref(),
        );
        // A small file is read and hashed in this same trip, and checked for a change after.
        let small = (meta.len() - start <= SMALL_FILE)
            .then(|| read_small(&file, &meta, start, hasher.clone()));
        Ok::<_, Refusal>((file, meta, start, hasher, small))
    })
    .await??;
    let opened = Fingerprint::of(&meta);
    let size = meta.len();
    let ready = GetReady {
        size,
        mode: meta.mode() & 0o7777,
        mtime_ns: crate::transfer::metadata::mtime_ns(&meta),
        offset: start,
    };
    if let Some(small) = small {
        let (bytes, hash) = small.map_err(|e| match e {
            TransferError::FileChanged => changed(&path),
            e => Refusal::new(ErrorCode::Io, format!("reading '{path}': {e}")),
        })?;
        // The whole answer in one write: a tree's many small files each pay for every write.
        let mut batch = conn.batch();
        batch.message(&Message::GetReady(ready))?;
        if !bytes.is_empty() {
            batch.data(0, &bytes)?;
        }
        batch.message(&Message::GetEnd(GetEnd { hash }))?;
        conn.write_batch(batch).await?;
        return Ok(());
    }
    conn.write_message(&Message::GetReady(ready)).await?;
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
        Err(TransferError::FileChanged) => Err(changed(&path).into()),
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

/// Files whose bytes to send are at most this many are read whole in the trip that opens them
/// and answered with one write.
pub const SMALL_FILE: u64 = 64 * 1024;

fn changed(path: &str) -> Refusal {
    Refusal::new(
        ErrorCode::Io,
        format!("'{path}' changed while it was being sent; try again"),
    )
}

/// Reads bytes `start..` of a small file and the whole file's hash (`hasher` has seen the
/// bytes before `start`), then checks that it did not change meanwhile.
fn read_small(
    file: &std::fs::File,
    opened: &std::fs::Metadata,
    start: u64,
    mut hasher: Hasher,
) -> Result<(Vec<u8>, String), TransferError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(opened.len() - start).unwrap_or(0)];
    file.read_exact_at(&mut bytes, start).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TransferError::FileChanged
        } else {
            TransferError::Local(e)
        }
    })?;
    hasher.update(&bytes);
    let now = file.metadata().map_err(TransferError::Local)?;
    if Fingerprint::of(&now) != Fingerprint::of(opened) {
        return Err(TransferError::FileChanged);
    }
    Ok((bytes, hasher.finish_hex()))
}
