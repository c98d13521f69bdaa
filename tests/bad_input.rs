//! Bad input from the network: each gets a clear error or a clean close, and the server goes on
//! serving everyone else.

mod common;

use common::{ServerProcess, TestServer, WAIT, raw_plaintext, raw_session, read_to_close};
use ferry::config::ServerConfig;
use ferry::protocol::frame::{self, Frame};
use ferry::protocol::{ErrorCode, Message};
use ferry::protocol::{Ping, Pong, Refusal};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The error message at the start of `bytes` (one message frame), if any.
fn first_error(bytes: &[u8]) -> Option<(ErrorCode, String)> {
    let mut buf = bytes::BytesMut::from(bytes);
    match frame::decode(&mut buf, frame::DEFAULT_MAX_FRAME) {
        Ok(Some(Frame::Message(body))) => match Message::parse(&body) {
            Ok(Message::Error(Refusal { code, message, .. })) => Some((code, message)),
            _ => None,
        },
        _ => None,
    }
}

async fn assert_still_serving(server: &TestServer) {
    let mut client = server.client(None).await;
    client.ping(1).await.expect("server still answers pings");
}

#[tokio::test]
async fn garbage_instead_of_a_preamble_gets_an_error_and_a_close() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut tcp).await;
    assert_eq!(&reply[..8], b"FERRY\x01E\x00");
    let (code, message) = first_error(&reply[8..]).expect("an error frame");
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(message.contains("not a ferry client"), "{message}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn garbage_after_the_handshake_gets_an_error_and_a_close() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let conn = raw_session(server.addr).await;
    let mut tcp = conn_into_tcp(conn);
    // Length 2, kind 0x7f: a well-sized frame of an unknown kind.
    tcp.write_all(&[0, 0, 0, 2, 0x7f, 0]).await.unwrap();
    let reply = read_to_close(&mut tcp).await;
    let (code, message) = first_error(&reply).expect("an error frame");
    assert_eq!(code, ErrorCode::BadFrame);
    assert!(message.contains("unknown frame kind 0x7f"), "{message}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_at_once() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut tcp = conn_into_tcp(raw_session(server.addr).await);
    tcp.write_all(&[0xff, 0xff, 0xff, 0xff, 0x02, 0x00])
        .await
        .unwrap();
    // No more bytes are sent: if the server waited for the frame, this would time out.
    let reply = read_to_close(&mut tcp).await;
    let (code, message) = first_error(&reply).expect("an error frame");
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains("4294967295"), "{message}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_leaves_server_memory_flat() {
    let server = ServerProcess::start(&["--plaintext"]);
    let warm = conn_into_tcp(raw_session(server.addr).await);
    drop(warm);
    let before = server.status_kib("VmHWM");
    for _ in 0..8 {
        let mut tcp = conn_into_tcp(raw_session(server.addr).await);
        tcp.write_all(&[0xff, 0xff, 0xff, 0xff, 0x02, 0x00])
            .await
            .unwrap();
        // Keep sending as if the 4 GiB were coming; the server must not buffer it.
        let junk = vec![0u8; 1 << 20];
        for _ in 0..16 {
            if tcp.write_all(&junk).await.is_err() {
                break;
            }
        }
        let reply = read_to_close(&mut tcp).await;
        if !reply.is_empty() {
            assert_eq!(first_error(&reply).unwrap().0, ErrorCode::FrameTooLarge);
        }
    }
    let after = server.status_kib("VmHWM");
    assert!(
        after < before + 8 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn unknown_and_malformed_messages_get_errors_and_the_session_goes_on() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut conn = raw_session(server.addr).await;
    let mut tcp_frames: Vec<(Vec<u8>, ErrorCode)> = vec![
        (
            br#"{"type":"teleport","to":"mars"}"#.to_vec(),
            ErrorCode::UnknownMessage,
        ),
        (
            br#"{"type":"ping","seq":"one"}"#.to_vec(),
            ErrorCode::BadMessage,
        ),
        (b"not json at all".to_vec(), ErrorCode::BadMessage),
        (br#"{"no_type":1}"#.to_vec(), ErrorCode::BadMessage),
        (
            br#"{"type":"pong","seq":1}"#.to_vec(),
            ErrorCode::UnexpectedMessage,
        ),
    ];
    for (body, expected) in tcp_frames.drain(..) {
        let wire = frame::encode(&Frame::Message(body.into()));
        send_raw(&mut conn, &wire).await;
        match conn.read_message().await.unwrap() {
            Message::Error(Refusal { code, .. }) => assert_eq!(code, expected),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    conn.write_data(0, b"stray bytes").await.unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Error(Refusal {
            code: ErrorCode::UnexpectedMessage,
            ..
        })
    ));
    conn.write_message(&Message::Ping(Ping { seq: 9 }))
        .await
        .unwrap();
    assert_eq!(
        conn.read_message().await.unwrap(),
        Message::Pong(Pong { seq: 9 })
    );
}

#[tokio::test]
async fn a_client_vanishing_mid_frame_is_cleaned_up() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut tcp = conn_into_tcp(raw_session(server.addr).await);
    server.wait_for_active(1).await;
    // Announce 100 bytes, send 10, vanish.
    tcp.write_all(&[0, 0, 0, 100, 0x01]).await.unwrap();
    tcp.write_all(b"{\"type\":\"p").await.unwrap();
    drop(tcp);
    server.wait_for_active(0).await;
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_client_vanishing_mid_tls_handshake_is_cleaned_up() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"FERRY\x01T\x00\x16\x03\x01\x02\x00")
        .await
        .unwrap();
    server.wait_for_active(1).await;
    drop(tcp);
    server.wait_for_active(0).await;
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn hello_must_come_first() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut conn = raw_plaintext(server.addr).await;
    conn.write_message(&Message::Ping(Ping { seq: 1 }))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .unwrap()
    {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::UnexpectedMessage);
            assert!(message.contains("expected 'hello'"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

async fn send_raw(conn: &mut ferry::connection::Connection<TcpStream>, wire: &[u8]) {
    // The raw bytes go through the same stream the Connection reads from.
    conn_stream(conn).write_all(wire).await.unwrap();
}

fn conn_stream(conn: &mut ferry::connection::Connection<TcpStream>) -> &mut TcpStream {
    conn.get_mut()
}

fn conn_into_tcp(conn: ferry::connection::Connection<TcpStream>) -> TcpStream {
    conn.into_inner()
}

/// A resume is no CPU amplifier: gets offering `offset = size - 1` with a made-up prefix hash
/// make the server hash at most its per-address budget, not a file's worth each; past it the
/// offers are not checked and the gets start from the beginning (still correct).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_resume_offers_cannot_make_the_server_hash_without_bound() {
    let server = TestServer::start_plaintext(ferry::config::ServerConfig::default()).await;
    let size: u64 = 256 << 20;
    let file = std::fs::File::create(server.dir.path().join("root/big")).unwrap();
    file.set_len(size).unwrap();
    let asks = 12u64;
    let started = std::time::Instant::now();
    for _ in 0..asks {
        let mut conn = server.client(None).await.into_connection();
        conn.write_message(&ferry::protocol::Message::Get(ferry::protocol::Get {
            path: "big".into(),
            hash: Default::default(),
            offset: size - 1,
            prefix_hash: Some("0".repeat(64)),
            base: None,
            signing: None,
            compress: false,
        }))
        .await
        .unwrap();
        match conn.read_message().await.unwrap() {
            ferry::protocol::Message::GetReady(ready) => assert_eq!(ready.offset, 0),
            other => panic!("{other:?}"),
        }
        // Gone without reading the file, as an attacker would.
    }
    let hashed = server.state.resume_budget.hashed();
    let allowed = (1u64 << 30) + (64 << 20) * (started.elapsed().as_secs() + 1);
    assert!(
        hashed <= allowed,
        "{} MiB hashed for {asks} made-up offers (at most {} MiB allowed)",
        hashed >> 20,
        allowed >> 20
    );
    assert!(hashed < asks * size, "every offer was hashed");
    assert_still_serving(&server).await;
}
