//! The session over an in-memory pipe on paused time: the handshake and idle timeouts are
//! minutes long here and cost no real time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{DuplexStream, duplex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{SessionEnd, serve_stream};
use crate::client::handshake::client_handshake;
use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Goodbye, Message, Ping, Pong};
use crate::server::handshake::HandshakeError;
use crate::server::{Server, ServerOptions, ServerState};
use crate::shutdown::Shutdown;

const HANDSHAKE: Duration = Duration::from_secs(120);
const IDLE: Duration = Duration::from_secs(600);

/// A plaintext server's shared state (its listener is never used: sessions run on pipes).
async fn state(dir: &tempfile::TempDir) -> Arc<ServerState> {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = HANDSHAKE.as_millis() as u64;
    config.limits.idle_timeout_ms = IDLE.as_millis() as u64;
    config.chat.bot.enabled = false;
    let server = Server::bind(ServerOptions {
        config,
        listen: "127.0.0.1:0".parse().unwrap(),
        root: dir.path().to_path_buf(),
        state_dir: dir.path().join("state"),
        plaintext: true,
        web: None,
        irc: None,
        metrics: None,
    })
    .await
    .unwrap();
    server.state()
}

/// A session served on one end of a pipe; the other end, and the session's task.
fn open(
    state: &Arc<ServerState>,
    shutdown: &Shutdown,
) -> (
    Connection<DuplexStream>,
    tokio::task::JoinHandle<SessionEnd>,
) {
    let (server_end, client_end) = duplex(1 << 16);
    let (state, shutdown) = (Arc::clone(state), shutdown.clone());
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let session = tokio::spawn(async move {
        let deadline = Instant::now() + state.limits.handshake_timeout();
        serve_stream(
            Box::new(server_end),
            crate::transport::Transport::Tcp,
            peer,
            &state,
            &shutdown,
            deadline,
        )
        .await
    });
    (Connection::new(client_end), session)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_says_hello_is_told_at_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let (mut client, session) = open(&state, &Shutdown::new(CancellationToken::new()));
    let started = Instant::now();
    let told = client.read_message().await.unwrap();
    assert!(matches!(told, Message::Error(r) if r.code == ErrorCode::Timeout));
    assert!(started.elapsed() >= HANDSHAKE);
    assert!(
        client.read_frame().await.unwrap().is_none(),
        "then the server closes"
    );
    let end = session.await.unwrap();
    assert!(
        matches!(end, SessionEnd::Handshake(HandshakeError::Refused(ref r)) if r.code == ErrorCode::Timeout),
        "{end}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_gets_goodbye_at_the_idle_timeout_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let (mut client, session) = open(&state, &Shutdown::new(CancellationToken::new()));
    client_handshake(&mut client, None, "plaintext")
        .await
        .unwrap();
    // Activity restarts the clock: a ping just before the timeout keeps the session.
    tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
    client
        .write_message(&Message::Ping(Ping { seq: 1 }))
        .await
        .unwrap();
    assert_eq!(
        client.read_message().await.unwrap(),
        Message::Pong(Pong { seq: 1 })
    );
    let quiet_from = Instant::now();
    let said = client.read_message().await.unwrap();
    assert_eq!(
        said,
        Message::Goodbye(Goodbye {
            reason: "idle timeout".into()
        })
    );
    assert!(quiet_from.elapsed() >= IDLE);
    assert!(
        client.read_frame().await.unwrap().is_none(),
        "then the server closes"
    );
    assert!(matches!(session.await.unwrap(), SessionEnd::IdleTimeout));
}

#[tokio::test(start_paused = true)]
async fn shutdown_says_goodbye_between_requests() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let stop = CancellationToken::new();
    let (mut client, session) = open(&state, &Shutdown::new(stop.clone()));
    client_handshake(&mut client, None, "plaintext")
        .await
        .unwrap();
    stop.cancel();
    assert_eq!(
        client.read_message().await.unwrap(),
        Message::Goodbye(Goodbye {
            reason: "server shutting down".into()
        })
    );
    assert!(matches!(session.await.unwrap(), SessionEnd::Shutdown));
}
