//! Files against a real server: boundary sizes, trees, resume, tampering, the sandbox,
//! permissions, and concurrent writers.

mod common;

use ferry::transfer::hash_cache::HashCache;

use ferry::protocol::{
    ChatMessage, Get, GetEnd, GetReady, ListDone, ListEntries, Put, PutEnd, PutReady, PutStart,
    Refusal, Welcome,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{TestServer, config_with_user, output, pattern, refusal_code};
use ferry::client::ClientError;
use ferry::client::files::{self, NoProgress, Progress};
use ferry::config::ServerConfig;
use ferry::connection::{BoxedStream, Connection};
use ferry::protocol::{ErrorCode, HashAlgorithm};
use ferry::server::{Server, ServerOptions};
use ferry::transfer::chunks::CHUNK;

async fn writer_server() -> (TestServer, String) {
    let (config, token) = config_with_user("writer", "read,write");
    (TestServer::start(config).await, token.to_string())
}

async fn session(server: &TestServer, token: Option<&str>) -> Connection<BoxedStream> {
    server
        .client(token.map(|t| t.parse().unwrap()))
        .await
        .into_connection()
}

fn root(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("root")
}

fn partials_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".ferry-part"))
        .collect()
}

#[tokio::test]
async fn boundary_sizes_round_trip_verified_with_both_hashes() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let mut conn = session(&server, Some(&token)).await;
    for (i, size) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7]
        .into_iter()
        .enumerate()
    {
        for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
            let data = pattern(size, i as u64);
            let local = work.path().join(format!("in-{size}"));
            std::fs::write(&local, &data).unwrap();
            let remote = format!("f-{size}-{}", algorithm.name());
            let up = files::put_file(
                &mut conn,
                &HashCache::in_memory(),
                &local,
                &remote,
                algorithm,
                false,
                false,
                &mut NoProgress,
            )
            .await
            .unwrap();
            assert_eq!((up.size, up.resumed_from), (size as u64, 0));
            assert_eq!(
                std::fs::read(root(&server).join(&remote)).unwrap(),
                data,
                "{size}"
            );
            let back = work.path().join(format!("out-{size}-{}", algorithm.name()));
            let down = files::get_file(
                &mut conn,
                &remote,
                &back,
                algorithm,
                None,
                false,
                &mut NoProgress,
            )
            .await
            .unwrap();
            assert_eq!(down.hash, up.hash);
            assert_eq!(std::fs::read(&back).unwrap(), data, "{size}");
        }
    }
    assert!(partials_in(&root(&server)).is_empty());
    assert!(partials_in(work.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_round_trip_with_names_modes_and_mtimes() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    for dir in ["a/b/c", "empty", "with space/世界"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::fs::write(tree.join("a/b/c/deep.bin"), pattern(CHUNK + 3, 1)).unwrap();
    std::fs::write(tree.join("a/empty-file"), b"").unwrap();
    std::fs::write(tree.join("with space/世界/你好.txt"), "你好\n").unwrap();
    std::fs::set_permissions(
        tree.join("a/empty-file"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(tree.join("a/b"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    std::fs::File::open(tree.join("a/b/c/deep.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::File::open(tree.join("empty"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let back = work.path().join("back");
    put_and_get_tree(&server, &token, &tree, "copy", &back, None).await;

    for rel in [
        "a/b/c/deep.bin",
        "a/empty-file",
        "with space/世界/你好.txt",
        "empty",
        "a/b",
    ] {
        let (src, dst) = (tree.join(rel), back.join(rel));
        let (m1, m2) = (
            std::fs::metadata(&src).unwrap(),
            std::fs::metadata(&dst).unwrap(),
        );
        assert_eq!(m1.is_dir(), m2.is_dir(), "{rel}");
        assert_eq!(m1.mode() & 0o7777, m2.mode() & 0o7777, "{rel} mode");
        assert_eq!(m1.mtime(), m2.mtime(), "{rel} mtime");
        if m1.is_file() {
            assert_eq!(
                std::fs::read(&src).unwrap(),
                std::fs::read(&dst).unwrap(),
                "{rel}"
            );
        }
    }
}

/// `put -r TREE REMOTE`, then `get -r REMOTE BACK`, each through the CLI (under an open-file
/// limit, if one is given); both must succeed.
async fn put_and_get_tree(
    server: &TestServer,
    token: &str,
    tree: &Path,
    remote: &str,
    back: &Path,
    open_file_limit: Option<u32>,
) {
    let mut put = server.ferry("put");
    // Trailing slashes: the contents of each side (rsync's rule), so `remote` and `back` are
    // copies of `tree`.
    put.env("FERRY_TOKEN", token)
        .arg("-r")
        .arg(format!("{}/", tree.display()))
        .arg(remote);
    let mut get = server.ferry("get");
    get.env("FERRY_TOKEN", token)
        .args(["-r", &format!("{remote}/")])
        .arg(back);
    for cmd in [put, get] {
        let cmd = match open_file_limit {
            Some(limit) => under_open_file_limit(&cmd, limit),
            None => cmd,
        };
        let out = output(cmd).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `cmd` run under a soft and hard open-file limit of `limit` (set by `sh`, then `exec`).
fn under_open_file_limit(cmd: &std::process::Command, limit: u32) -> std::process::Command {
    let mut limited = std::process::Command::new("sh");
    limited
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    limited
}

/// A tree of more files than a low open-file limit allows open at once still goes both ways:
/// the client fits how many files it keeps in flight to the limit (before, `get -r` of 300
/// files under `ulimit -n 256` failed half-way with "Too many open files").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_go_both_ways_under_a_low_open_file_limit() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("many");
    std::fs::create_dir_all(&tree).unwrap();
    // Larger than a small get (received into memory), so each holds a partial; and small ones.
    let sizes = (0..300).map(|_| 70_000).chain((0..200).map(|_| 4096));
    for (i, size) in sizes.enumerate() {
        std::fs::write(tree.join(format!("f{i:03}")), pattern(size, i as u64)).unwrap();
    }
    let back = work.path().join("back");
    put_and_get_tree(&server, &token, &tree, "many", &back, Some(256)).await;
    assert_copied(&tree, &back);
}

/// Every file of the flat directory `src` is in `dst` with the same bytes, and `dst` holds
/// nothing else (no partial left).
fn assert_copied(src: &Path, dst: &Path) {
    let names: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for name in &names {
        assert_eq!(
            std::fs::read(dst.join(name)).unwrap(),
            std::fs::read(src.join(name)).unwrap(),
            "{}",
            dst.join(name).display()
        );
    }
    assert_eq!(
        std::fs::read_dir(dst).unwrap().count(),
        names.len(),
        "no partial left in {}",
        dst.display()
    );
}

/// Trees put side by side into a server under a low open-file limit all arrive, and the server
/// still answers others: the files sessions hold open for a shared commit are budgeted across
/// the server, not per session (before, one session alone could hold 256 sealed partials and
/// the puts failed with "Too many open files").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_put_side_by_side_fit_a_servers_low_open_file_limit() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    std::fs::write(&config, "[anonymous]\nallow = [\"read\", \"write\"]\n").unwrap();
    let server = common::ServerProcess::start_under_open_file_limit(
        256,
        &["--plaintext", "--config", config.to_str().unwrap()],
    );
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let client = |verb: &str| {
        let mut cmd = common::ferry_bin(&home);
        cmd.args([verb, "--server", &server.addr.to_string(), "--plaintext"]);
        cmd
    };
    // Each file larger than a small put (held in memory), so each is held in its partial.
    let trees: Vec<_> = (0..2)
        .map(|t| {
            let tree = work.path().join(format!("tree{t}"));
            std::fs::create_dir(&tree).unwrap();
            for i in 0..300 {
                std::fs::write(tree.join(format!("f{i:03}")), pattern(70_000, t * 1000 + i))
                    .unwrap();
            }
            tree
        })
        .collect();
    let puts = trees.iter().enumerate().map(|(t, tree)| {
        let mut put = client("put");
        put.arg("-r")
            .arg(format!("{}/", tree.display()))
            .arg(format!("t{t}"));
        tokio::spawn(output(put))
    });
    for put in puts.collect::<Vec<_>>() {
        let out = put.await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut ls = client("ls");
    ls.arg("t1");
    let listed = output(ls).await;
    assert!(listed.status.success(), "the server answers afterwards");
    for (t, tree) in trees.iter().enumerate() {
        assert_copied(tree, &server.root.join(format!("t{t}")));
    }
}

/// When other sessions hold the whole of the server's budget for held uploads — its files, or
/// its bytes of small files in memory — a tree put still goes through, each upload committed at
/// once instead of held, and takes none of it; with the budget free, a put gives back all it
/// took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_put_goes_through_while_others_hold_the_whole_budget() {
    let (server, token) = writer_server().await;
    let budget = server.state.held_budget.clone();
    let whole = (
        budget.files().available_permits(),
        budget.bytes().available_permits(),
    );
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    // Sealed in partials, and small ones held in memory.
    let sizes = (0..20).map(|_| 70_000).chain((0..20).map(|_| 1000));
    for (i, size) in sizes.enumerate() {
        std::fs::write(tree.join(format!("f{i:02}")), pattern(size, i as u64)).unwrap();
    }
    let spend = |part: &std::sync::Arc<tokio::sync::Semaphore>| {
        let mut taken = Vec::new();
        while part.available_permits() > 0 {
            let some = u32::try_from(part.available_permits()).unwrap_or(u32::MAX);
            taken.push(
                std::sync::Arc::clone(part)
                    .try_acquire_many_owned(some)
                    .unwrap(),
            );
        }
        taken
    };
    for remote in ["files-spent", "bytes-spent", "free"] {
        let taken = match remote {
            "files-spent" => spend(budget.files()),
            "bytes-spent" => spend(budget.bytes()),
            _ => Vec::new(),
        };
        let mut put = server.ferry("put");
        put.env("FERRY_TOKEN", &token)
            .arg("-r")
            .arg(format!("{}/", tree.display()))
            .arg(remote);
        let out = output(put).await;
        assert!(
            out.status.success(),
            "{remote}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_copied(&tree, &root(&server).join(remote));
        assert!(partials_in(&root(&server).join(remote)).is_empty());
        let left = (
            budget.files().available_permits(),
            budget.bytes().available_permits(),
        );
        let expected = match remote {
            "files-spent" => (0, whole.1),
            "bytes-spent" => (whole.0, 0),
            _ => whole,
        };
        assert_eq!(
            left, expected,
            "{remote}: the put took none, or gave all back"
        );
        drop(taken);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_in_a_tree_are_copied_as_links_both_ways() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("t");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("real"), "x").unwrap();
    // Relative, absolute, dangling and leading out of the root: each kept as its text.
    let links = [
        ("link", "real"),
        ("absolute", "/etc/hostname"),
        ("dangling", "nowhere/at/all"),
        ("outside", "../../../../etc"),
    ];
    for (name, text) in links {
        std::os::unix::fs::symlink(text, tree.join(name)).unwrap();
    }
    let mut put = server.ferry("put");
    put.env("FERRY_TOKEN", &token)
        .arg("-r")
        .arg(format!("{}/", tree.display()))
        .arg("t");
    let out = output(put).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read(root(&server).join("t/real")).unwrap(), b"x");
    for (name, text) in links {
        let stored = root(&server).join("t").join(name);
        assert!(stored.symlink_metadata().unwrap().is_symlink(), "{name}");
        assert_eq!(
            std::fs::read_link(&stored).unwrap(),
            Path::new(text),
            "{name}"
        );
    }
    // The server never reads through the one that leads out: a get of it is refused.
    let mut get = server.ferry("get");
    get.env("FERRY_TOKEN", &token)
        .arg("t/outside/passwd")
        .arg(work.path().join("stolen"));
    let out = output(get).await;
    assert!(!out.status.success());
    assert!(!work.path().join("stolen").exists());
    // And back: a get -r makes the same links here.
    let back = work.path().join("back");
    let mut get = server.ferry("get");
    get.env("FERRY_TOKEN", &token)
        .arg("-r")
        .arg("t/")
        .arg(&back);
    let out = output(get).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, text) in links {
        assert_eq!(
            std::fs::read_link(back.join(name)).unwrap(),
            Path::new(text),
            "{name}"
        );
    }
}

/// Waits until no transfer holds `partial` (its writer finished and closed it).
async fn wait_until_unlocked(partial: &Path) {
    use rustix::fs::{FlockOperation, flock};
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let file = std::fs::File::open(partial).unwrap();
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the partial stayed locked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Progress that cancels the transfer (like a killed client) after `after` bytes.
struct StopAfter {
    after: u64,
    seen: u64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Progress for StopAfter {
    fn advance(&mut self, bytes: u64) {
        self.seen += bytes;
        if self.seen >= self.after
            && let Some(stop) = self.stop.take()
        {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn an_interrupted_get_resumes_from_the_verified_partial() {
    let (server, token) = writer_server().await;
    let data = pattern(48 * CHUNK + 11, 7);
    std::fs::write(root(&server).join("big"), &data).unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("big");
    let partial = work.path().join(".big.ferry-part");

    let mut conn = session(&server, Some(&token)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut stop = StopAfter {
        after: 3 * CHUNK as u64,
        seen: 0,
        stop: Some(tx),
    };
    {
        let transfer = files::get_file(
            &mut conn,
            "big",
            &target,
            HashAlgorithm::Blake3,
            None,
            false,
            &mut stop,
        );
        tokio::pin!(transfer);
        tokio::select! {
            biased;
            _ = rx => {}
            _ = &mut transfer => panic!("finished before the interruption"),
        }
        // Received is not yet written: keep the transfer going until some of it is on disk,
        // then kill it (a killed process loses what it had not written, and so does this).
        let deadline = tokio::time::Instant::now() + common::WAIT;
        while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing reached the disk"
            );
            tokio::select! {
                _ = &mut transfer => panic!("finished before the interruption"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
            }
        }
    }
    drop(conn); // the client dies mid-transfer
    assert!(!target.exists(), "nothing under the final name");
    wait_until_unlocked(&partial).await;
    let held = std::fs::metadata(&partial).unwrap().len();
    assert!(held > 0, "the partial kept what arrived");

    let mut conn = session(&server, Some(&token)).await;
    let resumed = files::get_file(
        &mut conn,
        "big",
        &target,
        HashAlgorithm::Blake3,
        None,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(resumed.resumed_from, held);
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(!partial.exists());
}

#[tokio::test]
async fn a_partial_that_does_not_match_is_not_trusted() {
    let (server, token) = writer_server().await;
    let data = pattern(2 * CHUNK, 3);
    std::fs::write(root(&server).join("f"), &data).unwrap();
    let work = tempfile::tempdir().unwrap();
    // A leftover partial with the right length but wrong bytes.
    std::fs::write(work.path().join(".f.ferry-part"), vec![0u8; CHUNK]).unwrap();
    let mut conn = session(&server, Some(&token)).await;
    let got = files::get_file(
        &mut conn,
        "f",
        &work.path().join("f"),
        HashAlgorithm::Blake3,
        None,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(got.resumed_from, 0, "mismatching prefix: started over");
    assert_eq!(std::fs::read(work.path().join("f")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_put_resumes_and_says_so() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("up.bin");
    let data = pattern(8 * CHUNK + 5, 9);
    std::fs::write(&source, &data).unwrap();

    let mut conn = session(&server, Some(&token)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut stop = StopAfter {
        after: 4 * CHUNK as u64,
        seen: 0,
        stop: Some(tx),
    };
    let hashes = HashCache::in_memory();
    tokio::select! {
        biased;
        _ = rx => {}
        _ = files::put_file(&mut conn, &hashes, &source, "up.bin", HashAlgorithm::Blake3, false, false, &mut stop) => panic!("finished before the interruption"),
    }
    drop(conn);
    server.wait_for_active(0).await; // the server noticed, and its partial is closed
    assert!(
        !root(&server).join("up.bin").exists(),
        "nothing under the final name"
    );
    let held = std::fs::metadata(root(&server).join(".up.bin.ferry-part"))
        .unwrap()
        .len();
    assert!(held > 0);

    let mut put = server.ferry("put");
    put.env("FERRY_TOKEN", &token).arg(&source).arg("up.bin");
    let out = output(put).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resuming at {held} bytes")),
        "{stderr}"
    );
    assert_eq!(std::fs::read(root(&server).join("up.bin")).unwrap(), data);
    assert!(partials_in(&root(&server)).is_empty());
}

#[tokio::test]
async fn a_tampered_put_is_detected_and_nothing_is_kept() {
    use ferry::protocol::Message;
    let (server, token) = writer_server().await;
    let mut conn = session(&server, Some(&token)).await;
    conn.write_message(&Message::Put(Put {
        path: "t.bin".into(),
        size: 4,
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
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::PutReady(PutReady { offset: 0, .. })
    ));
    conn.write_message(&Message::PutStart(PutStart {
        offset: 0,
        delta: false,
    }))
    .await
    .unwrap();
    conn.write_data(0, b"evil").await.unwrap();
    // The hash of what the sender meant, not of what arrived.
    let mut meant = ferry::transfer::hashing::Hasher::new(HashAlgorithm::Blake3);
    meant.update(b"good");
    conn.write_message(&Message::PutEnd(PutEnd {
        hash: meant.finish_hex(),
    }))
    .await
    .unwrap();
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::Integrity);
            assert!(message.contains("nothing was kept"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!root(&server).join("t.bin").exists());
    assert!(partials_in(&root(&server)).is_empty());
}

#[tokio::test]
async fn a_tampered_get_is_detected_and_nothing_is_kept() {
    use ferry::protocol::Message;
    // The server sends bytes and a hash that does not match them.
    let (addr, fake) = fake_server(|mut conn| async move {
        assert!(matches!(
            conn.read_message().await.unwrap(),
            Message::Get(_)
        ));
        let ready = Message::GetReady(GetReady {
            size: 4,
            mode: 0o644,
            mtime_ns: 0,
            offset: 0,
            delta: false,
            compress: false,
        });
        conn.write_message(&ready).await.unwrap();
        conn.write_data(0, b"evil").await.unwrap();
        conn.write_message(&Message::GetEnd(GetEnd {
            hash: "00".repeat(32),
        }))
        .await
        .unwrap();
        let _ = conn.read_frame().await;
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut conn = connect_plaintext(addr, home.path()).await;
    let target = home.path().join("got");
    let err = files::get_file(
        &mut conn,
        "x",
        &target,
        HashAlgorithm::Blake3,
        None,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Integrity(_)), "{err}");
    assert!(!target.exists());
    assert!(partials_in(home.path()).is_empty());
    drop(conn);
    fake.await.unwrap();
}

#[tokio::test]
async fn nothing_outside_the_root_is_read_or_written() {
    let (server, token) = writer_server().await;
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "s3cret").unwrap();
    std::os::unix::fs::symlink(&outside, root(&server).join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root(&server).join("secret-link")).unwrap();
    common::mkfifo(&root(&server).join("fifo"));
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("x");
    std::fs::write(&local, "payload").unwrap();
    let mut conn = session(&server, Some(&token)).await;

    for (path, code) in [
        ("../outside/secret", ErrorCode::BadPath),
        ("/etc/passwd", ErrorCode::BadPath),
        ("escape/secret", ErrorCode::BadPath),
        ("secret-link", ErrorCode::BadPath),
        ("fifo", ErrorCode::NotAFile),
        ("missing", ErrorCode::NotFound),
    ] {
        let err = files::get_file(
            &mut conn,
            path,
            &work.path().join("out"),
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap_err();
        assert_eq!(refusal_code(&err), Some(code), "get {path}: {err}");
    }
    for (path, code) in [
        ("../x", ErrorCode::BadPath),
        ("/tmp/x", ErrorCode::BadPath),
        ("escape/new", ErrorCode::BadPath),
        ("secret-link", ErrorCode::BadPath),
        ("fifo", ErrorCode::NotAFile),
    ] {
        let err = files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &local,
            path,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap_err();
        assert_eq!(refusal_code(&err), Some(code), "put {path}: {err}");
    }
    let err = files::mkdir(&mut conn, "escape/newdir", None, None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(&err), Some(ErrorCode::BadPath), "{err}");
    let err = files::list(&mut conn, "escape", false).await.unwrap_err();
    assert_eq!(refusal_code(&err), Some(ErrorCode::BadPath), "{err}");
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "s3cret"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was written outside"
    );
    assert!(
        partials_in(work.path()).is_empty(),
        "failed gets leave no partial"
    );
}

#[tokio::test]
async fn reading_needs_read_and_writing_needs_write() {
    let mut config = ServerConfig::default();
    config.anonymous.allow = vec![ferry::protocol::Permission::Chat];
    let server = TestServer::start(config).await;
    std::fs::write(root(&server).join("f"), "x").unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut conn = session(&server, None).await;
    let err = files::get_file(
        &mut conn,
        "f",
        &work.path().join("f"),
        HashAlgorithm::Blake3,
        None,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );
    let err = files::list(&mut conn, "", false).await.unwrap_err();
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );

    let default = TestServer::start(ServerConfig::default()).await;
    let mut conn = session(&default, None).await;
    std::fs::write(work.path().join("local"), "y").unwrap();
    let err = files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &work.path().join("local"),
        "up",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );
    let err = files::remove(&mut conn, "anything").await.unwrap_err();
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );
    assert!(!root(&default).join("up").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_putting_the_same_path_never_mix() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (pattern(6 * CHUNK, 0xaa), pattern(6 * CHUNK, 0x55));
    std::fs::write(work.path().join("a"), &a).unwrap();
    std::fs::write(work.path().join("b"), &b).unwrap();
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for name in ["a", "b"] {
        let (server, token, source) = (server.clone(), token.clone(), work.path().join(name));
        tasks.push(tokio::spawn(async move {
            let mut conn = session(&server, Some(&token)).await;
            files::put_file(
                &mut conn,
                &HashCache::in_memory(),
                &source,
                "same.bin",
                HashAlgorithm::Blake3,
                false,
                false,
                &mut NoProgress,
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let got = std::fs::read(root(&server).join("same.bin")).unwrap();
    assert!(got == a || got == b, "the file is one upload, whole");
    assert!(partials_in(&root(&server)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_get_and_put_through_the_binary_with_json() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("hello.txt"), "hello\n").unwrap();
    let mut put = server.ferry("put");
    put.env("FERRY_TOKEN", &token)
        .arg(work.path().join("hello.txt"))
        .args(["--json", "--sha256"]);
    let out = output(put).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["algorithm"], "sha256");
    assert_eq!(
        summary["hash"],
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    assert_eq!(summary["to"], "hello.txt");

    let mut ls = server.ferry("ls");
    ls.env("FERRY_TOKEN", &token).arg("--json");
    let out = output(ls).await;
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries[0]["path"], "hello.txt");
    assert_eq!(entries[0]["size"], 6);

    let mut get = server.ferry("get");
    get.env("FERRY_TOKEN", &token)
        .arg("hello.txt")
        .arg(work.path().join("copy.txt"))
        .arg("-v");
    let out = output(get).await;
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verified blake3"),
        "-v shows the hash"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("copy.txt")).unwrap(),
        "hello\n"
    );
    assert!(out.stdout.is_empty(), "no progress bar or noise in a pipe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_in_flight_do_not_block_chat() {
    let (server, token) = writer_server().await;
    std::fs::write(root(&server).join("big"), pattern(32 * CHUNK, 1)).unwrap();
    let server = std::sync::Arc::new(server);
    let work = tempfile::tempdir().unwrap();
    let mut transfers = Vec::new();
    for i in 0..3 {
        let (server, token, target) = (
            server.clone(),
            token.clone(),
            work.path().join(format!("big{i}")),
        );
        transfers.push(tokio::spawn(async move {
            let mut conn = session(&server, Some(&token)).await;
            files::get_file(
                &mut conn,
                "big",
                &target,
                HashAlgorithm::Blake3,
                None,
                false,
                &mut NoProgress,
            )
            .await
            .unwrap()
        }));
    }
    let client = server.client(None).await;
    let (mut tx, mut rx, _) = ferry::client::chat::join(
        client.into_connection(),
        ferry::client::chat::ChatTarget::With("babyshen".into()),
        "reader",
        false,
    )
    .await
    .unwrap();
    for line in ["a", "b", "c"] {
        tx.say(line).await.unwrap();
        let reply = format!("{line}好");
        loop {
            if let Some(ferry::protocol::Message::ChatMessage(ChatMessage { text, .. })) =
                rx.next().await.unwrap()
                && text == reply
            {
                break;
            }
        }
    }
    for t in transfers {
        assert_eq!(t.await.unwrap().size, 32 * CHUNK as u64);
    }
}

#[tokio::test]
async fn a_server_announcing_an_offset_past_the_end_is_a_protocol_error() {
    use ferry::protocol::Message;
    let (addr, fake) = fake_server(|mut conn| async move {
        let held = match conn.read_message().await.unwrap() {
            Message::Get(Get { offset, .. }) => offset,
            other => panic!("{other:?}"),
        };
        // Claims the client's offset, for a file shorter than that.
        let ready = Message::GetReady(GetReady {
            size: held - 1,
            mode: 0o644,
            mtime_ns: 0,
            offset: held,
            delta: false,
            compress: false,
        });
        conn.write_message(&ready).await.unwrap();
        let _ = conn.read_frame().await;
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".got.ferry-part"), b"0123456789").unwrap();
    let mut conn = connect_plaintext(addr, home.path()).await;
    let err = files::get_file(
        &mut conn,
        "x",
        &home.path().join("got"),
        HashAlgorithm::Blake3,
        None,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    drop(conn);
    fake.await.unwrap();
}

/// A fake plaintext ferry server for one client: it answers the preamble and `hello` as a real
/// server would, then hands the connection to `script` (which misbehaves as a test needs).
async fn fake_server<F, Fut>(script: F) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: FnOnce(Connection<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use ferry::protocol::{Message, Mode, Preamble};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preamble = [0u8; 8];
        tcp.read_exact(&mut preamble).await.unwrap();
        tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
            .await
            .unwrap();
        let mut conn = Connection::new(tcp);
        assert!(matches!(
            conn.read_message().await.unwrap(),
            Message::Hello(_)
        ));
        conn.write_message(&Message::Welcome(Welcome {
            server: "fake".into(),
            user: None,
            permissions: vec![],
            max_frame: 1 << 20,
            signature: None,
            node: None,
        }))
        .await
        .unwrap();
        script(conn).await;
    });
    (addr, task)
}

/// The library client, plaintext, connected to `addr` with `home` as FERRY_HOME.
async fn connect_plaintext(addr: std::net::SocketAddr, home: &Path) -> Connection<BoxedStream> {
    let options = ferry::client::ClientOptions {
        server: addr.to_string(),
        token: None,
        plaintext: true,
        home: home.to_path_buf(),
        connect_timeout: common::WAIT,
        accept_new: true,
        keys: None,
    };
    ferry::client::Client::connect(&options)
        .await
        .unwrap()
        .into_connection()
}

#[tokio::test]
async fn a_server_cannot_make_get_r_write_outside_the_target() {
    use ferry::protocol::{FileEntry, FileKind, Message};
    for evil in [
        "../escaped.txt",
        "/tmp/ferry-absolute-escape.txt",
        "a/../../escaped.txt",
    ] {
        let (addr, fake) = fake_server(move |mut conn| async move {
            assert!(matches!(
                conn.read_message().await.unwrap(),
                Message::List(_)
            ));
            let entry = FileEntry {
                path: evil.to_string(),
                kind: FileKind::File,
                size: 4,
                mode: 0o644,
                mtime_ns: 0,
                target: None,
                not_utf8: false,
                hard_link_of: None,
            };
            conn.write_message(&Message::ListEntries(ListEntries {
                entries: vec![entry],
            }))
            .await
            .unwrap();
            conn.write_message(&Message::ListDone(ListDone { count: 1 }))
                .await
                .unwrap();
            // A client that asked for the file would get it; a correct one does not ask.
            if let Ok(Message::Get(_)) = conn.read_message().await {
                let ready = Message::GetReady(GetReady {
                    size: 4,
                    mode: 0o644,
                    mtime_ns: 0,
                    offset: 0,
                    delta: false,
                    compress: false,
                });
                conn.write_message(&ready).await.unwrap();
                conn.write_data(0, b"evil").await.unwrap();
                let mut h = ferry::transfer::hashing::Hasher::new(HashAlgorithm::Blake3);
                h.update(b"evil");
                conn.write_message(&Message::GetEnd(GetEnd {
                    hash: h.finish_hex(),
                }))
                .await
                .unwrap();
                let _ = conn.read_frame().await;
            }
        })
        .await;
        let home = tempfile::tempdir().unwrap();
        let target = home.path().join("deep/target");
        let mut conn = connect_plaintext(addr, home.path()).await;
        let err = ferry::client::tree::get_tree(
            &mut conn,
            &std::sync::Arc::new(HashCache::in_memory()),
            "t",
            &target,
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
        .unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{evil}: {err}");
        assert!(!home.path().join("deep/escaped.txt").exists(), "{evil}");
        assert!(
            !std::path::Path::new("/tmp/ferry-absolute-escape.txt").exists(),
            "{evil}"
        );
        drop(conn);
        fake.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_into_an_existing_remote_directory_lands_inside_it() {
    let (server, token) = writer_server().await;
    std::fs::create_dir_all(root(&server).join("docs")).unwrap();
    for i in 0..300 {
        std::fs::write(root(&server).join(format!("docs/old-{i}")), "x").unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("report.txt"), "new").unwrap();
    let mut put = server.ferry("put");
    put.env("FERRY_TOKEN", &token)
        .arg(work.path().join("report.txt"))
        .arg("docs");
    let out = output(put).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root(&server).join("docs/report.txt")).unwrap(),
        "new"
    );

    let mut conn = session(&server, Some(&token)).await;
    let dir = files::describe(&mut conn, "docs").await.unwrap();
    assert_eq!(
        (dir.kind, dir.path.as_str()),
        (ferry::protocol::FileKind::Dir, "")
    );
    let file = files::describe(&mut conn, "docs/report.txt").await.unwrap();
    assert_eq!((file.kind, file.size), (ferry::protocol::FileKind::File, 3));
    let err = files::describe(&mut conn, "nope").await.unwrap_err();
    assert_eq!(refusal_code(&err), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn setuid_and_setgid_bits_never_cross() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("tool");
    std::fs::write(&local, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let mut conn = session(&server, Some(&token)).await;
    files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &local,
        "tool",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    let stored = std::fs::metadata(root(&server).join("tool"))
        .unwrap()
        .mode()
        & 0o7777;
    assert_eq!(stored, 0o755, "{stored:o}");
    files::mkdir(&mut conn, "shared", Some(0o3777), None)
        .await
        .unwrap();
    let dir = std::fs::metadata(root(&server).join("shared"))
        .unwrap()
        .mode()
        & 0o7777;
    assert_eq!(dir, 0o777, "{dir:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_partials_are_swept_and_fresh_or_held_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("deep/er")).unwrap();
    let ten_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    let make = |path: &Path, old: bool| {
        std::fs::write(path, "partial bytes").unwrap();
        if old {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(ten_days_ago)
                .unwrap();
        }
    };
    let old = root.join("deep/er/.big.iso.ferry-part");
    let fresh = root.join(".new.bin.ferry-part");
    let held = root.join(".busy.bin.ferry-part");
    let not_partial = root.join("old-but-mine.txt");
    make(&old, true);
    make(&fresh, false);
    make(&held, true);
    make(&not_partial, true);
    // A transfer in progress holds its partial's lock.
    let holder = std::fs::File::open(&held).unwrap();
    rustix::fs::flock(
        &holder,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();

    let server = Server::bind(ServerOptions {
        config: ServerConfig::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
        root: root.clone(),
        state_dir: dir.path().join("state"),
        plaintext: true,
        web: None,
        irc: None,
        metrics: None,
    })
    .await
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while old.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old partial stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        fresh.exists(),
        "a recent partial stays for its transfer to resume"
    );
    assert!(held.exists(), "a partial held by a transfer stays");
    assert!(not_partial.exists(), "only partials are swept");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_server_cannot_make_get_r_write_through_a_link_in_the_target() {
    use ferry::protocol::{FileEntry, FileKind, Message};
    let entry = |path: &str, kind| FileEntry {
        path: path.into(),
        kind,
        size: 4,
        mode: 0o644,
        mtime_ns: 0,
        target: None,
        not_utf8: false,
        hard_link_of: None,
    };
    // A listing that names a file under `a` without `a` itself: where the target holds a link
    // `a` (made by an earlier get, say), the file would land wherever the link points.
    let listed = vec![entry("a/authorized_keys", FileKind::File)];
    let (addr, fake) = fake_server(move |mut conn| async move {
        for answer in [listed, vec![entry("", FileKind::Dir)]] {
            if !matches!(conn.read_message().await, Ok(Message::List(_))) {
                return;
            }
            let count = answer.len() as u64;
            conn.write_message(&Message::ListEntries(ListEntries { entries: answer }))
                .await
                .unwrap();
            conn.write_message(&Message::ListDone(ListDone { count }))
                .await
                .unwrap();
        }
        // A correct client asks for nothing more.
        let _ = conn.read_frame().await;
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("target");
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("a")).unwrap();
    let mut conn = connect_plaintext(addr, home.path()).await;
    let err = ferry::client::tree::get_tree(
        &mut conn,
        &std::sync::Arc::new(HashCache::in_memory()),
        "t",
        &target,
        &ferry::client::tree::TreeOptions::new(
            HashAlgorithm::Blake3,
            ferry::client::files::Check::Never,
        ),
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("does not write through"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    drop(conn);
    fake.await.unwrap();
}
