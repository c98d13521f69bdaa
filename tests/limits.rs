//! Limits over real sockets: the preamble timeout, the connection limit, a client that never
//! reads. (The handshake and idle timeouts are unit tests of the session on paused time:
//! `server::session::tests`.)

mod common;

use common::{TestServer, raw_session, read_to_close};
use ferry::client::{Client, ClientError};
use ferry::config::ServerConfig;
use ferry::protocol::ErrorCode;
use ferry::protocol::{Ping, Refusal};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_silent_client_is_told_and_closed_at_the_handshake_timeout() {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 200;
    let server = TestServer::start(config).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // The server closes it: read_to_end returns instead of hanging (bounded by WAIT).
    let got = read_to_close(&mut silent).await;
    assert_eq!(&got[..8], b"FERRY\x01E\x00");
    let text = String::from_utf8_lossy(&got[8..]);
    assert!(
        text.contains("\"timeout\"") && text.contains("no ferry preamble"),
        "{text}"
    );
    server.wait_for_active(0).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_told_the_server_is_busy() {
    let mut config = ServerConfig::default();
    config.limits.max_connections = 2;
    let server = TestServer::start(config).await;
    let first = server.client(None).await;
    let _second = server.client(None).await;
    let err = Client::connect(&server.options(None))
        .await
        .err()
        .expect("busy");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                refusal: Refusal {
                    code: ErrorCode::ServerBusy,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
    // A slot frees up when a session ends.
    first.close().await.unwrap();
    server.wait_for_active(1).await;
    server.client(None).await.ping(1).await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_dropped() {
    let mut config = ServerConfig::default();
    config.limits.write_stall_timeout_ms = 300;
    let server = TestServer::start_plaintext(config).await;
    let conn = raw_session(server.addr).await;
    server.wait_for_active(1).await;
    // Ask, ask, ask, and never read a single pong: the server's writes stall.
    let mut tcp = conn.into_inner();
    let ping = ferry::protocol::Message::Ping(Ping { seq: 1 }).to_frame();
    let flood = ping.repeat(4096);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while tcp.write_all(&flood).await.is_ok() {}
        tcp
    });
    server.wait_for_active(0).await;
    writer.abort();
}

/// A server whose open-file limit cannot hold its connection limit says so at start, naming
/// both and what to change; one whose limit can, does not.
#[test]
fn a_server_warns_at_start_when_its_open_file_limit_is_short() {
    let config_dir = tempfile::tempdir().unwrap();
    let small = config_dir.path().join("small.toml");
    std::fs::write(&small, "[limits]\nmax_connections = 100\n").unwrap();
    let short = common::ServerProcess::start_under_open_file_limit(512, &["--plaintext"]);
    let warning = short
        .startup
        .iter()
        .find(|line| line.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no warning in {:?}", short.startup));
    assert!(
        warning.contains("is 512") && warning.contains("16384") && warning.contains("ulimit -n"),
        "{warning}"
    );
    let enough = common::ServerProcess::start_under_open_file_limit(
        512,
        &["--plaintext", "--config", small.to_str().unwrap()],
    );
    assert!(
        !enough.startup.iter().any(|l| l.contains("open-file limit")),
        "{:?}",
        enough.startup
    );
}
