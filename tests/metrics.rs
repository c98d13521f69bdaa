//! The metrics door: scraped over HTTP after a known workload, its figures equal what the
//! workload did; it opens beyond loopback only when the config allows it.

mod common;

use std::net::SocketAddr;

use common::{TestServer, WAIT, config_with_user, output};
use ferry::client::chat::{ChatTarget, join};
use ferry::client::files::NoProgress;
use ferry::client::{Client, ClientOptions};
use ferry::config::ServerConfig;
use ferry::metrics::sample;
use ferry::protocol::{ErrorCode, HashAlgorithm, Message, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` with a plain HTTP/1.1 request, as Prometheus sends it: the status line and
/// the body.
async fn scrape(addr: SocketAddr) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("the metrics door answers")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// One figure of a scrape; absent series are 0 (a family shows only what happened).
fn figure(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_equal_what_a_known_workload_did() {
    let (mut config, token) = config_with_user("dave", "chat,read,write,exec");
    config.chat.bot.enabled = false;
    let server = TestServer::start_with_metrics(config, true).await;
    let metrics = server.metrics_addr.unwrap();
    let (status, before) = scrape(metrics).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(figure(&before, "ferry_sign_ins_total{outcome=\"ok\"}"), 0.0);

    // Files: two puts, one get, one get of nothing, one mkdir, on one signed-in session.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
    std::fs::write(&a, common::pattern(300_000, 1)).unwrap();
    std::fs::write(&b, common::pattern(10, 2)).unwrap();
    let mut dave = server.client(Some(token.clone())).await;
    for _ in 0..3 {
        dave.ping(1).await.unwrap();
    }
    let mut files = dave.files();
    files
        .put_file(
            &a,
            "a.bin",
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
    files
        .put_file(
            &b,
            "b.bin",
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
    let back = dir.path().join("back.bin");
    files
        .get_file(
            "a.bin",
            &back,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert!(
        files
            .get_file(
                "nothing",
                &back,
                HashAlgorithm::Blake3,
                false,
                false,
                &mut NoProgress
            )
            .await
            .is_err()
    );
    files.mkdir("d", None, None).await.unwrap();
    // A command through the real binary (one more signed-in session), and a wrong token.
    let mut exec = server.ferry("exec");
    exec.args(["--token", &token.to_string(), "--", "true"]);
    assert!(output(exec).await.status.success());
    let mut wrong = server.ferry("ping");
    let (name, _) = token
        .to_string()
        .split_once(':')
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .unwrap();
    wrong.args(["--token", &format!("{name}:{}", "A".repeat(43)), "-c", "1"]);
    assert!(!output(wrong).await.status.success());
    // Chat: two anonymous members, one over the web door's WebSocket; one line said.
    let alice = server.client(None).await;
    let (mut alice_tx, mut alice_rx, _) = join(
        alice.into_connection(),
        ChatTarget::Room("lobby".into()),
        "alice",
        false,
    )
    .await
    .unwrap();
    let web = Client::connect(&ClientOptions {
        server: format!("ws://{}/ws", server.web_addr.unwrap()),
        ..server.options(None)
    })
    .await
    .unwrap();
    let (_bob_tx, mut bob_rx, _) = join(
        web.into_connection(),
        ChatTarget::Room("lobby".into()),
        "bob",
        false,
    )
    .await
    .unwrap();
    common::chat::expect(
        &mut alice_rx,
        "bob's join",
        common::chat::notice("bob joined"),
    )
    .await;
    let (_, joined) = scrape(metrics).await;
    common::say_acked(&mut alice_tx, &mut alice_rx, "hello").await;
    common::chat::expect(
        &mut bob_rx,
        "alice's line",
        common::chat::said("alice", "hello"),
    )
    .await;

    let (_, after) = scrape(metrics).await;
    let at = |series: &str| figure(&after, series);
    // dave's library session and his exec; alice and bob; the wrong guess.
    assert_eq!(at("ferry_sign_ins_total{outcome=\"ok\"}"), 2.0);
    assert_eq!(at("ferry_sign_ins_total{outcome=\"anonymous\"}"), 2.0);
    assert_eq!(at("ferry_sign_ins_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(
        at("ferry_requests_total{kind=\"ping\",outcome=\"ok\"}"),
        3.0
    );
    assert_eq!(at("ferry_requests_total{kind=\"put\",outcome=\"ok\"}"), 2.0);
    assert_eq!(at("ferry_requests_total{kind=\"get\",outcome=\"ok\"}"), 1.0);
    assert_eq!(
        at("ferry_requests_total{kind=\"get\",outcome=\"not_found\"}"),
        1.0
    );
    assert_eq!(
        at("ferry_requests_total{kind=\"mkdir\",outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        at("ferry_requests_total{kind=\"exec\",outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        at("ferry_transfer_duration_seconds_count{direction=\"put\"}"),
        2.0
    );
    assert_eq!(
        at("ferry_transfer_duration_seconds_count{direction=\"get\"}"),
        1.0
    );
    // Every byte of a.bin went in once and out once, inside the files service's frames.
    assert!(at("ferry_bytes_total{service=\"files\",direction=\"in\"}") >= 300_010.0);
    assert!(at("ferry_bytes_total{service=\"files\",direction=\"out\"}") >= 300_000.0);
    assert!(at("ferry_bytes_total{service=\"files\",direction=\"in\"}") < 400_000.0);
    assert!(at("ferry_bytes_total{service=\"echo\",direction=\"in\"}") > 0.0);
    assert!(at("ferry_bytes_total{service=\"chat\",direction=\"out\"}") > 0.0);
    // Open now: dave's session and alice over TCP, bob over the WebSocket.
    assert_eq!(at("ferry_sessions_open{transport=\"tcp\"}"), 2.0);
    assert_eq!(at("ferry_sessions_open{transport=\"websocket\"}"), 1.0);
    assert_eq!(at("ferry_exec_running"), 0.0);
    assert_eq!(at("ferry_chat_rooms"), 1.0);
    assert_eq!(at("ferry_chat_members"), 2.0);
    // The line reached bob: one delivery more than before it was said.
    assert_eq!(
        at("ferry_chat_deliveries_total"),
        figure(&joined, "ferry_chat_deliveries_total") + 1.0
    );
    assert_eq!(at("ferry_chat_members_dropped_total"), 0.0);
    assert_eq!(at("ferry_audit_dropped_total"), 0.0);
    // The cluster engine's state shows only on a clustered server, as up.
    let cluster = sample(&after, "ferry_cluster_up");
    assert_eq!(cluster, common::on_cluster_engine().then_some(1.0));
    drop((alice_tx, alice_rx, bob_rx, dave));
    server.stop().await;
}

#[tokio::test]
async fn the_endpoint_refuses_a_non_loopback_address_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Each server its own state: two servers never share one (the chat store is locked).
    let servers = std::sync::atomic::AtomicUsize::new(0);
    let bind = |config: ServerConfig, metrics: &str| {
        let n = servers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ferry::server::Server::bind(ferry::server::ServerOptions {
            config,
            listen: "127.0.0.1:0".parse().unwrap(),
            root: dir.path().to_path_buf(),
            state_dir: dir.path().join(format!("state-{n}")),
            plaintext: true,
            web: None,
            irc: None,
            metrics: Some(metrics.parse().unwrap()),
        })
    };
    let err = bind(ServerConfig::default(), "0.0.0.0:0")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("public = true"), "{err}");
    let loopback = bind(ServerConfig::default(), "127.0.0.1:0").await.unwrap();
    assert!(loopback.metrics_addr().unwrap().unwrap().ip().is_loopback());
    let mut public = ServerConfig::default();
    public.metrics.public = true;
    let opened = bind(public, "0.0.0.0:0").await.unwrap();
    assert!(
        opened
            .metrics_addr()
            .unwrap()
            .unwrap()
            .ip()
            .is_unspecified()
    );
    drop(opened);
    // The same rule in the config file, and through the real binary.
    let err = ServerConfig::parse("[metrics]\nlisten = '0.0.0.0:9100'").unwrap_err();
    assert!(err.contains("public = true"), "{err}");
    let mut serve = common::ferry_bin(dir.path());
    serve
        .args([
            "serve",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "0.0.0.0:0",
            "--state",
        ])
        .arg(dir.path().join("state"));
    let refused = output(serve).await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no authentication") && stderr.contains("public = true"),
        "{stderr}"
    );
}

#[tokio::test]
async fn stats_gives_an_admin_the_same_figures_and_refuses_everyone_else() {
    let (config, token) = config_with_user("root", "admin");
    let server = TestServer::start_with_metrics(config, true).await;
    let ask = |client: Client| async move {
        let mut conn = client.into_connection();
        conn.write_message(&Message::Stats(Stats::default()))
            .await
            .unwrap();
        conn.read_message().await.unwrap()
    };
    let refused = ask(server.client(None).await).await;
    assert!(
        matches!(&refused, Message::Error(r) if r.code == ErrorCode::PermissionDenied && r.message.contains("'admin'")),
        "{refused:?}"
    );
    let Message::StatsReport(report) = ask(server.client(Some(token)).await).await else {
        panic!("no stats_report");
    };
    let (_, text) = scrape(server.metrics_addr.unwrap()).await;
    let of = |name: &str, outcome: &str| {
        report
            .samples
            .iter()
            .find(|s| {
                s.name == name && s.labels.get("outcome").map(String::as_str) == Some(outcome)
            })
            .map(|s| s.value)
    };
    // One anonymous session and the admin's, counted alike by both.
    assert_eq!(of("ferry_sign_ins_total", "anonymous"), Some(1.0));
    assert_eq!(of("ferry_sign_ins_total", "ok"), Some(1.0));
    assert_eq!(figure(&text, "ferry_sign_ins_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(
        report.samples.len(),
        ferry::metrics::samples(&text).len() - 1,
        "every series the scrape shows but the admin's own stats, counted after its report"
    );
    server.stop().await;
}

/// The metrics door holds a connection no longer than the handshake timeout, as the other doors
/// do: a client that connects and sends nothing cannot keep a place within the limits.
#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_at_the_handshake_timeout() {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 300;
    let server = TestServer::start_with_metrics(config, true).await;
    let addr = server.metrics_addr.unwrap();
    let permits = &server.state.connection_permits;
    let all = permits.available_permits();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // It holds a place within the server's connection limits while it is open…
    permits_become(permits, all - 1).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, idle.read_to_end(&mut rest))
        .await
        .expect("the door closed the idle connection");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    // …and gives it back once closed.
    permits_become(permits, all).await;
    // A scrape is served within it.
    let (status, body) = scrape(addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("ferry_sessions_open"));
    server.stop().await;
}

/// Waits until `permits` has `n` available (it changes on another task).
async fn permits_become(permits: &tokio::sync::Semaphore, n: usize) {
    tokio::time::timeout(WAIT, async {
        while permits.available_permits() != n {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("available connection permits never became {n}"));
}
