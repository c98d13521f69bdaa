//! Unit tests of `connection`.
use super::*;
use crate::protocol::Ping;
use bytes::Bytes;
use tokio::io::duplex;

#[tokio::test]
async fn the_read_buffer_shrinks_back_after_a_large_frame() {
    let (a, b) = duplex(64 * 1024);
    let mut writer = FrameWriter::new(a, DEFAULT_MAX_FRAME);
    let mut reader = FrameReader::new(b, DEFAULT_MAX_FRAME);
    let big = vec![7u8; 1 << 20];
    let sender = tokio::spawn(async move {
        writer.write_data(0, &big).await.unwrap();
        writer.flush().await.unwrap();
        writer
    });
    let frame = reader.read_frame().await.unwrap().unwrap();
    assert!(matches!(&frame, Frame::Data { payload, .. } if payload.len() == 1 << 20));
    drop(frame);
    let mut writer = sender.await.unwrap();
    writer
        .write_message(&Message::Ping(Ping { seq: 2 }))
        .await
        .unwrap();
    assert_eq!(
        reader.read_message().await.unwrap(),
        Message::Ping(Ping { seq: 2 })
    );
    assert!(
        reader.buffer_capacity() <= SHRINK_ABOVE,
        "an idle reader still holds {} bytes",
        reader.buffer_capacity()
    );
}

#[tokio::test]
async fn messages_and_data_cross_a_tiny_pipe_intact() {
    // A 7-byte pipe forces every frame to arrive in pieces.
    let (a, b) = duplex(7);
    let mut left = Connection::new(a);
    let mut right = Connection::new(b);
    let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        left.write_message(&Message::Ping(Ping { seq: 1 }))
            .await
            .unwrap();
        left.write_data(1, &sent).await.unwrap();
        left.shutdown().await.unwrap();
    });
    assert_eq!(
        right.read_message().await.unwrap(),
        Message::Ping(Ping { seq: 1 })
    );
    assert_eq!(
        right.read_frame().await.unwrap(),
        Some(Frame::Data {
            channel: 1,
            payload: Bytes::from(payload)
        })
    );
    assert_eq!(right.read_frame().await.unwrap(), None);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_stream_ending_inside_a_frame_is_truncated_not_clean() {
    let (mut a, b) = duplex(64);
    let mut right = Connection::new(b);
    a.write_all(&[0, 0, 0, 10, 1, b'{']).await.unwrap();
    drop(a);
    assert!(matches!(
        right.read_frame().await,
        Err(ConnectionError::Truncated { buffered: 6 })
    ));
}

#[tokio::test]
async fn oversized_writes_are_refused_locally() {
    let (a, _b) = duplex(64);
    let mut left = Connection::new(a);
    left.set_peer_max_frame(100);
    let err = left.write_data(0, &[0u8; 200]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// Records each write call; vectored, taking at most `cap` bytes a call (a socket's short
/// writes).
struct CallRecorder {
    calls: Vec<usize>,
    bytes: Vec<u8>,
    cap: usize,
}

impl AsyncWrite for CallRecorder {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(this.cap - taken);
            this.bytes.extend_from_slice(&buf[..n]);
            taken += n;
        }
        this.calls.push(taken);
        std::task::Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Over a vectored stream (TLS), a data frame's header and payload go out in one write — they
/// share TLS records — and a short write resumes exactly where it stopped.
#[tokio::test]
async fn a_data_frame_is_one_vectored_write_and_survives_short_writes() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut whole = FrameWriter::new(
        CallRecorder {
            calls: Vec::new(),
            bytes: Vec::new(),
            cap: usize::MAX,
        },
        DEFAULT_MAX_FRAME,
    );
    whole.write_data(3, &payload).await.unwrap();
    assert_eq!(whole.inner.calls, vec![DATA_HEADER_LEN + payload.len()]);

    let mut short = FrameWriter::new(
        CallRecorder {
            calls: Vec::new(),
            bytes: Vec::new(),
            cap: 4,
        },
        DEFAULT_MAX_FRAME,
    );
    short.write_data(3, &payload).await.unwrap();
    assert_eq!(short.inner.bytes, whole.inner.bytes);
    let mut reader = FrameReader::new(&whole.inner.bytes[..], DEFAULT_MAX_FRAME);
    match reader.read_frame().await.unwrap() {
        Some(Frame::Data {
            channel: 3,
            payload: got,
        }) => assert_eq!(&got[..], &payload[..]),
        other => panic!("{other:?}"),
    }
}
