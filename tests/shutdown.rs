//! Graceful shutdown: stop accepting, tell every client, drain within the bound.

mod common;

use common::{ServerProcess, TestServer, WAIT, raw_plaintext, raw_session};
use ferry::config::ServerConfig;
use ferry::protocol::{ErrorCode, Message};
use ferry::protocol::{Goodbye, Refusal};
use tokio::net::TcpStream;

#[tokio::test]
async fn shutdown_says_goodbye_to_every_session_and_stops_accepting() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let addr = server.addr;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(raw_session(addr).await);
    }
    server.wait_for_active(5).await;
    let state = server.state.clone();
    assert!(
        server.stop().await,
        "all sessions closed within the grace period"
    );
    for conn in &mut sessions {
        assert_eq!(
            conn.read_message().await.unwrap(),
            Message::Goodbye(Goodbye {
                reason: "server shutting down".into()
            })
        );
        assert!(conn.read_frame().await.unwrap().is_none());
    }
    assert_eq!(state.stats.active_connections(), 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn shutdown_tells_a_client_still_in_its_handshake() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut conn = raw_plaintext(server.addr).await;
    server.wait_for_active(1).await;
    assert!(server.stop().await);
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, .. }) => assert_eq!(code, ErrorCode::ShuttingDown),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let mut server = ServerProcess::start(&["--plaintext"]);
    let mut conn = raw_session(server.addr).await;
    common::send_signal(server.child.id(), rustix::process::Signal::TERM);
    let said = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(said, Message::Goodbye(_)), "{said:?}");
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "{status:?}");
}
