//! The web door's WebSocket endpoint through a WebSocket client: one binary message per ferry
//! frame, the same handshake, permissions and limits as TCP, and cross-site upgrades refused.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{TestServer, WAIT};
use ferry::config::ServerConfig;
use ferry::protocol::frame::{self, Frame};
use ferry::protocol::{ErrorCode, Hello, Message, Ping, Pong, Put, Refusal};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as Ws};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn web_server() -> TestServer {
    TestServer::start_with_web(ServerConfig::default(), true).await
}

fn url(server: &TestServer) -> String {
    format!("ws://{}/ws", server.web_addr.unwrap())
}

async fn send(socket: &mut Socket, message: &Message) {
    let frame = frame::encode(&Frame::Message(message.to_json().into()));
    socket.send(Ws::Binary(frame.into())).await.unwrap();
}

/// The next ferry message; `None` when the server closed.
async fn next(socket: &mut Socket) -> Option<Message> {
    let got = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Ws::Binary(bytes))) => {
                    let mut buf = BytesMut::from(&bytes[..]);
                    match frame::decode(&mut buf, frame::DEFAULT_MAX_FRAME).unwrap() {
                        Some(Frame::Message(body)) => return Some(Message::parse(&body).unwrap()),
                        other => panic!("not one message frame per WebSocket message: {other:?}"),
                    }
                }
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    got.expect("the server answers or closes in time")
}

/// An anonymous session over the WebSocket.
async fn session(server: &TestServer) -> Socket {
    let (mut socket, _) = connect_async(url(server)).await.unwrap();
    send(
        &mut socket,
        &Message::Hello(Hello {
            client: "web-test".into(),
            user: None,
            nonce: None,
        }),
    )
    .await;
    assert!(matches!(next(&mut socket).await, Some(Message::Welcome(_))));
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_is_a_ferry_session() {
    let server = web_server().await;
    let mut socket = session(&server).await;
    send(&mut socket, &Message::Ping(Ping { seq: 7 })).await;
    assert_eq!(
        next(&mut socket).await,
        Some(Message::Pong(Pong { seq: 7 }))
    );

    // The same permissions: anonymous sessions may not write.
    send(
        &mut socket,
        &Message::Put(Put {
            path: "x".into(),
            size: 1,
            mode: 0o644,
            mtime_ns: 0,
            hash: Default::default(),
        }),
    )
    .await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Error(Refusal {
            code: ErrorCode::PermissionDenied,
            ..
        }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_upgrade_is_refused_and_the_own_origin_accepted() {
    let server = web_server().await;
    let mut request = url(&server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!(
            "a cross-site upgrade must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    let mut request = url(&server).into_client_request().unwrap();
    let own = format!("http://{}", server.web_addr.unwrap());
    request.headers_mut().insert("Origin", own.parse().unwrap());
    assert!(connect_async(request).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_or_a_text_one_ends_the_session() {
    let server = web_server().await;
    let mut socket = session(&server).await;
    let huge = vec![0u8; frame::DEFAULT_MAX_FRAME + 1024];
    let _ = socket.send(Ws::Binary(huge.into())).await;
    assert_eq!(next(&mut socket).await, None, "closed, not buffered");

    let mut socket = session(&server).await;
    let _ = socket.send(Ws::Text("hello".into())).await;
    assert_eq!(next(&mut socket).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_gives_its_connection_back() {
    let server = web_server().await;
    let max = server.state.limits.max_connections;
    let socket = session(&server).await;
    assert_eq!(server.state.connection_permits.available_permits(), max - 1);
    drop(socket);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.connection_permits.available_permits() != max {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_plaintext_web_door_opens_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let bound = ferry::server::Server::bind(ferry::server::ServerOptions {
        config: ServerConfig::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
        root: dir.path().to_path_buf(),
        state_dir: dir.path().join("state"),
        plaintext: true,
        web: Some("0.0.0.0:0".parse().unwrap()),
    })
    .await;
    let Err(e) = bound else {
        panic!("a plaintext web door beyond loopback must be refused");
    };
    assert!(e.to_string().contains("only listen on loopback"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_is_closed_at_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 300;
    let server = TestServer::start_with_web(config, true).await;
    let mut tcp = TcpStream::connect(server.web_addr.unwrap()).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a trickled request must not hold its connection"
    );
    let max = server.state.limits.max_connections;
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.connection_permits.available_permits() != max {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
