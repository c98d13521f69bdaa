//! What the protocol used to leave unsaid: a put that sends the wrong number of bytes, and exec
//! input that was still in flight when the command ended.

mod common;

use common::{TestServer, WAIT, config_with_user};
use ferry::client::Client;
use ferry::connection::{BoxedStream, Connection};
use ferry::protocol::{ErrorCode, HashAlgorithm, Message};
use ferry::protocol::{
    Exec, ExecResize, Get, GetEnd, GetReady, Ping, Pong, Put, PutEnd, PutStart, Refusal,
};

async fn session(server: &TestServer, token: &str) -> Connection<BoxedStream> {
    Client::connect(&server.options(Some(token.parse().unwrap())))
        .await
        .unwrap()
        .into_connection()
}

async fn start_put(conn: &mut Connection<BoxedStream>, path: &str, size: u64) {
    conn.write_message(&Message::Put(Put {
        path: path.into(),
        size,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: false,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: false,
    }))
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::PutReady(_)
    ));
    conn.write_message(&Message::PutStart(PutStart {
        offset: 0,
        delta: false,
    }))
    .await
    .unwrap();
}

/// The answer the server gives before it closes: an `error`, then the end of the stream.
async fn last_answer(conn: &mut Connection<BoxedStream>) -> (ErrorCode, String) {
    let answer = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .expect("an error frame before the close");
    let Message::Error(Refusal { code, message, .. }) = answer else {
        panic!("expected an error, got {answer:?}");
    };
    assert!(
        tokio::time::timeout(WAIT, conn.read_message())
            .await
            .unwrap()
            .is_err()
    );
    (code, message)
}

#[tokio::test]
async fn a_put_with_more_or_fewer_bytes_than_announced_is_answered_before_the_close() {
    let (config, token) = config_with_user("w", "read,write");
    let server = TestServer::start(config).await;
    let token = token.to_string();
    let root = server.dir.path().join("root");

    let mut conn = session(&server, &token).await;
    start_put(&mut conn, "more", 10).await;
    conn.write_data(0, &[1u8; 20]).await.unwrap();
    conn.flush().await.unwrap();
    let (code, message) = last_answer(&mut conn).await;
    assert_eq!(code, ErrorCode::BadMessage, "{message}");
    assert!(
        message.contains("20 bytes arrived where 10 were left"),
        "{message}"
    );
    assert!(!root.join("more").exists());

    let mut conn = session(&server, &token).await;
    start_put(&mut conn, "fewer", 10).await;
    conn.write_data(0, &[1u8; 4]).await.unwrap();
    conn.write_message(&Message::PutEnd(PutEnd { hash: "00".into() }))
        .await
        .unwrap();
    let (code, message) = last_answer(&mut conn).await;
    assert_eq!(code, ErrorCode::BadMessage, "{message}");
    assert!(
        message.contains("'put_end' arrived after 4 of the 10"),
        "{message}"
    );
    assert!(!root.join("fewer").exists());
    server.stop().await;
}

#[tokio::test]
async fn exec_input_in_flight_when_the_command_ends_is_dropped_quietly() {
    let (config, token) = config_with_user("x", "exec");
    let server = TestServer::start(config).await;
    let mut conn = session(&server, &token.to_string()).await;
    conn.write_message(&Message::Exec(Exec {
        argv: vec!["true".into()],
        shell: false,
        tty: None,
        timeout_ms: None,
    }))
    .await
    .unwrap();
    loop {
        match conn.read_frame().await.unwrap().unwrap() {
            ferry::protocol::Frame::Message(body) => {
                if let Message::ExecExit(_) = Message::parse(&body).unwrap() {
                    break;
                }
            }
            ferry::protocol::Frame::Data { .. } => {}
        }
    }
    // Typed, resized and closed just before the client saw exec_exit:
    conn.write_data(0, b"late keystrokes").await.unwrap();
    conn.write_message(&Message::ExecResize(ExecResize {
        rows: 40,
        cols: 100,
    }))
    .await
    .unwrap();
    conn.write_message(&Message::ExecEof).await.unwrap();
    conn.write_message(&Message::Ping(Ping { seq: 7 }))
        .await
        .unwrap();
    let next = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next,
        Message::Pong(Pong { seq: 7 }),
        "the next answer comes first, not an error"
    );
    server.stop().await;
}

#[tokio::test]
async fn removing_a_directory_that_holds_something_is_not_empty() {
    let (config, token) = config_with_user("w", "read,write");
    let server = TestServer::start(config).await;
    std::fs::create_dir(server.dir.path().join("root/d")).unwrap();
    std::fs::write(server.dir.path().join("root/d/f"), b"x").unwrap();
    let mut conn = session(&server, &token.to_string()).await;
    let err = ferry::client::files::remove(&mut conn, "d")
        .await
        .unwrap_err();
    assert_eq!(
        common::refusal_code(&err),
        Some(ErrorCode::NotEmpty),
        "{err}"
    );
    assert!(server.dir.path().join("root/d/f").exists());
    server.stop().await;
}

/// The `offset` a `get_ready` answers for each kind of resume request (PROTOCOL.md 5.6).
#[tokio::test]
async fn a_get_resumes_only_after_a_matching_prefix_within_the_file() {
    let (config, token) = config_with_user("r", "read");
    let server = TestServer::start(config).await;
    let data = common::pattern(1000, 3);
    std::fs::write(server.dir.path().join("root/f"), &data).unwrap();
    let sha = |bytes: &[u8]| {
        ferry::protocol::hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    };
    let cases = [
        (400, None, 0),                      // an offset without prefix_hash: from the start
        (400, Some(sha(&data[..400])), 400), // a matching prefix: resumed
        (400, Some(sha(b"other")), 0),       // a prefix that does not match: from the start
        (2000, Some(sha(&data)), 0),         // beyond the end: from the start
        (1000, Some(sha(&data)), 1000),      // the whole file: nothing left to send
    ];
    for (offset, prefix_hash, expected) in cases {
        let mut conn = session(&server, &token.to_string()).await;
        conn.write_message(&Message::Get(Get {
            path: "f".into(),
            hash: HashAlgorithm::Sha256,
            offset,
            prefix_hash,
            base: None,
            signing: None,
            compress: false,
        }))
        .await
        .unwrap();
        let Message::GetReady(GetReady {
            offset: answered,
            size,
            ..
        }) = conn.read_message().await.unwrap()
        else {
            panic!("no get_ready");
        };
        assert_eq!((answered, size), (expected, 1000), "asked {offset}");
        let mut received = 0u64;
        loop {
            match conn.read_frame().await.unwrap().unwrap() {
                ferry::protocol::Frame::Data { payload, .. } => received += payload.len() as u64,
                ferry::protocol::Frame::Message(body) => {
                    let Message::GetEnd(GetEnd { hash }) = Message::parse(&body).unwrap() else {
                        panic!("expected get_end");
                    };
                    assert_eq!(hash, sha(&data));
                    break;
                }
            }
        }
        assert_eq!(received, 1000 - expected);
    }
    server.stop().await;
}
