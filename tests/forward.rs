//! Port forwarding through the real `ferry forward` binary against real local servers: `-L`
//! and `-R` to an echo server, `-D` with curl as the SOCKS client, the server's rules, limits
//! and clean-up.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::{TestServer, WAIT, config_with_user};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback: each connection's bytes come back, and its end after them.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

/// A server whose streams may go to `connect` and whose `-R` may listen on loopback, with
/// alice holding `allow`.
async fn server(allow: &str, connect: &[String]) -> (TestServer, ferry::auth::token::Token) {
    let (mut config, token) = config_with_user("alice", allow);
    config.forward.connect = connect.to_vec();
    config.forward.listen = vec!["127.0.0.1:*".into()];
    (TestServer::start(config).await, token)
}

/// A running `ferry forward`, its stderr lines readable, killed when dropped.
struct Forwarder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Forwarder {
    fn start(server: &TestServer, token: &ferry::auth::token::Token, args: &[&str]) -> Forwarder {
        let mut cmd = server.ferry("forward");
        cmd.args(args)
            .env("FERRY_TOKEN", token.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Forwarder { child, lines }
    }

    /// The next stderr line containing `text`.
    fn line_with(&self, text: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("ferry forward never said '{text}'"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The local address a `-L`/`-D` listener got (`ferry: ADDR -> ...` or `proxy on ADDR`).
    fn local_addr(&self, text: &str) -> SocketAddr {
        let line = self.line_with(text);
        line.split_whitespace()
            .find_map(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no address in '{line}'"))
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn round_trip(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(message).await.unwrap();
    // Half-close: the echo server sees the end, answers, and closes in turn.
    socket.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut back))
        .await
        .expect("the answer and its end come back")
        .unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_carries_bytes_and_half_closes() {
    let echo = echo_server().await;
    let (server, token) = server("forward", &[format!("127.0.0.1:{}", echo.port())]).await;
    let forward = Forwarder::start(
        &server,
        &token,
        &["-L", &format!("0:127.0.0.1:{}", echo.port())],
    );
    let local = forward.local_addr("->");
    assert_eq!(
        round_trip(local, b"hello through ferry").await,
        b"hello through ferry"
    );
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(local, &big).await, big, "4 MiB, many windows");
    // Several at once, on one session.
    let many = (0..20).map(|i| {
        let message = format!("stream {i}").into_bytes();
        async move { (round_trip(local, &message).await, message) }
    });
    for (back, sent) in futures_util::future::join_all(many).await {
        assert_eq!(back, sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_listens_on_the_server_and_comes_back() {
    let echo = echo_server().await;
    let (server, token) = server("forward", &[]).await;
    let forward = Forwarder::start(
        &server,
        &token,
        &["-R", &format!("0:127.0.0.1:{}", echo.port())],
    );
    let line = forward.line_with("the server listens on");
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in '{line}'"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(
        round_trip(addr, b"back to the client").await,
        b"back to the client"
    );
    // The client killed: the server's listener goes with its session.
    drop(forward);
    server.wait_for_active(0).await;
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the -R listener outlived its client");
}

/// A tiny HTTP server answering every request with `body`.
async fn http_server(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

fn curl(proxy: SocketAddr, url: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname"])
        .arg(proxy.to_string())
        .arg(url)
        .output()
        .expect("curl is installed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks_proxy_serves_curl_and_the_rules_refuse_the_rest() {
    let web = http_server("served through SOCKS").await;
    let (server, token) = server("forward", &[format!("127.0.0.1:{}", web.port())]).await;
    let forward = Forwarder::start(&server, &token, &["-D", "0"]);
    let proxy = forward.local_addr("SOCKS5 proxy on");
    let url = format!("http://127.0.0.1:{}/", web.port());
    let out = tokio::task::spawn_blocking(move || curl(proxy, &url))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "served through SOCKS",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another port of the same address: not in [forward] connect.
    let other = echo_server().await;
    let url = format!("http://127.0.0.1:{}/", other.port());
    let out = tokio::task::spawn_blocking(move || curl(proxy, &url))
        .await
        .unwrap();
    assert!(!out.status.success(), "a forbidden destination was reached");
    forward.line_with("refused");
    // A name the server resolves to an address no rule allows (localhost is 127.0.0.1, the
    // rule is for that address's other port): refused too.
    let url = format!("http://localhost:{}/", other.port());
    let out = tokio::task::spawn_blocking(move || curl(proxy, &url))
        .await
        .unwrap();
    assert!(!out.status.success(), "a name led to a forbidden address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_a_forbidden_address_is_refused() {
    let echo = echo_server().await;
    // 127.0.0.2 is allowed; localhost resolves to 127.0.0.1 (or ::1), which is not.
    let (server, token) = server("forward", &[format!("127.0.0.2:{}", echo.port())]).await;
    let forward = Forwarder::start(
        &server,
        &token,
        &["-L", &format!("0:localhost:{}", echo.port())],
    );
    let local = forward.local_addr("->");
    let mut socket = TcpStream::connect(local).await.unwrap();
    let _ = socket.write_all(b"x").await;
    let mut back = Vec::new();
    // The refused connection is closed (or reset, as it had unread bytes): never echoed.
    let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut back)).await;
    assert!(read.is_ok(), "a refused connection is closed");
    assert!(
        back.is_empty(),
        "nothing comes back through a refused stream"
    );
    let line = forward.line_with("refused");
    assert!(line.contains("do not allow"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_permission_forward_is_refused() {
    let (server, token) = server("chat,read", &["127.0.0.1:*".into()]).await;
    let mut cmd = server.ferry("forward");
    cmd.args(["-L", "0:127.0.0.1:1"])
        .env("FERRY_TOKEN", token.to_string())
        .stdin(Stdio::null());
    let out = common::output(cmd).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'forward' permission"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_far_side_never_reads_stalls_no_other() {
    let echo = echo_server().await;
    // A destination that accepts and never reads.
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = sink.accept().await {
            kept.push(socket);
        }
    });
    let (server, token) = server(
        "forward",
        &[
            format!("127.0.0.1:{}", echo.port()),
            format!("127.0.0.1:{}", sink_addr.port()),
        ],
    )
    .await;
    let forward = Forwarder::start(
        &server,
        &token,
        &[
            "-L",
            &format!("0:127.0.0.1:{}", sink_addr.port()),
            "-L",
            &format!("0:127.0.0.1:{}", echo.port()),
        ],
    );
    let to_sink = forward.local_addr("->");
    let to_echo = forward.local_addr("->");
    // Far more than every buffer on the way holds: the writer blocks for good.
    let mut stuck = TcpStream::connect(to_sink).await.unwrap();
    let pushing = tokio::spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..256 {
            if stuck.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    for i in 0..5 {
        let message = format!("still flowing {i}").into_bytes();
        assert_eq!(round_trip(to_echo, &message).await, message);
    }
    assert!(!pushing.is_finished(), "the stuck stream really is stuck");
    pushing.abort();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_session_limit_wait_for_a_stream_to_end() {
    let echo = echo_server().await;
    let (mut config, token) = config_with_user("alice", "forward");
    config.forward.connect = vec![format!("127.0.0.1:{}", echo.port())];
    config.forward.max_streams_per_session = 2;
    let server = TestServer::start(config).await;
    let forward = Forwarder::start(
        &server,
        &token,
        &["-L", &format!("0:127.0.0.1:{}", echo.port())],
    );
    let local = forward.local_addr("->");
    // Two streams open and echoing: the session's most.
    let mut open = Vec::new();
    for i in 0..2u8 {
        let mut socket = TcpStream::connect(local).await.unwrap();
        socket.write_all(&[i]).await.unwrap();
        let mut back = [0u8; 1];
        socket.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [i]);
        open.push(socket);
    }
    // A third waits for a slot rather than being refused, and is carried once one ends.
    let third = tokio::spawn(round_trip(local, b"third"));
    drop(open.pop());
    let back = tokio::time::timeout(WAIT, third).await.unwrap().unwrap();
    assert_eq!(back, b"third");
    let refusals: Vec<String> = forward
        .lines
        .try_iter()
        .filter(|l| l.contains("refused"))
        .collect();
    assert!(refusals.is_empty(), "{refusals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_small_frames_gets_small_pieces() {
    let echo = echo_server().await;
    let (mut config, token) = config_with_user("alice", "forward");
    config.forward.connect = vec![format!("127.0.0.1:{}", echo.port())];
    // The smallest frames a server may take: a stream's reads must fit in them.
    config.limits.max_frame_bytes = 64 * 1024;
    let server = TestServer::start(config).await;
    let forward = Forwarder::start(
        &server,
        &token,
        &["-L", &format!("0:127.0.0.1:{}", echo.port())],
    );
    let local = forward.local_addr("->");
    let big: Vec<u8> = (0..2 << 20).map(|i| (i % 253) as u8).collect();
    assert_eq!(round_trip(local, &big).await, big);
}

/// A plaintext server on `listen` with `config`, run until the returned token is cancelled.
async fn plaintext_server_on(
    listen: SocketAddr,
    config: ferry::config::ServerConfig,
    dir: &std::path::Path,
) -> (
    SocketAddr,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<bool>,
) {
    let server = ferry::server::Server::bind(ferry::server::ServerOptions {
        config,
        listen,
        root: dir.to_path_buf(),
        state_dir: dir.join("state"),
        plaintext: true,
        web: None,
        irc: None,
        metrics: None,
    })
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    (addr, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_reconnects_when_the_server_comes_back_and_serves_its_listener_again() {
    let echo = echo_server().await;
    let (mut config, token) = config_with_user("alice", "forward");
    config.forward.connect = vec![format!("127.0.0.1:{}", echo.port())];
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) =
        plaintext_server_on("127.0.0.1:0".parse().unwrap(), config.clone(), dir.path()).await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = common::ferry_bin(home.path());
    cmd.args(["forward", "--plaintext", "--server", &addr.to_string()])
        .args(["-L", &format!("0:127.0.0.1:{}", echo.port())])
        .env("FERRY_TOKEN", token.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let forward = Forwarder { child, lines };
    let local = forward.local_addr("->");
    assert_eq!(round_trip(local, b"before").await, b"before");

    // The server goes away: the forward says so, and keeps its local listener.
    stop.cancel();
    assert!(tokio::time::timeout(WAIT, task).await.unwrap().unwrap());
    forward.line_with("went away");
    // The same server back on the same address: the forward connects again by itself.
    let (_, stop, task) = plaintext_server_on(addr, config, dir.path()).await;
    forward.line_with("connected again");
    assert_eq!(round_trip(local, b"after").await, b"after");
    stop.cancel();
    let _ = tokio::time::timeout(WAIT, task).await;
}
