//! Frames: the length-prefixed unit every byte on a ferry connection travels in.
//!
//! This module is pure — no I/O, no async — so it can be property-tested and fuzzed on its own.
//! It is the fix for the seed's "sticky packet" (粘包) problem: a TCP read may return half a
//! frame or several frames at once, and [`decode`] handles both as the normal case.
//!
//! # Format
//!
//! ```text
//! +-------------------+-----------+------------------------------+
//! | length: u32, BE   | kind: u8  | body: length - 1 bytes       |
//! +-------------------+-----------+------------------------------+
//! kind 0x01  Message  body = one JSON object, UTF-8
//! kind 0x02  Data     body = channel: u8, then raw bytes
//! ```
//!
//! `length` counts the bytes after itself (kind and body), so it is at least 1 (2 for data).
//! A reader refuses any `length` above its configured maximum *before* it reserves memory.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes before the body of any frame: the length prefix and the kind byte.
pub const HEADER_LEN: usize = 5;
/// Bytes before the payload of a data frame: the header and the channel byte.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 1;
/// Kind byte of a control message frame.
pub const KIND_MESSAGE: u8 = 0x01;
/// Kind byte of a raw data frame.
pub const KIND_DATA: u8 = 0x02;
/// The smallest maximum a peer may configure; every control message fits in it.
pub const MIN_MAX_FRAME: usize = 64 * 1024;
/// Default maximum frame length: room for 1 MiB of bulk data plus the header.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024 + 64;

/// One decoded frame. The bodies are zero-copy slices of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A control message: the JSON text, not yet parsed (see `protocol::message`).
    Message(Bytes),
    /// Bulk bytes on a numbered channel (0 = main stream, 1 = error stream).
    /// Raw bytes on a channel (0 stdout or file data, 1 stderr).
    Data {
        /// Which stream the bytes belong to.
        channel: u8,
        /// The bytes.
        payload: Bytes,
    },
}

/// Why a byte stream is not a valid sequence of frames. Every variant is fatal for the
/// connection: after it the reader cannot know where the next frame starts.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("frame with length 0 (a frame has at least a kind byte)")]
    Empty,
    #[error("data frame without a channel byte")]
    DataWithoutChannel,
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
}

/// Decodes one frame from the front of `buf`, consuming it.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame; the caller reads more and calls
/// again. When the header announces a frame that fits under `max_len`, the buffer reserves room
/// for the rest, so the next read can fill it without reallocating repeatedly.
///
/// # Errors
/// Any [`FrameError`]; the length check happens before anything is allocated.
pub fn decode(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, FrameError> {
    let Some(len) = peek_len(buf, max_len)? else {
        return Ok(None);
    };
    // `len <= max_len`, so neither the addition nor the reservation can run away.
    let total = 4 + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut body = buf.split_to(len).freeze();
    let kind = body.get_u8();
    match kind {
        KIND_MESSAGE => Ok(Some(Frame::Message(body))),
        KIND_DATA => {
            if body.is_empty() {
                return Err(FrameError::DataWithoutChannel);
            }
            let channel = body.get_u8();
            Ok(Some(Frame::Data {
                channel,
                payload: body,
            }))
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

/// Reads and checks the length prefix without consuming anything.
fn peek_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if u64::from(len) > max_len as u64 {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: max_len,
        });
    }
    // A u32 always fits in usize on the 32- and 64-bit targets ferry supports.
    Ok(Some(len as usize))
}

/// The header of a message frame whose JSON body is `body_len` bytes.
///
/// # Errors
/// [`FrameError::TooLarge`] when the body cannot be described by a u32 length.
pub fn message_header(body_len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    let len = frame_len(body_len, 1)?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = KIND_MESSAGE;
    Ok(header)
}

/// The header of a data frame carrying `payload_len` bytes on `channel`.
///
/// # Errors
/// [`FrameError::TooLarge`] when the payload cannot be described by a u32 length.
pub fn data_header(channel: u8, payload_len: usize) -> Result<[u8; DATA_HEADER_LEN], FrameError> {
    let len = frame_len(payload_len, 2)?;
    let mut header = [0u8; DATA_HEADER_LEN];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = KIND_DATA;
    header[5] = channel;
    Ok(header)
}

fn frame_len(body_len: usize, overhead: usize) -> Result<u32, FrameError> {
    body_len
        .checked_add(overhead)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(FrameError::TooLarge {
            len: body_len as u64 + overhead as u64,
            max: u32::MAX as usize,
        })
}

/// Encodes a whole frame into one buffer (used by tests, fuzzers and small writes).
pub fn encode(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Message(body) => {
            let mut out = Vec::with_capacity(HEADER_LEN + body.len());
            out.extend_from_slice(&message_header(body.len()).expect("in-memory frame fits u32"));
            out.extend_from_slice(body);
            out
        }
        Frame::Data { channel, payload } => {
            let mut out = Vec::with_capacity(DATA_HEADER_LEN + payload.len());
            out.extend_from_slice(
                &data_header(*channel, payload.len()).expect("in-memory frame fits u32"),
            );
            out.extend_from_slice(payload);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = DEFAULT_MAX_FRAME;

    fn decode_all(buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = decode(buf, MAX).expect("valid stream") {
            out.push(frame);
        }
        out
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300)
                .prop_map(|b| Frame::Message(Bytes::from(b))),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
                |(channel, b)| Frame::Data {
                    channel,
                    payload: Bytes::from(b)
                }
            ),
        ]
    }

    proptest! {
        /// Sticky packets: any frames, concatenated into one buffer, decode to themselves.
        #[test]
        fn merged_frames_decode_to_the_same_frames(frames in proptest::collection::vec(arb_frame(), 0..20)) {
            let wire: Vec<u8> = frames.iter().flat_map(encode).collect();
            let mut buf = BytesMut::from(&wire[..]);
            prop_assert_eq!(decode_all(&mut buf), frames);
            prop_assert!(buf.is_empty());
        }

        /// Half packets: the same stream fed in arbitrary pieces decodes to the same frames.
        #[test]
        fn frames_split_anywhere_decode_to_the_same_frames(
            frames in proptest::collection::vec(arb_frame(), 1..10),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let wire: Vec<u8> = frames.iter().flat_map(encode).collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for pair in points.windows(2) {
                buf.extend_from_slice(&wire[pair[0]..pair[1]]);
                got.extend(decode_all(&mut buf));
            }
            prop_assert_eq!(got, frames);
        }

        /// Arbitrary bytes never panic the decoder; they decode, wait for more, or fail cleanly.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buf, MAX) {}
        }
    }

    /// Every single split point of a multi-frame stream, exhaustively (not sampled).
    #[test]
    fn every_byte_boundary_split_decodes_identically() {
        let frames = vec![
            Frame::Message(Bytes::from_static(br#"{"type":"ping","seq":1}"#)),
            Frame::Data {
                channel: 1,
                payload: Bytes::from_static(b"\x00\x01binary\xff"),
            },
            Frame::Data {
                channel: 0,
                payload: Bytes::new(),
            },
            Frame::Message(Bytes::from_static("{\"text\":\"我好\"}".as_bytes())),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(encode).collect();
        for a in 0..=wire.len() {
            for b in a..=wire.len() {
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for piece in [&wire[..a], &wire[a..b], &wire[b..]] {
                    buf.extend_from_slice(piece);
                    got.extend(decode_all(&mut buf));
                }
                assert_eq!(got, frames, "split at {a} and {b}");
            }
        }
    }

    #[test]
    fn huge_length_is_refused_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, KIND_DATA][..]);
        let capacity_before = buf.capacity();
        let err = decode(&mut buf, MAX).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX as u64,
                max: MAX
            }
        );
        assert_eq!(buf.capacity(), capacity_before, "nothing was reserved");
    }

    #[test]
    fn malformed_headers_are_errors() {
        let mut empty = BytesMut::from(&[0, 0, 0, 0][..]);
        assert_eq!(decode(&mut empty, MAX), Err(FrameError::Empty));
        let mut no_channel = BytesMut::from(&[0, 0, 0, 1, KIND_DATA][..]);
        assert_eq!(
            decode(&mut no_channel, MAX),
            Err(FrameError::DataWithoutChannel)
        );
        let mut unknown = BytesMut::from(&[0, 0, 0, 1, 0x7f][..]);
        assert_eq!(
            decode(&mut unknown, MAX),
            Err(FrameError::UnknownKind(0x7f))
        );
    }

    #[test]
    fn a_frame_exactly_at_the_maximum_is_accepted_and_one_above_is_not() {
        let payload = vec![7u8; 100 - 2];
        let wire = encode(&Frame::Data {
            channel: 0,
            payload: Bytes::from(payload.clone()),
        });
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            decode(&mut buf, 100),
            Ok(Some(Frame::Data { .. }))
        ));
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            decode(&mut buf, 99),
            Err(FrameError::TooLarge { len: 100, .. })
        ));
    }
}
