//! A signature on the wire: announced by a [`DeltaBase`] in a message, its entries then follow
//! as data frames on channel 0.

use std::fs::File;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};

use super::signature::check_base;
use super::{ENTRY_BYTES, RemoteSignature, Signature, average_for, valid_average};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ChunkHashing, DeltaBase, Frame, Message};
use crate::transfer::chunks::TransferError;
use crate::transfer::hash_cache::{Fingerprint, HashCache};

/// Sends a signature's entries (the message announcing it was sent just before).
///
/// # Errors
/// Connection errors.
pub async fn write_signature<S>(
    conn: &mut Connection<S>,
    signature: &Signature,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bytes = signature.encode();
    let frame = conn.max_data_payload() / ENTRY_BYTES * ENTRY_BYTES;
    for piece in bytes.chunks(frame.max(ENTRY_BYTES)) {
        conn.write_data(0, piece).await?;
    }
    Ok(())
}

/// Reads the entries `base` announced. A base that cannot be a signature is refused before
/// anything is read.
///
/// # Errors
/// [`TransferError::Protocol`] for a signature that is not one (the stream is then out of
/// step), the peer's error, connection errors.
pub async fn read_signature<S>(
    conn: &mut Connection<S>,
    base: &DeltaBase,
) -> Result<RemoteSignature, TransferError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    check_base(base).map_err(TransferError::Protocol)?;
    let expected = usize::try_from(base.chunks)
        .ok()
        .and_then(|n| n.checked_mul(ENTRY_BYTES))
        .ok_or_else(|| TransferError::Protocol("a signature too large".into()))?;
    let mut bytes = Vec::with_capacity(expected.min(1 << 24));
    while bytes.len() < expected {
        match conn.read_frame().await? {
            Some(Frame::Data {
                channel: 0,
                payload,
            }) if bytes.len() + payload.len() <= expected => bytes.extend_from_slice(&payload),
            Some(Frame::Message(body)) => {
                return Err(match Message::parse(&body) {
                    Ok(Message::Error(refusal)) => TransferError::Peer(refusal),
                    _ => TransferError::Protocol(format!(
                        "a message arrived after {} of a signature's {expected} bytes",
                        bytes.len()
                    )),
                });
            }
            Some(Frame::Data { .. }) => {
                return Err(TransferError::Protocol(format!(
                    "a signature of {expected} bytes arrived longer, or on another channel"
                )));
            }
            None => return Err(ConnectionError::Closed.into()),
        }
    }
    RemoteSignature::decode(base, &bytes).map_err(TransferError::Protocol)
}

/// The signature of an open base file at average `avg` (the peer's choice when it named a valid
/// one, else this side's for the base's size), its chunks hashed as `hashing` says: kept from
/// an earlier transfer if this very version was signed that way before, else computed (and kept, when it did not change
/// while read). Its fingerprint comes with it. Runs on a blocking thread.
///
/// # Errors
/// Read errors; [`TransferError::FileChanged`] when it changed while it was read.
pub fn sign_base(
    file: &File,
    cache: &HashCache,
    avg: Option<u32>,
    hashing: ChunkHashing,
) -> Result<(Fingerprint, Signature), TransferError> {
    let meta = file.metadata().map_err(TransferError::Local)?;
    let fingerprint = Fingerprint::of(&meta);
    let avg = average_to_sign_at(avg, meta.len());
    if let Some(signature) = cache
        .signature(fingerprint)
        .filter(|kept| kept.avg == avg && kept.hashing == hashing)
    {
        return Ok((fingerprint, signature));
    }
    let started = SystemTime::now();
    let signature = match Signature::compute_at(file, meta.len(), avg, hashing) {
        Ok(signature) => signature,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(TransferError::FileChanged);
        }
        Err(e) => return Err(TransferError::Local(e)),
    };
    let after = file.metadata().map_err(TransferError::Local)?;
    if Fingerprint::of(&after) != fingerprint {
        return Err(TransferError::FileChanged);
    }
    if signature.chunks.len() as u64 > super::MAX_CHUNKS {
        // More than a peer takes (a base of several TB): that file goes whole.
        return Err(TransferError::Protocol(
            "a base too large for a delta".into(),
        ));
    }
    cache.remember_signature(fingerprint, started, &signature);
    Ok((fingerprint, signature))
}

/// The average a base of `size` bytes is signed at: the peer's `asked` one only if it is valid
/// and the chunks it could make stay within what a signature may hold (a tiny average for a
/// huge base would have this side hold millions of entries); else this side's own choice.
pub fn average_to_sign_at(asked: Option<u32>, size: u64) -> u32 {
    asked
        .filter(|avg| valid_average(*avg) && size / u64::from(avg / 4) < super::MAX_CHUNKS)
        .unwrap_or_else(|| average_for(size))
}

/// An opened file as a delta's base, with its signature: only a regular file of at least
/// [`super::DELTA_MIN`] bytes that can be signed; anything else means no delta (the transfer
/// goes whole). Both ends open the file their own way (the server beneath its root, never
/// through a link) and hand it here, with the average the sender asked for if it did and how
/// the chunks are hashed. Runs on a blocking thread.
pub fn base_of(
    file: File,
    cache: &HashCache,
    avg: Option<u32>,
    hashing: ChunkHashing,
) -> Option<(super::receive::Base, Signature)> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < super::DELTA_MIN {
        return None;
    }
    let (fingerprint, signature) = sign_base(&file, cache, avg, hashing).ok()?;
    Some((
        super::receive::Base::new(file, fingerprint, &signature),
        signature,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_average_is_taken_only_while_the_signature_stays_bounded() {
        assert_eq!(average_to_sign_at(Some(4096), 1 << 30), 4096);
        assert_eq!(average_to_sign_at(Some(1 << 20), 1 << 20), 1 << 20);
        // Not a power of two, or none asked: this side's choice.
        assert_eq!(
            average_to_sign_at(Some(5000), 1 << 30),
            average_for(1 << 30)
        );
        assert_eq!(average_to_sign_at(None, 1 << 30), average_for(1 << 30));
        // 1 KiB chunks (256 bytes at least) of a 1 TiB base: billions of entries. Refused.
        assert_eq!(
            average_to_sign_at(Some(1024), 1 << 40),
            average_for(1 << 40)
        );
        assert_eq!(
            average_to_sign_at(Some(1024), 512 << 20),
            average_for(512 << 20)
        );
        assert_eq!(average_to_sign_at(Some(1024), (512 << 20) - 1), 1024);
    }
}
