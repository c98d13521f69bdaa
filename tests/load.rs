//! Load, behind a flag (ignored by default; about a minute on two cores):
//!
//! `cargo nextest run --release --run-ignored only -E 'test(ten_thousand_clients)' --no-capture`
//!
//! 10,000 concurrent TLS clients against the real binary, for a bounded time: a third chat in
//! rooms of about fifty (a line a second each, every line acked), a third run commands (one
//! every fifteen seconds each, output checked: ~220 process starts a second in all), a third
//! put, get back and remove small files (a round every five seconds each, bytes checked: ~670
//! durable writes a second). No operation may fail; the round runs twice, and after each the
//! server's descriptors return to their baseline and its memory to within 32 MiB of it, the
//! second round leaving no more behind than the first (nothing is kept per client).
//! FERRY_LOAD_CLIENTS and FERRY_LOAD_SECS change the size and length.

mod common;

use ferry::transfer::hash_cache::HashCache;

use ferry::protocol::{ChatAck, Refusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ServerProcess, WAIT};
use ferry::client::chat::{self as chat, ChatTarget};
use ferry::client::connect_many;
use ferry::client::exec::{self as exec, ExecOutcome};
use ferry::client::files::{self as files, NoProgress};
use ferry::client::{Client, ClientError, ClientOptions};
use ferry::config::add_user;
use ferry::protocol::{Exec, HashAlgorithm, Message, Permissions};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Operations done and the first failure seen, shared by all clients.
#[derive(Default)]
struct Tally {
    chat_lines: AtomicU64,
    execs: AtomicU64,
    file_rounds: AtomicU64,
    failures: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().unwrap().get_or_insert(what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: run explicitly (see the file's doc)"]
async fn ten_thousand_clients_mixed_chat_exec_and_files() {
    let clients = env_or("FERRY_LOAD_CLIENTS", 10_000) as usize;
    let seconds = env_or("FERRY_LOAD_SECS", 20);
    ferry::fd_limit::raise_to_hard_limit();

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    let token = add_user(
        &config,
        "load",
        Permissions::parse_list("chat,read,write,exec").unwrap(),
    )
    .unwrap();
    // Every load client comes from 127.0.0.1: lift the per-address limits for them.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[limits]\nmax_connections_per_address = 16384\nmax_file_requests_per_address = 16384\nmax_handshakes_per_address = 16384\n",
    );
    std::fs::write(&config, text).unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]);
    let pid = server.pid();
    let options = ClientOptions {
        server: server.addr.to_string(),
        token: Some(token),
        plaintext: false,
        home: server.dir.path().join("home"),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    };
    // The baseline is taken once the server has served one session (pin, lazy state).
    Client::connect(&options)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let base_fds = open_fds(pid);
    let base_kib = server.status_kib("VmRSS");

    // Two rounds of the same load: after each, descriptors back to the baseline and memory
    // back near it; and the second round leaves no more behind than the first (no per-client
    // leak hiding under the tolerance).
    let mut after_first = 0;
    for round in 1..=2 {
        run_round(&options, clients, seconds).await;
        let settle = Instant::now() + WAIT;
        while open_fds(pid) > base_fds {
            assert!(
                Instant::now() < settle,
                "round {round}: server fds stayed at {} (baseline {base_fds})",
                open_fds(pid)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The allocator hands freed pages back within seconds (jemalloc's background decay):
        // memory must come back to within 32 MiB of the idle server's (from ~180 MiB in use).
        let settle = Instant::now() + Duration::from_secs(60);
        let mut kib = server.status_kib("VmRSS");
        while kib > base_kib + 32 * 1024 {
            assert!(
                Instant::now() < settle,
                "round {round}: server memory stayed at {kib} KiB (idle: {base_kib} KiB)"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            kib = server.status_kib("VmRSS");
        }
        println!(
            "round {round} over: server fds {} (baseline {base_fds}), RSS {kib} KiB (at start {base_kib} KiB)",
            open_fds(pid)
        );
        if round == 1 {
            after_first = kib;
        } else {
            let grown = kib.saturating_sub(after_first) * 1024 / clients as u64;
            assert!(
                grown < 1024,
                "memory grew by {grown} bytes per client in the second round ({after_first} -> {kib} KiB)"
            );
        }
    }
}

/// One round: opens `clients` sessions, runs the mixed load for `seconds`, checks the tally.
async fn run_round(options: &ClientOptions, clients: usize, seconds: u64) {
    let opened_at = Instant::now();
    let (sessions, failure) = connect_many(options, clients, 64).await;
    assert!(failure.is_none(), "opening {clients} sessions: {failure:?}");
    println!(
        "{clients} TLS sessions opened in {:.1?}",
        opened_at.elapsed()
    );

    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let (tally, options) = (Arc::clone(&tally), options.clone());
        // Spread each role's first operation over its period, as real clients would be.
        let offset = Duration::from_millis((i as u64 * 7919) % 1000);
        tasks.spawn(async move {
            let result = match i % 3 {
                0 => chatter(i, session, offset, deadline, &tally).await,
                1 => runner(i, session, &options, offset * 15, deadline, &tally).await,
                _ => mover(i, session, offset * 5, deadline, &tally).await,
            };
            if let Err(e) = result {
                tally.fail(format!("client {i}: {e}"));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let (lines, execs, rounds) = (
        tally.chat_lines.load(Ordering::Relaxed),
        tally.execs.load(Ordering::Relaxed),
        tally.file_rounds.load(Ordering::Relaxed),
    );
    println!(
        "{seconds} s: {lines} chat lines acked, {execs} commands run, {rounds} put/get rounds; \
         {} failures",
        tally.failures.load(Ordering::Relaxed)
    );
    assert_eq!(
        tally.failures.load(Ordering::Relaxed),
        0,
        "first failure: {:?}",
        tally.first_failure.lock().unwrap()
    );
    assert!(lines > 0 && execs > 0 && rounds > 0);
}

/// Says a line a second in its room and waits for each ack, reading everything else.
async fn chatter(
    i: usize,
    session: Client,
    offset: Duration,
    deadline: Instant,
    tally: &Tally,
) -> Result<(), ClientError> {
    let room = format!("load-{}", i % 67);
    let (mut sender, mut receiver, _) = chat::join(
        session.into_connection(),
        ChatTarget::Room(room),
        &format!("c{i}"),
        false,
    )
    .await?;
    let mut next = Instant::now() + offset;
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let id = sender.say(&format!("line from c{i}")).await?;
        loop {
            match receiver.next().await? {
                Some(Message::ChatAck(ChatAck { id: acked })) if acked == id => break,
                Some(Message::Error(Refusal { message, .. })) => {
                    return Err(ClientError::Protocol(message));
                }
                Some(_) => {}
                None => return Err(ClientError::Protocol("closed".into())),
            }
        }
        tally.chat_lines.fetch_add(1, Ordering::Relaxed);
        next += Duration::from_secs(1);
    }
    // Keep reading until the room's last lines are through, then leave.
    sender.leave().await?;
    loop {
        match receiver.next().await? {
            Some(Message::ChatLeft) | None => return Ok(()),
            Some(_) => {}
        }
    }
}

/// Runs `echo` every fifteen seconds, each on a fresh session (as `ferry exec` does).
async fn runner(
    i: usize,
    session: Client,
    options: &ClientOptions,
    offset: Duration,
    deadline: Instant,
    tally: &Tally,
) -> Result<(), ClientError> {
    let mut session = Some(session);
    let mut next = Instant::now() + offset;
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let client = match session.take() {
            Some(client) => client,
            None => Client::connect(options).await?,
        };
        let (events, none) = tokio::sync::mpsc::channel(1);
        drop(events);
        let mut out = Vec::new();
        let spec = Exec {
            argv: vec!["echo".into(), format!("load-{i}")],
            shell: false,
            tty: None,
            timeout_ms: Some(exec::timeout_ms(WAIT)),
        };
        let outcome = exec::run(
            client.into_connection(),
            spec,
            tokio::io::empty(),
            &mut out,
            tokio::io::sink(),
            none,
        )
        .await?;
        if outcome != ExecOutcome::Exited(0) || out != format!("load-{i}\n").as_bytes() {
            return Err(ClientError::Protocol(format!(
                "echo gave {outcome:?} and {:?}",
                String::from_utf8_lossy(&out)
            )));
        }
        tally.execs.fetch_add(1, Ordering::Relaxed);
        next += Duration::from_secs(15);
    }
    Ok(())
}

/// Puts a small file, gets it back, compares and removes it, every five seconds, on one session.
async fn mover(
    i: usize,
    mut session: Client,
    offset: Duration,
    deadline: Instant,
    tally: &Tally,
) -> Result<(), ClientError> {
    let dir = tempfile::tempdir().map_err(|e| ClientError::Protocol(e.to_string()))?;
    let source = dir.path().join("source");
    let back = dir.path().join("back");
    let body: Vec<u8> = (0..4096u32).map(|b| (b as usize * 31 + i) as u8).collect();
    std::fs::write(&source, &body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let remote = format!("load-{i}.bin");
    let mut next = Instant::now() + offset;
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let conn = session.connection();
        files::put_file(
            conn,
            &HashCache::in_memory(),
            &source,
            &remote,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await?;
        files::get_file(
            conn,
            &remote,
            &back,
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        )
        .await?;
        files::remove(conn, &remote).await?;
        if std::fs::read(&back).ok().as_deref() != Some(&body[..]) {
            return Err(ClientError::Protocol("the file came back different".into()));
        }
        let _ = std::fs::remove_file(&back);
        tally.file_rounds.fetch_add(1, Ordering::Relaxed);
        next += Duration::from_secs(5);
    }
    session.close().await
}
