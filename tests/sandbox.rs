//! The server root under attack from a local user: directories swapped with symlinks while
//! requests run, FIFOs, hard links and squatted partial names. Nothing outside the root may be
//! read, written, created or removed, and nothing may hang the server.

mod common;

use ferry::transfer::hash_cache::HashCache;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, WAIT, config_with_user, refusal_code};
use ferry::client::files::{self, NoProgress};
use ferry::connection::{BoxedStream, Connection};
use ferry::protocol::{ErrorCode, HashAlgorithm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the swap race runs against each operation (bounded; the old code escaped within
/// a few hundred milliseconds).
const RACE_FOR: Duration = Duration::from_secs(3);

async fn writer() -> (TestServer, String) {
    let (config, token) = config_with_user("writer", "read,write");
    (TestServer::start(config).await, token.to_string())
}

async fn session(server: &TestServer, token: &str) -> Connection<BoxedStream> {
    server
        .client(Some(token.parse().unwrap()))
        .await
        .into_connection()
}

fn root(server: &TestServer) -> PathBuf {
    server.dir.path().join("root")
}

/// Sets up `root/d` (a real directory) and `root/l` (a symlink to `outside`), and a thread
/// that exchanges the two names atomically in a loop, as a local attacker would with
/// `renameat2(RENAME_EXCHANGE)`, until the returned flag is set.
fn start_swapping(root: &Path, outside: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    std::os::unix::fs::symlink(outside, root.join("l")).unwrap();
    start_swapping_existing(root)
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_directory_for_a_symlink_never_lets_a_request_out() {
    let (server, token) = writer().await;
    let root = root(&server);
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // Same names inside and out; the contents tell which side a get read.
    std::fs::write(root.join("d/f"), b"inside").unwrap();
    std::fs::write(outside.join("f"), b"SECRET").unwrap();
    for i in 0..2000 {
        std::fs::write(root.join(format!("d/victim-{i}")), b"in").unwrap();
        std::fs::write(outside.join(format!("victim-{i}")), b"out").unwrap();
    }
    let outside_before = names(&outside);
    let work = tempfile::tempdir().unwrap();
    let upload = work.path().join("upload");
    std::fs::write(&upload, b"uploaded").unwrap();

    let (stop, swapper) = start_swapping(&root, &outside);
    let mut conn = session(&server, &token).await;
    let (mut gets_inside, mut puts, mut mkdirs, mut removes) = (0, 0, 0, 0);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < RACE_FOR && i < 2000 {
        let local = work.path().join(format!("got-{i}"));
        if files::get_file(
            &mut conn,
            "d/f",
            &local,
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        )
        .await
        .is_ok()
        {
            let got = std::fs::read(&local).unwrap();
            assert_eq!(got, b"inside", "a get read a file outside the root");
            gets_inside += 1;
        }
        let remote = format!("d/put-{i}");
        if files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &upload,
            &remote,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .is_ok()
        {
            puts += 1;
        }
        if files::mkdir(&mut conn, &format!("d/made-{i}"), Some(0o700), None)
            .await
            .is_ok()
        {
            mkdirs += 1;
        }
        if files::remove(&mut conn, &format!("d/victim-{i}"))
            .await
            .is_ok()
        {
            removes += 1;
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();

    assert_eq!(
        names(&outside),
        outside_before,
        "something outside the root was created or removed"
    );
    assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"SECRET");
    for i in 0..2000 {
        assert_eq!(
            std::fs::read(outside.join(format!("victim-{i}"))).unwrap(),
            b"out"
        );
    }
    // The race really ran: the swapper swapped, and requests got through on the inside.
    assert!(swaps > 100, "only {swaps} swaps");
    assert!(
        gets_inside > 0 && puts > 0 && mkdirs > 0 && removes > 0,
        "no request succeeded: gets {gets_inside}, puts {puts}, mkdirs {mkdirs}, removes {removes}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_fifo_is_refused_at_once_and_the_server_keeps_serving() {
    let (server, token) = writer().await;
    common::mkfifo(&root(&server).join("pipe"));
    let work = tempfile::tempdir().unwrap();
    // Several at once: each would park a runtime worker if the open blocked.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut conn = session(&server, &token).await;
        let local = work.path().join(format!("fifo-{i}"));
        tasks.push(tokio::spawn(async move {
            files::get_file(
                &mut conn,
                "pipe",
                &local,
                HashAlgorithm::Blake3,
                None,
                false,
                &mut NoProgress,
            )
            .await
        }));
    }
    for task in tasks {
        let err = tokio::time::timeout(WAIT, task)
            .await
            .expect("a get of a FIFO is answered, not left hanging")
            .unwrap()
            .unwrap_err();
        assert_eq!(refusal_code(&err), Some(ErrorCode::NotAFile), "{err}");
    }
    let mut client = server.client(None).await;
    tokio::time::timeout(WAIT, client.ping(1))
        .await
        .unwrap()
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn partials_cannot_be_named_squatted_or_used_to_write_elsewhere() {
    let (server, token) = writer().await;
    let root = root(&server);
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let work = tempfile::tempdir().unwrap();
    let upload = work.path().join("upload");
    std::fs::write(&upload, b"new bytes").unwrap();
    let mut conn = session(&server, &token).await;

    // A client may not name a partial: not to put into it, get it, remove it or make it.
    for path in [
        ".x.ferry-part",
        "sub/.report.txt.ferry-part",
        ".y.ferry-part-abc",
    ] {
        let err = files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &upload,
            path,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap_err();
        assert_eq!(
            refusal_code(&err),
            Some(ErrorCode::BadPath),
            "{path}: {err}"
        );
        let err = files::mkdir(&mut conn, path, None, None).await.unwrap_err();
        assert_eq!(
            refusal_code(&err),
            Some(ErrorCode::BadPath),
            "{path}: {err}"
        );
        let err = files::remove(&mut conn, path).await.unwrap_err();
        assert_eq!(
            refusal_code(&err),
            Some(ErrorCode::BadPath),
            "{path}: {err}"
        );
    }

    // A local hard link from the partial's name to a file outside: the put does not write
    // through it, and the outside file keeps its bytes.
    std::fs::write(outside.join("target"), b"precious").unwrap();
    std::fs::hard_link(outside.join("target"), root.join(".x.ferry-part")).unwrap();
    files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &upload,
        "x",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"new bytes");

    // A symlink at the partial's name is not followed either.
    std::os::unix::fs::symlink(outside.join("target"), root.join(".s.ferry-part")).unwrap();
    files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &upload,
        "s",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");
    assert_eq!(std::fs::read(root.join("s")).unwrap(), b"new bytes");

    // A directory squatting the partial's name does not block the upload.
    std::fs::create_dir(root.join(".y.ferry-part")).unwrap();
    std::fs::write(root.join(".y.ferry-part/keep"), b"k").unwrap();
    files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &upload,
        "y",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(root.join("y")).unwrap(), b"new bytes");

    // Partials are not listed.
    let listed = files::list(&mut conn, "", false).await.unwrap();
    assert!(
        listed.iter().all(|e| !e.path.contains("ferry-part")),
        "{listed:?}"
    );

    // Names of 243 to 255 bytes work, both ways (their partial name must fit NAME_MAX).
    for len in [243, 244, 250, 255] {
        let name = "n".repeat(len);
        files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &upload,
            &name,
            HashAlgorithm::Blake3,
            false,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap_or_else(|e| panic!("put of a {len}-byte name: {e}"));
        let local = work.path().join(&name);
        files::get_file(
            &mut conn,
            &name,
            &local,
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap_or_else(|e| panic!("get of a {len}-byte name: {e}"));
        assert_eq!(std::fs::read(&local).unwrap(), b"new bytes");
    }
    server.stop().await;
}

#[tokio::test]
async fn mkdir_through_a_symlink_never_changes_the_root() {
    let (server, token) = writer().await;
    let root = root(&server);
    std::os::unix::fs::symlink(".", root.join("self")).unwrap();
    let before = std::fs::metadata(&root).unwrap();
    let mut conn = session(&server, &token).await;
    let _ = files::mkdir(&mut conn, "self", Some(0o777), Some(1_000_000_000)).await;
    let after = std::fs::metadata(&root).unwrap();
    assert_eq!(
        after.permissions().mode() & 0o7777,
        before.permissions().mode() & 0o7777
    );
    assert_eq!(after.mtime(), before.mtime());
    server.stop().await;
}

#[tokio::test]
async fn legacy_ftp_streams_the_file_it_checked() {
    let (server, addrs) = TestServer::start_with_legacy(&["ftp"]).await;
    let root = server.dir.path().join("root");
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("d/f"), b"inside!").unwrap();
    std::fs::write(outside.join("f"), b"SECRET!").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("l")).unwrap();
    let dir = std::fs::File::open(&root).unwrap();
    for _ in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
        tcp.write_all(b"get d/f").await.unwrap();
        let mut size = [0u8; 1];
        tcp.read_exact(&mut size).await.unwrap();
        assert_eq!(&size, b"7");
        // Between the size line and the ack, the directory becomes a link to the outside.
        rustix::fs::renameat_with(&dir, "d", &dir, "l", rustix::fs::RenameFlags::EXCHANGE).unwrap();
        tcp.write_all(b"ok").await.unwrap();
        let mut body = [0u8; 7];
        tcp.read_exact(&mut body).await.unwrap();
        assert_eq!(
            &body, b"inside!",
            "the ftp listener sent a file outside the root"
        );
        rustix::fs::renameat_with(&dir, "d", &dir, "l", rustix::fs::RenameFlags::EXCHANGE).unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_ftp_get_of_a_fifo_does_not_freeze_the_server() {
    let (server, addrs) = TestServer::start_with_legacy(&["ftp"]).await;
    let root = server.dir.path().join("root");
    common::mkfifo(&root.join("pipe"));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
        tcp.write_all(b"get pipe").await.unwrap();
        callers.push(tcp);
    }
    for tcp in &mut callers {
        let mut line = vec![0u8; 256];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut line))
            .await
            .expect("the ftp listener answers a FIFO at once")
            .unwrap();
        let line = String::from_utf8_lossy(&line[..n]);
        assert!(
            line.starts_with("error:") && line.contains("not a regular file"),
            "{line}"
        );
    }
    let mut client = server.client(None).await;
    tokio::time::timeout(WAIT, client.ping(1))
        .await
        .unwrap()
        .unwrap();
    server.stop().await;
}

/// Every request through a link the client itself made with `symlink` (one absolute, one
/// relative, both leading out of the root) is refused, and nothing outside changes; then the
/// swapping race again, with the link made by `symlink` and requests that write by delta,
/// set attributes and make links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_made_by_put_never_lead_a_request_out() {
    use ferry::protocol::{Attrs, ErrorCode, HardLink, Message, Symlink};
    let (server, token) = writer().await;
    let root = root(&server);
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), vec![b'S'; 100_000]).unwrap();
    let outside_before = names(&outside);
    let mut conn = session(&server, &token).await;
    let absolute = outside.display().to_string();
    for (name, target) in [("abs", absolute.as_str()), ("rel", "../outside")] {
        let link = Message::Symlink(Symlink {
            path: name.into(),
            target: target.into(),
            mtime_ns: None,
        });
        files::all_done(&mut conn, &[link]).await.unwrap();
        assert!(root.join(name).symlink_metadata().unwrap().is_symlink());
    }
    let work = tempfile::tempdir().unwrap();
    let upload = work.path().join("upload");
    std::fs::write(&upload, vec![b'u'; 100_000]).unwrap();
    std::fs::write(root.join("inside"), b"in").unwrap();
    for name in ["abs", "rel"] {
        let refused = |r: Result<_, ferry::client::ClientError>| matches!(r, Err(ferry::client::ClientError::Server(ref refusal)) if refusal.code == ErrorCode::BadPath);
        let got = files::get_file(
            &mut conn,
            &format!("{name}/f"),
            &work.path().join("got"),
            HashAlgorithm::Blake3,
            None,
            false,
            &mut NoProgress,
        )
        .await;
        assert!(refused(got.map(|_| ())), "get through {name}");
        // A delta put whose base would be the file outside.
        let put = files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &upload,
            &format!("{name}/f"),
            HashAlgorithm::Blake3,
            true,
            false,
            &mut NoProgress,
        )
        .await;
        assert!(refused(put.map(|_| ())), "put through {name}");
        let requests = [
            Message::Attrs(Attrs {
                path: format!("{name}/f"),
                mode: Some(0o777),
                mtime_ns: Some(0),
            }),
            Message::HardLink(HardLink {
                path: "stolen".into(),
                existing: format!("{name}/f"),
            }),
            Message::HardLink(HardLink {
                path: format!("{name}/planted"),
                existing: "inside".into(),
            }),
            Message::Symlink(Symlink {
                path: format!("{name}/planted-link"),
                target: "x".into(),
                mtime_ns: None,
            }),
        ];
        for request in requests {
            let what = request.kind();
            let answer = files::all_done(&mut conn, std::slice::from_ref(&request)).await;
            assert!(refused(answer), "{what} through {name}");
        }
        assert!(
            refused(files::mkdir(&mut conn, &format!("{name}/made"), None, None).await),
            "mkdir through {name}"
        );
        assert!(
            refused(files::remove(&mut conn, &format!("{name}/f")).await),
            "remove through {name}"
        );
    }
    assert_eq!(names(&outside), outside_before);
    assert_eq!(
        std::fs::read(outside.join("f")).unwrap(),
        vec![b'S'; 100_000]
    );
    let mode = std::fs::metadata(outside.join("f")).unwrap().permissions();
    assert_ne!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o777
    );
    assert!(!root.join("stolen").exists());

    // The race: a real directory and the put-made link exchanged in a loop while deltas,
    // attributes and links are written through the directory's name.
    std::fs::remove_file(root.join("abs")).unwrap();
    let link = Message::Symlink(Symlink {
        path: "l".into(),
        target: absolute.clone(),
        mtime_ns: None,
    });
    files::all_done(&mut conn, &[link]).await.unwrap();
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/f"), vec![b'i'; 100_000]).unwrap();
    let (stop, swapper) = start_swapping_existing(&root);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < RACE_FOR && i < 500 {
        let _ = files::put_file(
            &mut conn,
            &HashCache::in_memory(),
            &upload,
            "d/f",
            HashAlgorithm::Blake3,
            true,
            false,
            &mut NoProgress,
        )
        .await;
        let requests = [
            Message::Attrs(Attrs {
                path: "d/f".into(),
                mode: Some(0o777),
                mtime_ns: Some(0),
            }),
            Message::HardLink(HardLink {
                path: format!("d/hard-{i}"),
                existing: "inside".into(),
            }),
            Message::Symlink(Symlink {
                path: format!("d/soft-{i}"),
                target: "x".into(),
                mtime_ns: None,
            }),
        ];
        for request in requests {
            let _ = files::all_done(&mut conn, std::slice::from_ref(&request)).await;
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 100, "only {swaps} swaps");
    assert_eq!(
        names(&outside),
        outside_before,
        "something was made outside the root"
    );
    assert_eq!(
        std::fs::read(outside.join("f")).unwrap(),
        vec![b'S'; 100_000]
    );
    let mode = std::fs::metadata(outside.join("f")).unwrap().permissions();
    assert_ne!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o777
    );
    server.stop().await;
}

/// As [`start_swapping`], with `root/l` already there (made by the test through the server).
fn start_swapping_existing(root: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let root = root.to_path_buf();
    let swapper = std::thread::spawn(move || {
        let dir = std::fs::File::open(&root).unwrap();
        let mut swaps = 0u64;
        while !flag.load(Ordering::Relaxed) {
            rustix::fs::renameat_with(&dir, "d", &dir, "l", rustix::fs::RenameFlags::EXCHANGE)
                .unwrap();
            swaps += 1;
        }
        if std::fs::symlink_metadata(root.join("d"))
            .unwrap()
            .is_symlink()
        {
            rustix::fs::renameat_with(&dir, "d", &dir, "l", rustix::fs::RenameFlags::EXCHANGE)
                .unwrap();
        }
        swaps
    });
    (stop, swapper)
}
