//! Faults: processes killed mid-transfer, a disk that fills, slow and silent clients. Whatever
//! happens, nothing but a complete, verified file sits under a final name, a re-run completes,
//! and the server keeps serving.

mod common;

use ferry::protocol::{Hello, Ping, Put, PutReady, PutStart, Refusal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ServerProcess, TestServer, WAIT, ferry_bin, pattern, raw_session};
use ferry::config::ServerConfig;
use ferry::protocol::{ErrorCode, HashAlgorithm, Message, Mode, Preamble};
use ferry::transfer::partial::partial_path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A config file letting anonymous clients read and write.
fn writable_config(dir: &Path) -> PathBuf {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        "[anonymous]\nallow = [\"chat\", \"read\", \"write\"]\n",
    )
    .unwrap();
    path
}

/// Fails with the offending names if anything in `dir` other than `allowed` names or partials
/// of them is there.
fn only_expected_files(dir: &Path, allowed: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let ok = allowed
            .iter()
            .any(|a| name == *a || name.starts_with(&format!(".{a}.ferry-part")));
        assert!(ok, "unexpected file '{name}' in {}", dir.display());
    }
}

/// The file under its final name is either absent or exactly `data`: never a half.
fn absent_or_whole(path: &Path, data: &[u8], context: &str) {
    if let Ok(found) = std::fs::read(path) {
        assert!(
            found == data,
            "{context}: {} holds {} bytes that are not the file ({} bytes)",
            path.display(),
            found.len(),
            data.len()
        );
    }
}

fn client(server: &ServerProcess, home: &Path, verb: &str) -> std::process::Command {
    let mut cmd = ferry_bin(home);
    cmd.args([verb, "--server", &server.addr.to_string(), "--plaintext"]);
    cmd
}

/// Runs `cmd` to completion; returns its stderr, failing the test if it failed.
fn complete(mut cmd: std::process::Command, context: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{context}: the re-run failed: {stderr}"
    );
    stderr
}

/// When to kill: a time after the client starts (which reaches the handshake, the request and
/// the rename as well as the data), or the moment a partial has grown to a size (which reaches
/// the middle of the data however fast or slow the machine is today).
#[derive(Debug)]
enum KillPoint {
    After(Duration),
    PartialReaches(PathBuf, u64),
}

/// Starts `cmd`, kills it (or the server) at `point`, and waits for the client to end.
fn interrupt(
    mut cmd: std::process::Command,
    point: &KillPoint,
    server: Option<&mut ServerProcess>,
) -> std::process::ExitStatus {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    match point {
        // The delay is the kill point under test, not a wait for something to happen.
        KillPoint::After(delay) => std::thread::sleep(*delay),
        KillPoint::PartialReaches(partial, size) => poll_until("the transfer stalled", || {
            child.try_wait().unwrap().is_some()
                || std::fs::metadata(partial).map_or(0, |m| m.len()) >= *size
        }),
    }
    match server {
        None => {
            let _ = child.kill();
        }
        Some(server) => server.kill(),
    }
    poll_until("the client hung after the kill", || {
        child.try_wait().unwrap().is_some()
    });
    child.wait().unwrap()
}

/// Checks `done` every millisecond until it holds, failing with `stuck` after [`WAIT`]. (What it
/// waits for — a file growing, another process ending — has no event to await.)
fn poll_until(stuck: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{stuck}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `FERRY_FAULT_SEED`, to reproduce a failing run, or one from the clock.
fn fault_seed() -> u64 {
    std::env::var("FERRY_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// A small deterministic generator, so a failing kill point can be reproduced from its seed.
struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn killed_at_100_random_points_a_rerun_completes_with_identical_bytes() {
    const POINTS: usize = 100;
    let seed = fault_seed();
    let mut random = XorShift(seed);
    let config_dir = tempfile::tempdir().unwrap();
    let config = writable_config(config_dir.path());
    let mut server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let local = work.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let data = pattern(4 << 20, seed);
    std::fs::write(server.root.join("big"), &data).unwrap();
    let source = work.path().join("source");
    std::fs::write(&source, &data).unwrap();
    let got = local.join("big");
    let get = |server: &ServerProcess| {
        let mut cmd = client(server, &home, "get");
        cmd.arg("big").arg(&got);
        cmd
    };
    let put = |server: &ServerProcess| {
        let mut cmd = client(server, &home, "put");
        cmd.arg(&source).arg("up");
        cmd
    };

    // Timed kill points spread over one whole transfer, and a little past it.
    let started = Instant::now();
    complete(get(&server), "calibration");
    let span = started.elapsed().as_micros() as u64 * 5 / 4;
    std::fs::remove_file(&got).unwrap();

    let mut resumed = 0;
    for point in 0..POINTS {
        let kill_server = point % 4 >= 2;
        let is_get = point % 2 == 0;
        // The root is the same directory across restarts.
        let target = if is_get {
            got.clone()
        } else {
            server.root.join("up")
        };
        let kill_point = if (point / 4) % 2 == 0 {
            KillPoint::After(Duration::from_micros(random.below(span)))
        } else {
            KillPoint::PartialReaches(
                partial_path(&target),
                1 + random.below(data.len() as u64 - 1),
            )
        };
        let context = format!(
            "seed {seed}, point {point}: {} killed into a {} at {kill_point:?}",
            if kill_server { "server" } else { "client" },
            if is_get { "get" } else { "put" }
        );
        let cmd = if is_get { get(&server) } else { put(&server) };
        interrupt(cmd, &kill_point, kill_server.then_some(&mut server));
        // Whatever was killed, the final names hold nothing or everything.
        absent_or_whole(&got, &data, &context);
        absent_or_whole(&server.root.join("up"), &data, &context);
        only_expected_files(&local, &["big"]);
        if kill_server {
            server = server.restart();
        }
        let stderr = complete(if is_get { get(&server) } else { put(&server) }, &context);
        if stderr.contains("resuming at") {
            resumed += 1;
        }
        assert!(
            std::fs::read(&target).unwrap() == data,
            "{context}: re-run bytes differ"
        );
        std::fs::remove_file(&target).unwrap();
    }
    assert!(
        resumed > 0,
        "seed {seed}: no re-run resumed a verified partial"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_gets_a_clear_error_nothing_is_kept_and_the_server_serves_on() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = writable_config(config_dir.path());
    let server =
        ServerProcess::start_on_tmpfs("8m", &["--plaintext", "--config", config.to_str().unwrap()]);
    let disk = server.root_seen_from_here();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let put = |local: &Path, remote: &str| {
        let mut cmd = client(&server, &home, "put");
        cmd.arg(local).arg(remote);
        cmd
    };
    let keep = pattern(1 << 20, 1);
    std::fs::write(work.path().join("keep"), &keep).unwrap();
    complete(put(&work.path().join("keep"), "keep"), "a first file");

    // Too big for what is free: refused before a byte moves.
    std::fs::write(work.path().join("huge"), pattern(12 << 20, 2)).unwrap();
    let out = common::output(put(&work.path().join("huge"), "huge")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no space for 'huge'"), "{stderr}");
    only_expected_files(&disk, &["keep"]);
    assert!(!disk.join(".huge.ferry-part").exists());

    // Fits when announced, but the disk fills while it is written.
    let mut conn = raw_session(server.addr).await;
    let size = 5 << 20;
    let body = pattern(size, 3);
    conn.write_message(&Message::Put(Put {
        path: "mid".into(),
        size: size as u64,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: false,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: false,
    }))
    .await
    .unwrap();
    let ready = conn.read_message().await.unwrap();
    assert_eq!(
        ready,
        Message::PutReady(PutReady {
            offset: 0,
            prefix_hash: None,
            base: None,
            compress: false,
        })
    );
    let filler = pattern(4 << 20, 4);
    std::fs::write(disk.join("filler"), &filler).unwrap();
    conn.write_message(&Message::PutStart(PutStart {
        offset: 0,
        delta: false,
    }))
    .await
    .unwrap();
    for chunk in body.chunks(256 << 10) {
        conn.write_data(0, chunk).await.unwrap();
    }
    conn.flush().await.unwrap();
    let answer = tokio::time::timeout(WAIT, conn.read_message())
        .await
        .expect("an answer in time")
        .unwrap();
    match answer {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::NoSpace, "{message}");
            assert!(
                message.contains("filled up while writing 'mid'"),
                "{message}"
            );
        }
        other => panic!("expected no_space, got {other:?}"),
    }
    drop(conn);
    // Nothing under the final name, the partial gone (its space given back), the rest intact.
    only_expected_files(&disk, &["keep", "filler"]);
    assert!(std::fs::read(disk.join("keep")).unwrap() == keep);
    assert!(std::fs::read(disk.join("filler")).unwrap() == filler);

    // The server serves on: once space is freed, a put succeeds and reads back whole.
    std::fs::remove_file(disk.join("filler")).unwrap();
    let again = pattern(3 << 20, 5);
    std::fs::write(work.path().join("again"), &again).unwrap();
    complete(
        put(&work.path().join("again"), "again"),
        "after space was freed",
    );
    assert!(std::fs::read(disk.join("again")).unwrap() == again);
}

/// Sends `bytes` one at a time, `gap` apart, until the peer closes; returns how many went out
/// before it did (all of them if it never closed).
async fn dribble(mut tcp: TcpStream, bytes: Vec<u8>, gap: Duration) -> usize {
    let (mut read, mut write) = tcp.split();
    let mut sink = Vec::new();
    let closed = read.read_to_end(&mut sink);
    tokio::pin!(closed);
    for (sent, byte) in bytes.iter().enumerate() {
        tokio::select! {
            _ = &mut closed => return sent,
            _ = tokio::time::sleep(gap) => {}
        }
        if write.write_all(&[*byte]).await.is_err() {
            return sent;
        }
    }
    let _ = tokio::time::timeout(WAIT, closed).await;
    bytes.len()
}

fn hello_frame() -> Vec<u8> {
    Message::Hello(Hello {
        client: "slowloris".repeat(8),
        user: None,
        nonce: None,
        keys: Vec::new(),
    })
    .to_frame()
}

#[tokio::test]
async fn a_handshake_dribbled_byte_by_byte_is_cut_at_the_handshake_timeout() {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 300;
    let server = TestServer::start_plaintext(config).await;
    let mut bytes = Preamble::new(Mode::Plaintext).encode().to_vec();
    bytes.extend(hello_frame());
    let total = bytes.len();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    // Each byte alone arrives well within any per-read timeout; the whole would take ~2 s.
    let sent = dribble(tcp, bytes, Duration::from_millis(20)).await;
    assert!(sent < total, "the server waited for all {total} bytes");
    server.wait_for_active(0).await;
}

#[tokio::test]
async fn a_request_dribbled_byte_by_byte_is_cut_at_the_idle_timeout() {
    let mut config = ServerConfig::default();
    config.limits.idle_timeout_ms = 300;
    let server = TestServer::start_plaintext(config).await;
    let conn = raw_session(server.addr).await;
    let mut frame = Message::Ping(Ping { seq: u64::MAX }).to_frame();
    frame.extend(frame.clone()); // two pings: ~1.3 s of dribbling
    let total = frame.len();
    let sent = dribble(conn.into_inner(), frame, Duration::from_millis(20)).await;
    assert!(sent < total, "the server waited for all {total} bytes");
    server.wait_for_active(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_do_not_keep_others_out_and_are_all_reaped() {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 500;
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for i in 0..200 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        // Half send one byte of the preamble and stop; half send nothing at all.
        if i % 2 == 0 {
            tcp.write_all(b"F").await.unwrap();
        }
        held.push(tcp);
    }
    // Meanwhile a real client gets in and is answered.
    let mut client = server.client(None).await;
    client.ping(1).await.unwrap();
    drop(client);
    // Every one of them is closed by the server (the test holds them all open).
    server.wait_for_active(0).await;
    drop(held);
}

/// Writes the tree the tree fault test moves: many small files (more than one pipelined batch
/// and one commit), two between the small and the large, and one too large for a `whole` put.
fn fault_tree(dir: &Path, seed: u64) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..150u64 {
        let sub = dir.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        files.push((
            sub.join(format!("f{i}")),
            pattern(4096 + i as usize, seed + i),
        ));
    }
    files.push((dir.join("mid1"), pattern(1 << 20, seed + 1000)));
    files.push((dir.join("mid2"), pattern(2 << 20, seed + 1001)));
    files.push((dir.join("large"), pattern(5 << 20, seed + 1002)));
    for (path, data) in &files {
        std::fs::write(path, data).unwrap();
    }
    files
        .into_iter()
        .map(|(path, data)| (path.strip_prefix(dir).unwrap().to_path_buf(), data))
        .collect()
}

/// Fails unless every file of `tree` under `dir` is absent or whole, and nothing but the
/// tree's files and their partials is there.
fn tree_absent_or_whole(dir: &Path, tree: &[(PathBuf, Vec<u8>)], context: &str) {
    for (rel, data) in tree {
        absent_or_whole(&dir.join(rel), data, context);
    }
    if !dir.exists() {
        return;
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = path.strip_prefix(dir).unwrap();
            let known = tree.iter().any(|(r, _)| r == rel);
            assert!(
                known || name.contains(".ferry-part"),
                "{context}: unexpected file {}",
                path.display()
            );
        }
    }
}

/// TCP connections to `port` on 127.0.0.1 the server still holds (its side, not yet closed).
fn sessions_open(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Established, or closing after the peer went (the session has not closed yet).
            fields.get(1) == Some(&local.as_str())
                && matches!(fields.get(3), Some(&"01") | Some(&"08"))
        })
        .count()
}

#[test]
fn trees_killed_at_100_random_points_hold_only_whole_files_and_a_rerun_completes() {
    const POINTS: usize = 100;
    let seed = fault_seed();
    let mut random = XorShift(seed);
    let config_dir = tempfile::tempdir().unwrap();
    let config = writable_config(config_dir.path());
    let mut server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let local = work.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let tree = fault_tree(&server.root.join("tree"), seed);
    let source = work.path().join("up");
    fault_tree(&source, seed);
    let got = local.join("tree");
    let put_at = server.root.join("up");
    let get = |server: &ServerProcess| {
        let mut cmd = client(server, &home, "get");
        cmd.arg("-r").arg("tree").arg(&local);
        cmd
    };
    let put = |server: &ServerProcess| {
        let mut cmd = client(server, &home, "put");
        cmd.arg("-r").arg(&source).arg(".");
        cmd
    };
    let started = Instant::now();
    complete(get(&server), "calibration");
    complete(put(&server), "calibration");
    let span = started.elapsed().as_micros() as u64 * 5 / 8;
    tree_absent_or_whole(&got, &tree, "calibration");
    tree_absent_or_whole(&put_at, &tree, "calibration");
    assert!(
        tree.iter()
            .all(|(rel, _)| got.join(rel).exists() && put_at.join(rel).exists())
    );
    std::fs::remove_dir_all(&got).unwrap();
    std::fs::remove_dir_all(&put_at).unwrap();

    for point in 0..POINTS {
        let is_get = point % 2 == 0;
        let kill_server = point % 4 >= 2;
        let kill_point = KillPoint::After(Duration::from_micros(random.below(span)));
        let context = format!(
            "seed {seed}, point {point}: {} killed into a {} -r at {kill_point:?}",
            if kill_server { "server" } else { "client" },
            if is_get { "get" } else { "put" }
        );
        let cmd = if is_get { get(&server) } else { put(&server) };
        interrupt(cmd, &kill_point, kill_server.then_some(&mut server));
        if kill_server {
            server = server.restart();
        } else {
            // The killed client's session may still be finishing a batch of its puts (a
            // commit renames them into place): it ends, and closes its side, before the tree
            // is checked or removed.
            poll_until("the server kept the killed client's session", || {
                sessions_open(server.addr.port()) == 0
            });
        }
        tree_absent_or_whole(&got, &tree, &context);
        tree_absent_or_whole(&put_at, &tree, &context);
        complete(if is_get { get(&server) } else { put(&server) }, &context);
        let target = if is_get { &got } else { &put_at };
        for (rel, data) in &tree {
            assert!(
                std::fs::read(target.join(rel)).unwrap() == *data,
                "{context}: re-run bytes of {} differ",
                rel.display()
            );
        }
        std::fs::remove_dir_all(target).unwrap_or_else(|e| panic!("{context}: {e}"));
    }
}
