//! Many connections at once: idle sockets never block the active ones.

mod common;

use common::{ServerProcess, TestServer};
use ferry::config::ServerConfig;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_succeed_while_300_idle_sockets_are_open() {
    let server = TestServer::start(ServerConfig::default()).await;
    // 150 sockets that never say a word (stuck before their handshake) ...
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // ... and 150 sessions that finished their handshake and then idle.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(server.client(None).await);
    }
    server.wait_for_active(300).await;

    let mut pingers = Vec::new();
    for i in 0..20u64 {
        let options = server.options(None);
        pingers.push(tokio::spawn(async move {
            let mut client = ferry::client::Client::connect(&options).await.unwrap();
            for seq in 0..10 {
                client.ping(i * 100 + seq).await.unwrap();
            }
        }));
    }
    for p in pingers {
        p.await.unwrap();
    }
    // The idle sessions are all still usable.
    for client in idle.iter_mut().step_by(15) {
        client.ping(1).await.unwrap();
    }
    drop(silent);
}

/// 10,000 idle TLS sessions against the real binary, then pings; prints memory per connection.
/// Ignored by default (it takes about a minute on two cores): `cargo nextest run --run-ignored
/// only -E 'test(ten_thousand)'` or `cargo test --release -- --ignored ten_thousand --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run explicitly"]
async fn ten_thousand_idle_tls_connections_and_the_server_still_answers() {
    const N: usize = 10_000;
    raise_fd_limit(N as u64 + 1024);
    let server = ServerProcess::start(&[]);
    let home = server.dir.path().join("home");
    let options = ferry::client::ClientOptions {
        server: server.addr.to_string(),
        token: None,
        plaintext: false,
        home,
        connect_timeout: common::WAIT,
        accept_new: true,
        keys: None,
    };
    let base = server.status_kib("VmRSS");
    let mut idle = Vec::with_capacity(N);
    let started = std::time::Instant::now();
    for chunk in 0..N / 100 {
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let options = options.clone();
            tasks.push(tokio::spawn(async move {
                ferry::client::Client::connect(&options).await
            }));
        }
        for t in tasks {
            idle.push(
                t.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("connection {chunk}: {e}")),
            );
        }
    }
    let opened = started.elapsed();
    let rss = server.status_kib("VmRSS");
    let mut client = ferry::client::Client::connect(&options).await.unwrap();
    let mut rtts = Vec::new();
    for seq in 0..100 {
        rtts.push(client.ping(seq).await.unwrap());
    }
    rtts.sort_unstable();
    let per_conn = (rss.saturating_sub(base)) * 1024 / N as u64;
    println!(
        "{N} idle TLS sessions opened in {opened:.1?}; server RSS {base} KiB -> {rss} KiB \
         ({per_conn} bytes per connection); ping median {:?} p99 {:?} with them open",
        rtts[50], rtts[99]
    );
    assert_eq!(idle.len(), N);
    assert!(per_conn <= 64 * 1024, "{per_conn} bytes per connection");
}

fn raise_fd_limit(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    assert!(
        hard.is_none_or(|hard| hard >= want),
        "hard fd limit {hard:?} is below {want}"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .unwrap();
}
