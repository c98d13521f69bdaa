//! The WebSocket byte stream (`WsStream`) under ferry's frame reader, fed arbitrary messages:
//! binary ones cut anywhere, pings, text and closes in any order. Never a panic, never a frame
//! past the limit; what decodes is what the frame codec alone decodes from the same bytes.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use ferry::connection::Connection;
use ferry::connection::ws_stream::{Incoming, WsMessage, WsStream};
use ferry::protocol::frame::{self, DEFAULT_MAX_FRAME};
use futures_util::{Sink, Stream};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
enum Msg {
    Binary(Bytes),
    Ping,
    Text,
    Close,
}

impl WsMessage for Msg {
    fn binary(frame: Bytes) -> Self {
        Msg::Binary(frame)
    }
    fn into_incoming(self) -> Incoming {
        match self {
            Msg::Binary(b) => Incoming::Binary(b),
            Msg::Ping => Incoming::Control,
            Msg::Text => Incoming::Text,
            Msg::Close => Incoming::Close,
        }
    }
}

/// A socket that hands out the fuzzer's messages and takes whatever is sent.
struct Fake(std::vec::IntoIter<Msg>);

impl Stream for Fake {
    type Item = Result<Msg, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next().map(Ok))
    }
}

impl Sink<Msg> for Fake {
    type Error = std::io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Msg) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    // Each byte of a short header chooses the next message; binary ones take the next cut of
    // the rest.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let kinds = &rest[..rest.len().min(usize::from(count % 16))];
    let mut body = &rest[kinds.len()..];
    let mut messages = Vec::new();
    let mut binary = Vec::new();
    for &kind in kinds {
        match kind % 8 {
            0 => messages.push(Msg::Ping),
            1 => messages.push(Msg::Text),
            2 => messages.push(Msg::Close),
            _ => {
                let take = body.len().min(usize::from(kind));
                binary.extend_from_slice(&body[..take]);
                messages.push(Msg::Binary(Bytes::copy_from_slice(&body[..take])));
                body = &body[take..];
            }
        }
    }
    messages.push(Msg::Binary(Bytes::copy_from_slice(body)));
    binary.extend_from_slice(body);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got = runtime.block_on(async {
        let mut conn = Connection::new(WsStream::new(Fake(messages.into_iter())));
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = conn.read_frame().await {
            frames.push(frame);
        }
        frames
    });
    // A stream with no text or close in it carries exactly the bytes of its binary messages.
    let mut buf = BytesMut::from(&binary[..]);
    let mut expected = Vec::new();
    while let Ok(Some(frame)) = frame::decode(&mut buf, DEFAULT_MAX_FRAME) {
        expected.push(frame);
    }
    assert!(got.len() <= expected.len());
    assert_eq!(got[..], expected[..got.len()]);
});
