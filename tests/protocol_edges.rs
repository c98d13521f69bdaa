//! What the protocol used to leave unsaid: a put that sends the wrong number of bytes, and exec
//! input that was still in flight when the command ended.

mod common;

use common::{TestServer, WAIT, config_with_user};
use ferry::client::Client;
use ferry::connection::{BoxedStream, Connection};
use ferry::protocol::{ErrorCode, HashAlgorithm, Message};

async fn session(server: &TestServer, token: &str) -> Connection<BoxedStream> {
    Client::connect(&server.options(Some(token.parse().unwrap())))
        .await
        .unwrap()
        .into_connection()
}

async fn start_put(conn: &mut Connection<BoxedStream>, path: &str, size: u64) {
    conn.write_message(&Message::Put {
        path: path.into(),
        size,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
    })
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::PutReady { .. }
    ));
    conn.write_message(&Message::PutStart { offset: 0 })
        .await
        .unwrap();
}

/// The answer the server gives before it closes: an `error`, then the end of the stream.
async fn last_answer(conn: &mut Connection<BoxedStream>) -> (ErrorCode, String) {
    let answer = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .expect("an error frame before the close");
    let Message::Error { code, message, .. } = answer else {
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
    conn.write_message(&Message::PutEnd { hash: "00".into() })
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
    conn.write_message(&Message::Exec {
        argv: vec!["true".into()],
        shell: false,
        tty: None,
        timeout_ms: None,
    })
    .await
    .unwrap();
    loop {
        match conn.read_frame().await.unwrap().unwrap() {
            ferry::protocol::Frame::Message(body) => {
                if let Message::ExecExit { .. } = Message::parse(&body).unwrap() {
                    break;
                }
            }
            ferry::protocol::Frame::Data { .. } => {}
        }
    }
    // Typed, resized and closed just before the client saw exec_exit:
    conn.write_data(0, b"late keystrokes").await.unwrap();
    conn.write_message(&Message::ExecResize {
        rows: 40,
        cols: 100,
    })
    .await
    .unwrap();
    conn.write_message(&Message::ExecEof).await.unwrap();
    conn.write_message(&Message::Ping { seq: 7 }).await.unwrap();
    let next = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next,
        Message::Pong { seq: 7 },
        "the next answer comes first, not an error"
    );
    server.stop().await;
}
