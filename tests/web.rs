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
            keys: Vec::new(),
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
            whole: false,
            delta: false,
            avg: None,
            chunk_hash: None,
            compress: false,
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

/// Waits until the server holds all `max` connection slots free again (a web connection's
/// slot is given back by a task of its own, after the connection ends).
async fn every_slot_comes_back(server: &TestServer, max: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state.connection_permits.available_permits() != max {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_gives_its_connection_back() {
    let server = web_server().await;
    let max = server.state.limits.max_connections;
    let socket = session(&server).await;
    assert_eq!(server.state.connection_permits.available_permits(), max - 1);
    drop(socket);
    every_slot_comes_back(&server, max).await;
}

#[tokio::test]
async fn a_plaintext_web_door_opens_only_on_loopback() {
    let bound = common::bind_plaintext_doors(Some("0.0.0.0:0"), None).await;
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
    every_slot_comes_back(&server, max).await;
}

/// `GET path` on a plaintext web door: the status line, the headers (lower-case names) and
/// the body.
async fn http_get(server: &TestServer, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let host = server.web_addr.unwrap().to_string();
    http_get_with_host(server, path, &host).await
}

/// [`http_get`] naming `host` in the `Host` header.
async fn http_get_with_host(
    server: &TestServer,
    path: &str,
    host: &str,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.web_addr.unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("the response ends in time")
        .unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole HTTP head");
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_headers_that_keep_it_to_itself() {
    let server = web_server().await;
    for (path, status, kind) in [
        ("/", "200", "text/html"),
        ("/js/wire.js", "200", "text/javascript"),
        ("/favicon.svg", "200", "image/svg+xml"),
        ("/README.md", "404", "text/plain"),
        ("/../Cargo.toml", "404", "text/plain"),
        ("/nothing-here", "404", "text/plain"),
    ] {
        let (line, headers, _) = http_get(&server, path).await;
        assert!(line.contains(status), "{path}: {line}");
        assert!(
            header(&headers, "content-type").is_some_and(|t| t.starts_with(kind)),
            "{path}: {headers:?}"
        );
        // Every answer, refusals too, carries the policy.
        let policy = header(&headers, "content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("script-src 'self';") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
        assert_eq!(header(&headers, "set-cookie"), None);
    }
    let (_, _, body) = http_get(&server, "/ferry.json").await;
    let facts: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(facts["binding"], "plaintext", "{facts}");
    let (_, _, page) = http_get(&server, "/").await;
    let page = String::from_utf8(page).unwrap();
    assert!(
        !page.contains("<script>") && page.contains("<script type=\"module\" src="),
        "no inline script: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_server_through_its_web_door_and_pins_it() {
    let (config, token) = common::config_with_user("alice", "read,write");
    let server = TestServer::start_with_web(config, false).await;
    let web = format!("wss://{}", server.web_addr.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let original = common::pattern(3 << 20, 7);
    std::fs::write(dir.path().join("a.bin"), &original).unwrap();
    let ferry = |verb: &str, args: &[&str]| {
        let mut cmd = common::ferry_bin(&server.home());
        cmd.arg(verb)
            .args([
                "--server",
                &web,
                "--token",
                &token.to_string(),
                "--accept-new",
            ])
            .args(args);
        cmd
    };
    let put = common::output(ferry(
        "put",
        &[dir.path().join("a.bin").to_str().unwrap(), "a.bin"],
    ))
    .await;
    assert!(put.status.success(), "{put:?}");
    let got = dir.path().join("back.bin");
    let get = common::output(ferry("get", &["a.bin", got.to_str().unwrap()])).await;
    assert!(get.status.success(), "{get:?}");
    assert!(
        std::fs::read(&got).unwrap() == original,
        "not byte-identical"
    );
    let pins = std::fs::read_to_string(server.home().join("known_servers")).unwrap();
    let expected = format!(
        "{} {}",
        server.web_addr.unwrap(),
        server.fingerprint.as_deref().unwrap()
    );
    assert!(pins.contains(&expected), "{pins}");

    // Plaintext only when asked for, as on TCP.
    let mut ls = common::ferry_bin(&server.home());
    ls.args(["ls", "--server", &web.replace("wss://", "ws://")]);
    let plain = common::output(ls).await;
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("--plaintext"),
        "{plain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_certificate_signed_by_a_ca_serves_both_doors() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &Issuer::new(ca_params, &ca_key))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();

    let mut config = ServerConfig::default();
    config.tls.cert = Some(cert_path);
    config.tls.key = Some(key_path);
    config.validate().unwrap();
    let server = TestServer::start_with_web(config, false).await;
    assert_eq!(
        server.fingerprint.as_deref(),
        Some(ferry::tls::fingerprint(leaf.der()).as_str()),
        "the operator's certificate is the identity clients pin"
    );
    // The native door: a ferry client connects and pins it.
    let mut client = server.client(None).await;
    client.ping(1).await.unwrap();

    // The web door: a client that trusts only the CA (as a browser trusts its CAs) accepts it.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.web_addr.unwrap()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("the chain verifies against the CA");
}

#[test]
fn tls_needs_both_cert_and_key() {
    let mut config = ServerConfig::default();
    config.tls.cert = Some("chain.pem".into());
    let err = config.validate().unwrap_err();
    assert!(err.contains("both cert and key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_another_host_name_is_refused_before_anything_is_served() {
    // DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 sends
    // same-origin requests (for the browser) that name evil.example in Host.
    let mut config = ServerConfig::default();
    config.web.hosts = vec!["ferry.example.org".into()];
    let server = TestServer::start_with_web(config, true).await;
    let port = server.web_addr.unwrap().port();
    for path in ["/", "/ferry.json", "/js/wire.js", "/ws"] {
        for host in [format!("evil.example:{port}"), "evil.example".into()] {
            let (status, _, body) = http_get_with_host(&server, path, &host).await;
            assert!(status.contains(" 421 "), "{path} for {host}: {status}");
            assert!(!String::from_utf8_lossy(&body).contains("<html"));
        }
    }
    // The WebSocket upgrade itself, same-origin for a rebound page: refused too.
    let mut request = url(&server).into_client_request().unwrap();
    let evil = format!("evil.example:{port}");
    request.headers_mut().insert("Host", evil.parse().unwrap());
    request
        .headers_mut()
        .insert("Origin", format!("http://{evil}").parse().unwrap());
    match connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 421),
        other => panic!("a rebound upgrade must be refused: {:?}", other.map(|_| ())),
    }
    // The door's own address, localhost on loopback and the listed name are served.
    for host in [
        server.web_addr.unwrap().to_string(),
        format!("localhost:{port}"),
        format!("Ferry.Example.org:{port}"),
    ] {
        let (status, _, _) = http_get_with_host(&server, "/", &host).await;
        assert!(status.contains(" 200 "), "{host}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_and_never_reads_is_cut() {
    let server = web_server().await;
    let mut socket = session(&server).await;
    // Pings with the largest payload a control frame may carry, and never a read: every pong
    // the server owes waits. Before the bound, the server buffered them all (gigabytes).
    let payload = bytes::Bytes::from(vec![b'p'; 125]);
    let mut sent = 0u64;
    let cut = tokio::time::timeout(WAIT, async {
        loop {
            if socket.send(Ws::Ping(payload.clone())).await.is_err() {
                return true;
            }
            sent += 1;
            if sent >= 2_000_000 {
                return false;
            }
        }
    })
    .await
    .expect("pinging ends in time");
    assert!(
        cut,
        "the server took {sent} pings without the client reading a pong"
    );
}
