//! Frame decoding from arbitrary bytes fed in arbitrary pieces: never panics, never reserves
//! past the limit, and whatever decodes re-encodes to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use ferry::protocol::frame::{self, Frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    let mut buf = BytesMut::new();
    let mut consumed = Vec::new();
    for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match frame::decode(&mut buf, MAX) {
                Ok(Some(frame)) => {
                    assert!(
                        buf.capacity() <= MAX + 4 + rest.len(),
                        "reserved past the limit"
                    );
                    consumed.extend(frame::encode(&frame));
                    if let Frame::Message(body) = &frame {
                        let _ = ferry::protocol::Message::parse(body);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(
        &rest[..consumed.len()],
        &consumed[..],
        "decode/encode round trip"
    );
});
