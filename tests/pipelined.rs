//! Pipelined requests: `whole` puts sent back to back are answered in order, each refusal in
//! its place with the session still in step; trees of many small files go both ways whole,
//! verified, and with no partial left behind.

mod common;

use std::path::Path;

use common::{TestServer, config_with_user, pattern, raw_session};
use ferry::client::files::NoProgress;
use ferry::config::ServerConfig;
use ferry::protocol::{ErrorCode, HashAlgorithm, Message, Permission, Ping, Put, PutEnd};
use ferry::transfer::chunks::CHUNK;
use tokio::net::TcpStream;

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Sends one whole put of `bytes` to `path` without reading anything; `claim` is the hash
/// announced in `put_end` (the true one unless a test lies).
async fn send_whole(
    conn: &mut ferry::connection::Connection<TcpStream>,
    path: &str,
    bytes: &[u8],
    claim: &str,
) {
    conn.write_message(&Message::Put(Put {
        path: path.into(),
        size: bytes.len() as u64,
        mode: 0o640,
        mtime_ns: 1_600_000_000_000_000_000,
        hash: HashAlgorithm::Blake3,
        whole: true,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: false,
    }))
    .await
    .unwrap();
    for chunk in bytes.chunks(64 * 1024) {
        conn.write_data(0, chunk).await.unwrap();
    }
    conn.write_message(&Message::PutEnd(PutEnd { hash: claim.into() }))
        .await
        .unwrap();
}

fn writable() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.anonymous.allow = vec![Permission::Read, Permission::Write];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_puts_are_answered_in_order_and_a_refused_one_leaves_the_session_in_step() {
    let server = TestServer::start_plaintext(writable()).await;
    let root = server.dir.path().join("root");
    std::fs::create_dir(root.join("a_dir")).unwrap();
    let mut conn = raw_session(server.addr).await;
    let files: Vec<Vec<u8>> = (0..200).map(|i| pattern(100 + i * 37, i as u64)).collect();
    let large = pattern(3 * CHUNK + 1, 99);
    // All of it is written before a single answer is read: the server must not wait for the
    // client to read, nor answer out of order.
    let mut expected = Vec::new();
    for (i, bytes) in files.iter().enumerate() {
        let (path, claim, outcome) = match i {
            // A directory is in the way: refused before the data, which is still read past.
            50 => (
                "a_dir".to_string(),
                blake3_hex(bytes),
                Err(ErrorCode::NotAFile),
            ),
            // The client lies about the hash: refused after the data.
            120 => (format!("f{i}"), "0".repeat(64), Err(ErrorCode::Integrity)),
            // Outside the root.
            150 => (
                "../escape".to_string(),
                blake3_hex(bytes),
                Err(ErrorCode::BadPath),
            ),
            _ => (format!("f{i}"), blake3_hex(bytes), Ok(())),
        };
        send_whole(&mut conn, &path, bytes, &claim).await;
        expected.push((path, outcome));
        if i == 100 {
            send_whole(&mut conn, "large", &large, &blake3_hex(&large)).await;
            expected.push(("large".into(), Ok(())));
        }
    }
    conn.write_message(&Message::Ping(Ping { seq: 7 }))
        .await
        .unwrap();
    for (path, outcome) in &expected {
        match (conn.read_message().await.unwrap(), outcome) {
            (Message::PutDone(done), Ok(())) => {
                let on_disk = std::fs::read(root.join(path)).unwrap();
                assert_eq!(done.hash, blake3_hex(&on_disk), "{path}");
                assert_eq!(done.size, on_disk.len() as u64, "{path}");
            }
            (Message::Error(refusal), Err(code)) => assert_eq!(refusal.code, *code, "{path}"),
            (other, outcome) => panic!("{path}: expected {outcome:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Pong(p) if p.seq == 7
    ));
    for (i, bytes) in files.iter().enumerate() {
        let path = root.join(format!("f{i}"));
        match i {
            50 | 150 => {}
            120 => assert!(!path.exists(), "a file that failed its hash is not kept"),
            _ => {
                assert_eq!(&std::fs::read(&path).unwrap(), bytes, "f{i}");
                use std::os::unix::fs::PermissionsExt;
                let meta = std::fs::metadata(&path).unwrap();
                assert_eq!(meta.permissions().mode() & 0o777, 0o640);
            }
        }
    }
    assert_eq!(std::fs::read(root.join("large")).unwrap(), large);
    assert!(
        common::partials_under(&root).is_empty(),
        "{:?}",
        common::partials_under(&root)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_put_without_the_right_is_refused_in_step() {
    let mut config = ServerConfig::default();
    config.anonymous.allow = vec![Permission::Read];
    let server = TestServer::start_plaintext(config).await;
    let mut conn = raw_session(server.addr).await;
    let bytes = pattern(5 * CHUNK, 1);
    send_whole(&mut conn, "nope", &bytes, &blake3_hex(&bytes)).await;
    conn.write_message(&Message::Ping(Ping { seq: 1 }))
        .await
        .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Error(r) if r.code == ErrorCode::PermissionDenied
    ));
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Pong(_)
    ));
    assert!(!server.dir.path().join("root").join("nope").exists());
}

/// Writes a tree of `small` files of a few KiB over a few directories, plus files on both
/// sides of the `whole` put limit; returns each file's relative path and bytes.
fn tree(dir: &Path, small: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..small {
        files.push((
            format!("d{}/s{i}", i % 7),
            pattern(1 + i * 13 % 9000, i as u64),
        ));
    }
    files.push(("big/at_limit".into(), pattern(4 << 20, 1)));
    files.push(("big/over_limit".into(), pattern((4 << 20) + 1, 2)));
    files.push(("empty".into(), Vec::new()));
    for (rel, bytes) in &files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_of_many_small_files_go_both_ways_whole_and_verified() {
    let (config, token) = config_with_user("writer", "read,write");
    let server = TestServer::start(config).await;
    let root = server.dir.path().join("root");
    let work = tempfile::tempdir().unwrap();
    // More files than one pipelined window, one server batch and one client commit.
    let files = tree(&work.path().join("src"), 700);
    let mut client = server.client(Some(token)).await;
    let put = client
        .files()
        .put_tree(
            &work.path().join("src"),
            "up",
            &ferry::client::tree::TreeOptions {
                delta: false,
                ..ferry::client::tree::TreeOptions::new(
                    HashAlgorithm::Blake3,
                    ferry::client::files::Check::Never,
                )
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(put.files.len(), files.len());
    let got = client
        .files()
        .get_tree(
            "up",
            &work.path().join("back"),
            &ferry::client::tree::TreeOptions {
                delta: false,
                ..ferry::client::tree::TreeOptions::new(
                    HashAlgorithm::Blake3,
                    ferry::client::files::Check::Never,
                )
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(got.files.len(), files.len());
    for (rel, bytes) in &files {
        assert_eq!(
            &std::fs::read(root.join("up").join(rel)).unwrap(),
            bytes,
            "{rel}"
        );
        assert_eq!(
            &std::fs::read(work.path().join("back").join(rel)).unwrap(),
            bytes,
            "{rel}"
        );
    }
    for (rel, transfer) in got.files.iter().chain(&put.files) {
        let bytes = &files.iter().find(|(r, _)| r == rel).unwrap().1;
        assert_eq!(transfer.hash, blake3_hex(bytes), "{rel}");
    }
    assert!(common::partials_under(&root).is_empty());
    assert!(common::partials_under(work.path()).is_empty());
    // Again over the copies both ends now hold, every file changed: each is replaced whole.
    let changed: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(rel, bytes)| {
            let mut new = bytes.clone();
            new.push(b'!');
            std::fs::write(work.path().join("src").join(rel), &new).unwrap();
            (rel.clone(), new)
        })
        .collect();
    let check = ferry::client::files::Check::Never;
    let src = work.path().join("src");
    let mut again = client.files();
    let put = again
        .put_tree(
            &src,
            "up",
            &ferry::client::tree::TreeOptions {
                delta: false,
                ..ferry::client::tree::TreeOptions::new(HashAlgorithm::Blake3, check)
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(put.files.len(), changed.len());
    let back = work.path().join("back");
    let got = again
        .get_tree(
            "up",
            &back,
            &ferry::client::tree::TreeOptions {
                delta: false,
                ..ferry::client::tree::TreeOptions::new(HashAlgorithm::Blake3, check)
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(got.files.len(), changed.len());
    for (rel, bytes) in &changed {
        assert_eq!(
            &std::fs::read(root.join("up").join(rel)).unwrap(),
            bytes,
            "{rel}"
        );
        assert_eq!(&std::fs::read(back.join(rel)).unwrap(), bytes, "{rel}");
    }
    assert!(common::partials_under(&root).is_empty());
    assert!(common::partials_under(work.path()).is_empty());
    // The session is still in step.
    client.ping(1).await.unwrap();
}

/// Sends three small whole puts, `f0`..`f2`, which the server holds for a commit; gives their
/// bytes.
async fn send_three_to_hold(conn: &mut ferry::connection::Connection<TcpStream>) -> Vec<Vec<u8>> {
    let files: Vec<Vec<u8>> = (0..3).map(|i| pattern(1000 + i, i as u64)).collect();
    for (i, bytes) in files.iter().enumerate() {
        send_whole(conn, &format!("f{i}"), bytes, &blake3_hex(bytes)).await;
    }
    files
}

/// Announces a whole put of `size` bytes to `path`; its data is for the caller to send.
async fn announce_whole(
    conn: &mut ferry::connection::Connection<TcpStream>,
    path: &str,
    size: u64,
) {
    conn.write_message(&Message::Put(Put {
        path: path.into(),
        size,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: true,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: false,
    }))
    .await
    .unwrap();
}

/// Whether `f0`..`f2` are in place under `root` — each checked against `files` once all are.
fn three_landed(root: &Path, files: &[Vec<u8>]) -> bool {
    if !(0..3).all(|i| root.join(format!("f{i}")).exists()) {
        return false;
    }
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(&std::fs::read(root.join(format!("f{i}"))).unwrap(), bytes);
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_puts_do_not_wait_on_a_client_that_stalls_in_the_middle_of_the_next() {
    let server = TestServer::start_plaintext(writable()).await;
    let root = server.dir.path().join("root");
    let mut conn = raw_session(server.addr).await;
    let files = send_three_to_hold(&mut conn).await;
    // The next put announces 100 KiB and sends half, then nothing: its bytes are not all
    // there, so the three before it must be committed rather than held while it waits.
    announce_whole(&mut conn, "stalled", 100 * 1024).await;
    conn.write_data(0, &pattern(50 * 1024, 9)).await.unwrap();
    conn.flush().await.unwrap();
    // Nothing else to wait on: the files appearing under their names is the event itself.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !three_landed(&root, &files) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verified puts were held while the client stalled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!root.join("stalled").exists());
}

/// A client that keeps its next put "arriving" a byte at a time, each frame well within the
/// grace, still has the puts before it committed: held puts wait [`HOLD_AT_MOST`] in all, not
/// for as long as the client keeps sending (before, they stayed held — with their share of the
/// server's budget — until the trickle ended).
///
/// [`HOLD_AT_MOST`]: ferry::services::files::held_puts::HOLD_AT_MOST
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_puts_are_committed_while_a_client_trickles_the_next() {
    let server = TestServer::start_plaintext(writable()).await;
    let root = server.dir.path().join("root");
    let mut conn = raw_session(server.addr).await;
    let files = send_three_to_hold(&mut conn).await;
    let trickled = pattern(20_000, 7);
    announce_whole(&mut conn, "trickled", trickled.len() as u64).await;
    // One byte every 2 ms, ten times faster than the grace for one frame; the files appearing
    // under their names is the event waited for, the trickle only what keeps the client busy.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let mut sent = 0;
    while !three_landed(&root, &files) {
        assert!(
            tokio::time::Instant::now() < deadline && sent < trickled.len() - 1,
            "the held puts waited for the trickling client"
        );
        conn.write_data(0, &trickled[sent..sent + 1]).await.unwrap();
        conn.flush().await.unwrap();
        sent += 1;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // The trickled put still completes, and every put is answered, in order.
    conn.write_data(0, &trickled[sent..]).await.unwrap();
    conn.write_message(&Message::PutEnd(PutEnd {
        hash: blake3_hex(&trickled),
    }))
    .await
    .unwrap();
    for expected in files.iter().chain([&trickled]) {
        match conn.read_message().await.unwrap() {
            Message::PutDone(done) => assert_eq!(done.hash, blake3_hex(expected)),
            other => panic!("expected put_done, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read(root.join("trickled")).unwrap(), trickled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_put_of_the_same_path_wins_when_the_commits_would_overlap() {
    let server = TestServer::start_plaintext(writable()).await;
    let root = server.dir.path().join("root");
    let mut conn = raw_session(server.addr).await;
    // A full batch whose last put is `same` (old bytes): the next put starts its commit in
    // the background and is held; then `same` again (new bytes), alone in the next batch,
    // which the server commits as soon as the client stops sending. A one-file commit run
    // beside the 256-file one would finish first, and the old bytes would be linked last.
    let batch = ferry::services::files::held_puts::MAX_HELD;
    // A large file first, so the first commit's `syncfs` has megabytes to wait for: the
    // second commit's waits for the same, and then has one name to give where the first has
    // 256, `same` last among them. Which one names it first is a race, so it runs six rounds.
    for round in 0..6 {
        let large = pattern(3 << 20, round);
        send_whole(
            &mut conn,
            &format!("large{round}"),
            &large,
            &blake3_hex(&large),
        )
        .await;
        let mut sent = 1;
        for i in 0..batch - 2 {
            let bytes = pattern(2000 + i, i as u64);
            let path = format!("r{round}f{i}");
            send_whole(&mut conn, &path, &bytes, &blake3_hex(&bytes)).await;
            sent += 1;
        }
        let same = format!("same{round}");
        let old = pattern(5000, round + 10);
        let new = pattern(6000, round + 20);
        send_whole(&mut conn, &same, &old, &blake3_hex(&old)).await;
        send_whole(&mut conn, &same, &new, &blake3_hex(&new)).await;
        sent += 2;
        conn.flush().await.unwrap();
        let mut last = None;
        for _ in 0..sent {
            match conn.read_message().await.unwrap() {
                Message::PutDone(done) => last = Some(done.hash),
                other => panic!("expected put_done, got {other:?}"),
            }
        }
        assert_eq!(last, Some(blake3_hex(&new)));
        assert_eq!(
            std::fs::read(root.join(&same)).unwrap(),
            new,
            "round {round}: the later put's bytes are the ones left under the name"
        );
    }
    assert!(common::partials_under(&root).is_empty());
}
