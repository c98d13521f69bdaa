//! The sender's hash cache, end to end: an unchanged file is sent with the hash it had, a
//! changed one is hashed again, a file changed while it is sent is refused whichever way the
//! hash came, and a wrong cached hash can fail a transfer but never make a receiver keep
//! wrong bytes. Both senders: the server (`get`) and the client (`put`).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{TestServer, config_with_user, pattern};
use ferry::client::files::{NoProgress, Progress, Transfer};
use ferry::client::{Client, ClientError};
use ferry::protocol::{ErrorCode, HashAlgorithm};
use ferry::transfer::hash_cache::{Fingerprint, MIN_SIZE, SETTLED};

const ALGORITHM: HashAlgorithm = HashAlgorithm::Blake3;

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn fingerprint(path: &Path) -> Fingerprint {
    Fingerprint::of(&std::fs::metadata(path).unwrap())
}

/// Waits until `path` last changed [`SETTLED`] ago: only then may its hash be cached (a file
/// changed within one clock tick of its hashing could keep its ctime). This waits for the
/// file's age, the very condition the cache checks, not for another task.
async fn settled(path: &Path) {
    loop {
        let changed = std::fs::metadata(path).unwrap().modified().unwrap();
        let age = SystemTime::now()
            .duration_since(changed)
            .unwrap_or_default();
        if age > SETTLED + Duration::from_millis(50) {
            return;
        }
        tokio::time::sleep(SETTLED - age.min(SETTLED) + Duration::from_millis(60)).await;
    }
}

/// A moment at which every file of the test has settled, for planting an entry.
fn later() -> SystemTime {
    SystemTime::now() + SETTLED + Duration::from_secs(1)
}

/// Rewrites one byte of `path` in place (same size): what an editor or a log writer does.
fn touch_one_byte(path: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(b"!", 0).unwrap();
}

/// Progress that runs `act` once, when the first bytes have moved.
struct OnFirstBytes<F: FnMut() + Send>(Option<F>);
impl<F: FnMut() + Send> Progress for OnFirstBytes<F> {
    fn advance(&mut self, _bytes: u64) {
        if let Some(mut act) = self.0.take() {
            act();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_sends_an_unchanged_file_with_its_cached_hash_and_rehashes_a_changed_one() {
    let (config, token) = config_with_user("reader", "read");
    let server = TestServer::start(config).await;
    let path = server.dir.path().join("root").join("f");
    let data = pattern(2 * MIN_SIZE as usize + 5, 3);
    std::fs::write(&path, &data).unwrap();
    settled(&path).await;
    let hashes = &server.state.hashes;
    let mut client = server.client(Some(token.clone())).await;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("f");

    // First get: hashed while sent, and kept.
    let first = get_one(&mut client, "f", &target).await.unwrap();
    assert_eq!(first.hash, blake3_hex(&data));
    assert_eq!(
        hashes.lookup(fingerprint(&path), ALGORITHM).as_deref(),
        Some(first.hash.as_str())
    );

    // The next get of the unchanged file announces the kept hash without reading for it. A
    // planted wrong entry proves it: the client refuses, and keeps nothing.
    hashes.remember(fingerprint(&path), later(), ALGORITHM, &"0".repeat(64));
    std::fs::remove_file(&target).unwrap();
    let refused = get_one(&mut client, "f", &target).await;
    assert!(
        matches!(refused, Err(ClientError::Integrity(_))),
        "{refused:?}"
    );
    assert!(!target.exists(), "nothing kept under the final name");

    // The file changes (same size): its entry no longer matches, so it is hashed again.
    touch_one_byte(&path);
    let mut changed = data.clone();
    changed[0] = b'!';
    let again = get_one(&mut client, "f", &target).await.unwrap();
    assert_eq!(again.hash, blake3_hex(&changed));
    assert_eq!(std::fs::read(&target).unwrap(), changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_while_the_server_sends_it_is_refused_cached_or_not() {
    let (config, token) = config_with_user("reader", "read");
    let server = TestServer::start(config).await;
    let path = server.dir.path().join("root").join("big");
    // Larger than what the two socket buffers can hold (tcp_rmem's max is 32 MiB here, wmem's
    // 4 MiB), so the server is still sending when the client, holding its first bytes, changes
    // the file.
    std::fs::write(&path, pattern(80 << 20, 5)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("big");
    for round in ["hashed while sent", "hash from the cache"] {
        if round == "hash from the cache" {
            settled(&path).await;
            let mut client = server.client(Some(token.clone())).await;
            get_one(&mut client, "big", &target).await.unwrap();
            std::fs::remove_file(&target).unwrap();
            assert!(
                server
                    .state
                    .hashes
                    .lookup(fingerprint(&path), ALGORITHM)
                    .is_some(),
                "the first get filled the cache"
            );
        }
        let mut client = server.client(Some(token.clone())).await;
        let changing = path.clone();
        let mut progress = OnFirstBytes(Some(move || touch_one_byte(&changing)));
        let got = client
            .files()
            .get_file("big", &target, ALGORITHM, false, false, &mut progress)
            .await;
        match got {
            Err(ClientError::Server(refusal)) => {
                assert_eq!(refusal.code, ErrorCode::Io, "{round}: {refusal:?}");
                assert!(
                    refusal.message.contains("changed while it was being sent"),
                    "{round}: {}",
                    refusal.message
                );
            }
            other => panic!("{round}: {other:?}"),
        }
        assert!(!target.exists(), "{round}: nothing under the final name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_uses_the_clients_cache_and_refuses_a_file_changed_while_it_is_sent() {
    let (config, token) = config_with_user("writer", "read,write");
    let server = TestServer::start(config).await;
    let root = server.dir.path().join("root");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("up");
    let data = pattern(2 * MIN_SIZE as usize + 9, 11);
    std::fs::write(&source, &data).unwrap();
    settled(&source).await;

    let mut client = server.client(Some(token.clone())).await;
    let put = put_one(&mut client, &source, "up").await.unwrap();
    assert_eq!(put.hash, blake3_hex(&data));
    let hashes = client.hashes();
    assert_eq!(
        hashes.lookup(fingerprint(&source), ALGORITHM).as_deref(),
        Some(put.hash.as_str())
    );
    let kept = std::fs::read_to_string(server.home().join("hash-cache")).unwrap();
    assert!(kept.contains(&put.hash), "kept in FERRY_HOME: {kept}");

    // A planted wrong entry is what the client claims, and the server, which hashes what it
    // receives, refuses it: nothing replaces the good copy.
    hashes.remember(fingerprint(&source), later(), ALGORITHM, &"0".repeat(64));
    std::fs::remove_file(root.join("up")).unwrap();
    let refused = put_one(&mut client, &source, "up").await;
    assert!(
        matches!(&refused, Err(ClientError::Server(r)) if r.code == ErrorCode::Integrity),
        "{refused:?}"
    );
    assert!(!root.join("up").exists());

    // Changed while it is sent: the client stops, says why, and the server keeps nothing
    // under the name.
    let big = work.path().join("big");
    std::fs::write(&big, pattern(80 << 20, 2)).unwrap();
    let mut client = server.client(Some(token)).await;
    let changing = big.clone();
    let mut progress = OnFirstBytes(Some(move || touch_one_byte(&changing)));
    let sent = client
        .files()
        .put_file(&big, "big", ALGORITHM, false, false, &mut progress)
        .await;
    match sent {
        Err(ClientError::Local { source, .. }) => {
            assert!(source.to_string().contains("changed"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!root.join("big").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_transfer_of_a_cached_file_checks_its_prefix_and_sends_the_cached_hash() {
    let (config, token) = config_with_user("writer", "read,write");
    let server = TestServer::start(config).await;
    let root = server.dir.path().join("root");
    let data = pattern(3 * MIN_SIZE as usize + 17, 21);
    std::fs::write(root.join("f"), &data).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("f");
    std::fs::write(&source, &data).unwrap();
    settled(&root.join("f")).await;
    settled(&source).await;
    let mut client = server.client(Some(token)).await;
    let target = work.path().join("got");
    // Fill both caches: a whole get (the server's) and a whole put (the client's).
    get_one(&mut client, "f", &target).await.unwrap();
    put_one(&mut client, &source, "up").await.unwrap();
    assert!(
        server
            .state
            .hashes
            .lookup(fingerprint(&root.join("f")), ALGORITHM)
            .is_some()
    );
    assert!(
        client
            .hashes()
            .lookup(fingerprint(&source), ALGORITHM)
            .is_some()
    );
    std::fs::remove_file(&target).unwrap();
    std::fs::remove_file(root.join("up")).unwrap();

    // What an interrupted get and an interrupted put left behind: a verified prefix each.
    let held = MIN_SIZE as usize + 3;
    std::fs::write(work.path().join(".got.ferry-part"), &data[..held]).unwrap();
    std::fs::write(root.join(".up.ferry-part"), &data[..held]).unwrap();
    let got = get_one(&mut client, "f", &target).await.unwrap();
    assert_eq!(got.resumed_from, held as u64);
    assert_eq!(got.hash, blake3_hex(&data));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let put = put_one(&mut client, &source, "up").await.unwrap();
    assert_eq!(put.resumed_from, held as u64);
    assert_eq!(put.hash, blake3_hex(&data));
    assert_eq!(std::fs::read(root.join("up")).unwrap(), data);

    // A prefix that is not the file's is not trusted, cache or not: everything is sent.
    let mut wrong = data[..held].to_vec();
    wrong[5] ^= 1;
    std::fs::remove_file(&target).unwrap();
    std::fs::write(work.path().join(".got.ferry-part"), &wrong).unwrap();
    let again = get_one(&mut client, "f", &target).await.unwrap();
    assert_eq!(again.resumed_from, 0);
    assert_eq!(std::fs::read(&target).unwrap(), data);
}

/// Gets `remote` into `target`, BLAKE3-verified.
async fn get_one(
    client: &mut Client,
    remote: &str,
    target: &Path,
) -> Result<Transfer, ClientError> {
    client
        .files()
        .get_file(remote, target, ALGORITHM, false, false, &mut NoProgress)
        .await
}

/// Puts `source` as `remote`, BLAKE3-verified.
async fn put_one(
    client: &mut Client,
    source: &Path,
    remote: &str,
) -> Result<Transfer, ClientError> {
    client
        .files()
        .put_file(source, remote, ALGORITHM, false, false, &mut NoProgress)
        .await
}
