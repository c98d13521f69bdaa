//! Clients that try to starve others: walkers that never read, trickle readers, idle sessions
//! that sent one big frame, crowds of anonymous sessions, and parallel password guessing. Each
//! must cost its own slot at most, never another client's service.

mod common;

use ferry::protocol::{ChatJoin, ChatNotice, Get, Hello, List, Refusal};
use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, WAIT, config_with_user, refusal_code};
use ferry::client::files::{self, NoProgress};
use ferry::client::{Client, ClientError};
use ferry::config::ServerConfig;
use ferry::connection::Connection;
use ferry::protocol::preamble::PREAMBLE_LEN;
use ferry::protocol::{ErrorCode, HashAlgorithm, Message, Mode, Preamble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A plaintext TCP connection from `from` (any 127.x address) with a tiny receive buffer, so
/// the server's writes to it block as soon as it stops reading.
async fn small_window(server: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(server).await.unwrap();
    tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
        .await
        .unwrap();
    let mut answer = [0u8; PREAMBLE_LEN];
    tcp.read_exact(&mut answer).await.unwrap();
    tcp
}

/// An anonymous plaintext session from `from`, past `welcome`.
async fn anonymous_from(server: SocketAddr, from: &str) -> Connection<TcpStream> {
    let mut conn = Connection::new(small_window(server, from).await);
    conn.write_message(&Message::Hello(Hello {
        client: "starver".into(),
        user: None,
        nonce: None,
        keys: Vec::new(),
    }))
    .await
    .unwrap();
    match conn.read_message().await.unwrap() {
        Message::Welcome(_) => conn,
        other => panic!("no welcome: {other:?}"),
    }
}

/// `n` anonymous sessions that each ask for the whole tree and never read the answer.
async fn walks_never_read(server: &TestServer, n: usize) -> Vec<Connection<TcpStream>> {
    let mut stalled = Vec::new();
    for _ in 0..n {
        let mut conn = anonymous_from(server.addr, "127.0.0.1").await;
        conn.write_message(&Message::List(List {
            path: String::new(),
            recursive: true,
            itself: false,
        }))
        .await
        .unwrap();
        stalled.push(conn);
    }
    stalled
}

fn tree(server: &TestServer, files: usize) {
    let root = server.dir.path().join("root");
    for d in 0..10 {
        let dir = root.join(format!("dir-{d:02}-{}", "x".repeat(100)));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..files / 10 {
            std::fs::write(dir.join(format!("file-{f:05}-{}", "y".repeat(100))), b"z").unwrap();
        }
    }
    std::fs::write(root.join("small"), b"small file").unwrap();
}

/// Tree walks for clients that never read must not hold the blocking threads that everyone's
/// file requests need. The runtime here has only 4 of them: the old walker parked one per
/// client, so 8 such clients stopped every other get.
#[test]
fn walkers_that_never_read_hold_no_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = TestServer::start_plaintext(ServerConfig::default()).await;
        tree(&server, 20_000);
        let stalled = walks_never_read(&server, 8).await;
        let work = tempfile::tempdir().unwrap();
        let mut options = server.options(None);
        options.plaintext = true;
        let mut conn = Client::connect(&options).await.unwrap().into_connection();
        let got = tokio::time::timeout(
            WAIT,
            files::get_file(
                &mut conn,
                "small",
                &work.path().join("small"),
                HashAlgorithm::Blake3,
                None,
                false,
                &mut NoProgress,
            ),
        )
        .await
        .expect("a get is served while walkers wait for clients that do not read");
        got.unwrap();
        drop(stalled);
        server.stop().await;
    });
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_file_requests() {
    let mut config = ServerConfig::default();
    config.limits.max_file_requests_per_address = 2;
    let server = TestServer::start_plaintext(config).await;
    // ~5 MB of listing: more than socket buffers can absorb (4 MiB at most), so the walks
    // stay in progress until their clients read.
    tree(&server, 20_000);
    let stalled = walks_never_read(&server, 2).await;
    // The first batches are under way (the server is blocked writing the rest).
    tokio::time::timeout(WAIT, async {
        while server
            .state
            .file_requests_per_address
            .held_by("127.0.0.1".parse().unwrap())
            < 2
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let mut third = anonymous_from(server.addr, "127.0.0.1").await;
    let err = files::list(&mut third, "", false).await.unwrap_err();
    assert_eq!(refusal_code(&err), Some(ErrorCode::ServerBusy), "{err}");
    assert!(err.to_string().contains("file requests"), "{err}");
    // Another address is not affected.
    let mut other = anonymous_from(server.addr, "127.0.0.2").await;
    assert!(files::list(&mut other, "", false).await.is_ok());
    drop(stalled);
    server.stop().await;
}

/// A reader that takes a little now and then is cut like one that takes nothing.
#[tokio::test]
async fn a_trickle_reader_is_cut_off() {
    let mut config = ServerConfig::default();
    config.limits.write_stall_timeout_ms = 500;
    let server = TestServer::start_plaintext(config).await;
    std::fs::write(server.dir.path().join("root/big"), vec![1u8; 8 << 20]).unwrap();
    let mut conn = anonymous_from(server.addr, "127.0.0.1").await;
    conn.write_message(&Message::Get(Get {
        path: "big".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: None,
        signing: None,
        compress: false,
    }))
    .await
    .unwrap();
    server.wait_for_active(1).await;
    let mut tcp = conn.into_inner();
    let trickle = tokio::spawn(async move {
        let mut sip = vec![0u8; 8 * 1024];
        // 8 KiB every 300 ms: enough each time to wake the server's write (real progress),
        // but ~13 KiB per 500 ms, under the 64 KiB the server requires. (Bytes the server queued
        // before it gave up keep arriving long after, so the end of the stream says nothing;
        // the server's count does.)
        while tcp.read(&mut sip).await.is_ok_and(|n| n > 0) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut active = server.state.stats.watch_active();
    let cut = tokio::time::timeout(WAIT, active.wait_for(|a| *a == 0)).await;
    trickle.abort();
    assert!(cut.is_ok(), "a trickle reader was never cut off");
    server.stop().await;
}

#[tokio::test]
async fn frames_before_welcome_are_small() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut conn = Connection::new(small_window(server.addr, "127.0.0.1").await);
    // 64 KiB before saying hello: the old server buffered up to 1 MiB here.
    conn.write_data(0, &vec![0u8; 64 * 1024]).await.unwrap();
    match conn.read_message().await {
        Ok(Message::Error(Refusal { code, .. })) => assert_eq!(code, ErrorCode::FrameTooLarge),
        other => panic!("expected frame_too_large, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn one_address_holds_at_most_its_connections() {
    let mut config = ServerConfig::default();
    config.limits.max_connections_per_address = 2;
    let server = TestServer::start_plaintext(config).await;
    let _a = anonymous_from(server.addr, "127.0.0.1").await;
    let _b = anonymous_from(server.addr, "127.0.0.1").await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
        .await
        .unwrap();
    let answer = common::read_to_close(&mut tcp).await;
    assert_eq!(answer[..PREAMBLE_LEN][6], b'E', "refused with mode E");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("server_busy") && text.contains("this address"),
        "{text}"
    );
    let _c = anonymous_from(server.addr, "127.0.0.2").await;
    server.stop().await;
}

#[tokio::test]
async fn anonymous_crowds_leave_room_for_signed_in_users() {
    let (mut config, token) = config_with_user("alice", "chat");
    config.limits.max_connections = 8; // a quarter, 2, is kept for users
    let server = TestServer::start_plaintext(config).await;
    let mut crowd = Vec::new();
    for _ in 0..6 {
        crowd.push(anonymous_from(server.addr, "127.0.0.1").await);
    }
    let mut options = server.options(None);
    options.plaintext = true;
    let err = Client::connect(&options).await.err().expect("refused");
    assert_eq!(refusal_code(&err), Some(ErrorCode::ServerBusy), "{err}");
    assert!(err.to_string().contains("signed-in users"), "{err}");
    let mut options = server.options(Some(token));
    options.plaintext = true;
    let mut alice = Client::connect(&options).await.unwrap();
    alice.ping(1).await.unwrap();
    drop(crowd);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_are_stopped_by_the_failure_limit() {
    let (mut config, token) = config_with_user("alice", "chat");
    config.limits.auth_max_failures = 3;
    config.limits.auth_failure_delay_ms = 1;
    let server = TestServer::start_plaintext(config).await;
    let wrong: ferry::auth::token::Token = format!("alice:{}", "A".repeat(43)).parse().unwrap();
    let _ = token;
    let mut guesses = Vec::new();
    for _ in 0..60 {
        let mut options = server.options(Some(wrong.clone()));
        options.plaintext = true;
        guesses.push(tokio::spawn(async move { Client::connect(&options).await }));
    }
    let (mut checked, mut limited) = (0, 0);
    for guess in guesses {
        match guess.await.unwrap() {
            Err(ClientError::Server(Refusal {
                code: ErrorCode::AuthFailed,
                ..
            })) => checked += 1,
            Err(ClientError::Server(Refusal {
                code: ErrorCode::RateLimited,
                ..
            })) => limited += 1,
            other => panic!("unexpected: {:?}", other.err()),
        }
    }
    let most = 3 + server.state.limits.max_handshakes_per_address;
    assert!(
        checked <= most,
        "{checked} guesses were checked; at most {most} may be"
    );
    assert_eq!(checked + limited, 60);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_and_rooms_are_bounded_for_the_whole_server() {
    use ferry::client::chat::{ChatTarget, join};
    let mut config = ServerConfig::default();
    config.chat.history_total_bytes = 8 * 1024;
    config.chat.max_rooms = 5;
    let server = TestServer::start_plaintext(config).await;
    let line = "x".repeat(1000);
    let mut members = Vec::new();
    for room in 0..5 {
        let client = server.client(None).await;
        let (mut tx, mut rx, _) = join(
            client.into_connection(),
            ChatTarget::Room(format!("room-{room}")),
            &format!("filler-{room}"),
            false,
        )
        .await
        .unwrap();
        for _ in 0..10 {
            common::say_acked(&mut tx, &mut rx, &line).await;
        }
        members.push((tx, rx));
    }
    let held = server.state.chat.history_bytes();
    assert!(
        held <= 8 * 1024,
        "rooms together hold {held} bytes of history, over the 8 KiB budget"
    );
    if common::engine_under_test() != common::TestEngine::Memory {
        // The history is on disk, or each room's stream in Redis (both bounded by [cluster]
        // history_entries): none of it in the server's memory.
        assert_eq!(
            held, 0,
            "a server on disk or Redis keeps no history in memory"
        );
    } else {
        assert!(held > 0, "history is still kept within the budget");
    }
    let client = server.client(None).await;
    let Err(err) = join(
        client.into_connection(),
        ChatTarget::Room("one-too-many".into()),
        "late",
        false,
    )
    .await
    else {
        panic!("a sixth room was created");
    };
    assert_eq!(refusal_code(&err), Some(ErrorCode::ServerBusy), "{err}");
    drop(members);
    server.stop().await;
}

#[tokio::test]
async fn the_whole_server_holds_a_bounded_number_of_file_requests() {
    let mut config = ServerConfig::default();
    config.limits.max_file_requests = 2;
    let server = TestServer::start_plaintext(config).await;
    // ~5 MB of listing: more than socket buffers can absorb (4 MiB at most), so the walks
    // stay in progress until their clients read.
    tree(&server, 20_000);
    let stalled = walks_never_read(&server, 2).await;
    tokio::time::timeout(WAIT, async {
        while server.state.file_requests.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let mut other = anonymous_from(server.addr, "127.0.0.2").await;
    let err = files::list(&mut other, "", false).await.unwrap_err();
    assert_eq!(refusal_code(&err), Some(ErrorCode::ServerBusy), "{err}");
    assert!(err.to_string().contains("the server has"), "{err}");
    drop(stalled);
    // Once the walks are gone, their slots come back.
    tokio::time::timeout(WAIT, async {
        while server.state.file_requests.available_permits() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(files::list(&mut other, "", false).await.is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_room_lines_are_bounded_in_bytes_and_a_member_behind_is_told_what_it_skipped() {
    use ferry::client::chat::{ChatTarget, join};
    // 6 MB: more than the server's largest socket send buffer (4 MiB), so the slow member's
    // task really blocks and the room runs ahead of it.
    const LINES: usize = 2000;
    let mut config = ServerConfig::default();
    config.chat.room_bytes = 64 * 1024;
    config.chat.memory_bytes = 96 * 1024;
    config.chat.flood_burst = 10_000;
    config.chat.flood_per_second = 10_000.0;
    config.chat.history_messages = 0;
    config.chat.send_timeout_ms = 120_000;
    let server = TestServer::start_plaintext(config).await;

    // A member on a tiny window that does not read while the room talks.
    let mut slow = anonymous_from(server.addr, "127.0.0.1").await;
    slow.write_message(&Message::ChatJoin(ChatJoin {
        room: Some("lobby".into()),
        with: None,
        nick: Some("slow".into()),
        history: false,
        since: None,
    }))
    .await
    .unwrap();
    assert!(matches!(
        slow.read_message().await.unwrap(),
        Message::ChatJoined(_)
    ));

    let client = server.client(None).await;
    let (mut tx, mut rx, _) = join(
        client.into_connection(),
        ChatTarget::Room("lobby".into()),
        "speaker",
        false,
    )
    .await
    .unwrap();
    let line = "z".repeat(3000);
    for _ in 0..LINES {
        common::say_acked(&mut tx, &mut rx, &line).await;
    }
    let held = server.state.chat.frame_bytes();
    assert!(
        held <= 96 * 1024 + 4 * 1024,
        "rooms keep {held} bytes of recent lines, over the 96 KiB bound"
    );

    // Now the member reads: every line arrived or was counted as skipped, none vanished.
    let (mut got, mut skipped) = (0usize, 0usize);
    while got + skipped < LINES {
        match tokio::time::timeout(WAIT, slow.read_message())
            .await
            .unwrap()
            .unwrap()
        {
            Message::ChatMessage(_) => got += 1,
            Message::ChatNotice(ChatNotice { text, .. }) if text.contains("lines skipped") => {
                skipped += text
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(got + skipped, LINES);
    assert!(skipped > 0, "the room never ran ahead of the slow member");
    drop((tx, rx));
    server.stop().await;
}

/// A runtime with only 4 blocking threads, as a busy server's pool might be.
fn few_blocking_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// A get of `small` (a few bytes) from `server`, as a fresh client.
async fn small_get_is_served(server: &TestServer) -> bool {
    let work = tempfile::tempdir().unwrap();
    let mut options = server.options(None);
    options.plaintext = true;
    let mut conn = Client::connect(&options).await.unwrap().into_connection();
    let got = tokio::time::timeout(
        WAIT,
        files::get_file(
            &mut conn,
            "small",
            &work.path().join("small"),
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        ),
    )
    .await;
    got.is_ok_and(|got| got.is_ok())
}

/// Runs `test` on [`few_blocking_threads`] and drops the runtime without waiting for blocking
/// threads still parked (the old code's), so a failure is reported rather than hung.
fn on_few_blocking_threads(test: impl std::future::Future<Output = bool>, what: &str) {
    let runtime = few_blocking_threads();
    let served = runtime.block_on(test);
    runtime.shutdown_timeout(Duration::from_secs(1));
    assert!(served, "a get is served while {what}");
}

/// A delta the server sends to a client that never reads it must not hold a blocking thread:
/// the old pass cut the file on one and parked there when the connection stopped taking frames,
/// so 8 such clients stopped every other get.
#[test]
fn deltas_to_clients_that_never_read_hold_no_blocking_thread() {
    let test = async {
        let server = TestServer::start_plaintext(ServerConfig::default()).await;
        let root = server.dir.path().join("root");
        std::fs::write(root.join("small"), b"small file").unwrap();
        // Noise, so no chunk matches the made-up base and all of it goes as literal bytes:
        // far more than the socket buffers take.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let big: Vec<u8> = (0..32 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(root.join("big"), &big).unwrap();
        let mut stalled = Vec::new();
        for _ in 0..8 {
            // Within the wait: with its blocking threads held, the old server could not even
            // open the file for the next one.
            match tokio::time::timeout(WAIT, stalled_get(&server)).await {
                Ok(conn) => stalled.push(conn),
                Err(_) => {
                    drop(stalled);
                    server.stop().await;
                    return false;
                }
            }
        }
        server.wait_for_active(8).await;
        let served = small_get_is_served(&server).await;
        drop(stalled);
        server.stop().await;
        served
    };
    on_few_blocking_threads(test, "deltas wait for clients that do not read");
}

/// A delta the server receives from a client that stops sending must not hold a blocking
/// thread either: the old builder waited on one for the next frame.
#[test]
fn deltas_from_clients_that_stop_sending_hold_no_blocking_thread() {
    let test = async {
        let (config, token) = config_with_user("alice", "read,write");
        let server = TestServer::start_plaintext(config).await;
        let root = server.dir.path().join("root");
        std::fs::write(root.join("small"), b"small file").unwrap();
        let mut stalled = Vec::new();
        for n in 0..8 {
            // Each stalled put is set up within the wait: with its blocking threads held, the
            // old server could not even sign the next base.
            let set_up = tokio::time::timeout(WAIT, stalled_put(&server, &token, n)).await;
            match set_up {
                Ok(conn) => stalled.push(conn),
                Err(_) => {
                    drop(stalled);
                    server.stop().await;
                    return false;
                }
            }
        }
        server.wait_for_active(8).await;
        let served = small_get_is_served(&server).await;
        drop(stalled);
        server.stop().await;
        served
    };
    on_few_blocking_threads(test, "deltas wait for clients that stopped sending");
}

/// A delta put to `base-{n}` (a file the server holds) that sends one literal frame after
/// `put_start` and then nothing more.
async fn stalled_put(
    server: &TestServer,
    token: &ferry::auth::token::Token,
    n: u8,
) -> Connection<ferry::connection::BoxedStream> {
    let root = server.dir.path().join("root");
    let path = format!("base-{n}");
    std::fs::write(root.join(&path), vec![n; 256 * 1024]).unwrap();
    let mut options = server.options(Some(token.clone()));
    options.plaintext = true;
    let mut conn = Client::connect(&options).await.unwrap().into_connection();
    conn.write_message(&Message::Put(ferry::protocol::Put {
        path,
        size: 1 << 20,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: false,
        delta: true,
        avg: None,
        chunk_hash: None,
        compress: false,
    }))
    .await
    .unwrap();
    let base = match conn.read_message().await.unwrap() {
        Message::PutReady(ready) => ready.base.expect("a base is offered"),
        other => panic!("no put_ready: {other:?}"),
    };
    ferry::transfer::delta::wire::read_signature(&mut conn, &base)
        .await
        .unwrap();
    conn.write_message(&Message::PutStart(ferry::protocol::PutStart {
        offset: 0,
        delta: true,
    }))
    .await
    .unwrap();
    // A first literal frame, then nothing more.
    conn.write_data(0, &[1u8; 1000]).await.unwrap();
    conn.flush().await.unwrap();
    conn
}

/// A delta get of `big` against a made-up base whose data is never read past `get_ready`.
async fn stalled_get(server: &TestServer) -> Connection<TcpStream> {
    let mut conn = anonymous_from(server.addr, "127.0.0.1").await;
    conn.write_message(&Message::Get(Get {
        path: "big".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: Some(ferry::protocol::DeltaBase {
            size: 1 << 20,
            avg: 1024,
            chunks: 1,
            chunk_hash: Default::default(),
        }),
        signing: None,
        compress: false,
    }))
    .await
    .unwrap();
    conn.write_data(0, &[7u8; 8]).await.unwrap();
    conn.flush().await.unwrap();
    // The delta is under way: its answer came, and the data behind it is never read.
    match conn.read_message().await.unwrap() {
        Message::GetReady(ready) => assert!(ready.delta, "{ready:?}"),
        other => panic!("no get_ready: {other:?}"),
    }
    conn
}
