//! Gets that need no partial: one into a writer (stdout, a pipe), and a tree's small files,
//! asked for ahead and received into memory.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Progress, Transfer, transfer_error};
use crate::client::ClientError;
use crate::client::error::unexpected;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{Frame, Get, GetEnd, HashAlgorithm, Message};
use crate::transfer::chunks;
use crate::transfer::hashing::Hasher;

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
    ask_whole_get(conn, remote, algorithm).await?;
    let size = match conn.read_message().await? {
        Message::GetReady(ready) if ready.offset == 0 => ready.size,
        other => return Err(unexpected(other)),
    };
    progress.begin(remote, size, 0);
    let received = chunks::receive_file(
        conn,
        writer,
        size,
        Hasher::new(algorithm),
        false,
        &mut |n| progress.advance(n),
    )
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
        matched: 0,
        hash: ours,
        algorithm,
    })
}

/// The most a [`receive_small_get`] holds in memory: a file listed small that grew past this
/// before it was sent is refused rather than buffered.
pub const SMALL_GET_CAP: u64 = 16 << 20;

/// A file received whole into memory and verified.
pub struct SmallGet {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The server's mode and mtime for it.
    pub mode: u32,
    #[allow(missing_docs)]
    pub mtime_ns: i64,
}

/// Sends a `get` of the whole of `remote` with no partial behind it: for a stream, or for a
/// file known to be small, whose answer [`receive_small_get`] reads into memory (a tree's small
/// files then cost no trip to a blocking thread each, and there is nothing to resume).
///
/// # Errors
/// A broken connection.
pub async fn ask_whole_get<S>(
    conn: &mut Connection<S>,
    remote: &str,
    algorithm: HashAlgorithm,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Get(Get {
        path: remote.to_string(),
        hash: algorithm,
        offset: 0,
        prefix_hash: None,
        base: None,
        signing: None,
        compress: false,
    }))
    .await?;
    Ok(())
}

/// Reads the answer to an [`ask_whole_get`] into memory and verifies it.
///
/// # Errors
/// The server's refusal, a hash mismatch, a file larger than [`SMALL_GET_CAP`], a broken
/// connection.
pub async fn receive_small_get<S>(
    conn: &mut Connection<S>,
    remote: &str,
    algorithm: HashAlgorithm,
    progress: &mut dyn Progress,
) -> Result<(Transfer, SmallGet), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ready = match conn.read_message().await? {
        Message::GetReady(ready) if ready.offset == 0 => ready,
        other => return Err(unexpected(other)),
    };
    if ready.size > SMALL_GET_CAP {
        return Err(ClientError::Protocol(format!(
            "{remote} grew to {} bytes after it was listed; run the copy again",
            ready.size
        )));
    }
    progress.begin(remote, ready.size, 0);
    let mut bytes = Vec::with_capacity(usize::try_from(ready.size).unwrap_or(0));
    let mut hasher = Hasher::new(algorithm);
    while (bytes.len() as u64) < ready.size {
        let payload = match conn.read_frame().await? {
            Some(Frame::Data {
                channel: 0,
                payload,
            }) if (bytes.len() + payload.len()) as u64 <= ready.size => payload,
            Some(Frame::Message(body)) => {
                return Err(unexpected(
                    Message::parse(&body).map_err(|e| ClientError::Protocol(e.to_string()))?,
                ));
            }
            None => return Err(ConnectionError::Closed.into()),
            Some(_) => {
                return Err(ClientError::Protocol(format!(
                    "{remote}: data out of step with the {} bytes announced",
                    ready.size
                )));
            }
        };
        hasher.update(&payload);
        bytes.extend_from_slice(&payload);
        progress.advance(payload.len() as u64);
    }
    progress.end();
    let ours = hasher.finish_hex();
    let theirs = match conn.read_message().await? {
        Message::GetEnd(GetEnd { hash }) => hash,
        other => return Err(unexpected(other)),
    };
    if ours != theirs {
        return Err(ClientError::Integrity(format!(
            "{remote} arrived corrupted ({} {ours}, server said {theirs}); nothing was kept",
            algorithm.name()
        )));
    }
    Ok((
        Transfer {
            size: ready.size,
            resumed_from: 0,
            matched: 0,
            hash: ours,
            algorithm,
        },
        SmallGet {
            bytes,
            mode: ready.mode,
            mtime_ns: ready.mtime_ns,
        },
    ))
}
