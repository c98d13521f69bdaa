//! `ferry sync --watch` driven by a test that edits a tree while it runs: after each burst of
//! changes settles, the server's copy matches the local tree again; a rename arrives as a
//! rename (the server's file keeps its inode: it was not sent again); Ctrl-C ends it cleanly.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{TestServer, WAIT, config_with_user, send_signal};

/// Every path under `dir` with its bytes (files) or link text, without following links, as far
/// as it can be read while it changes: a name that vanishes between the listing and the read
/// (the server renaming a partial into place, say) shows as `(changing)`, and partials are
/// left out.
fn contents(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        if rel.contains(".ferry-part") {
            continue;
        }
        let what = (|| -> std::io::Result<String> {
            let meta = std::fs::symlink_metadata(&path)?;
            Ok(if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path)?.display())
            } else if meta.is_dir() {
                for child in std::fs::read_dir(&path)? {
                    pending.push(child?.path());
                }
                "dir".to_string()
            } else {
                blake3::hash(&std::fs::read(&path)?).to_hex().to_string()
            })
        })();
        out.insert(rel, what.unwrap_or_else(|_| "(changing)".into()));
    }
    out
}

/// Waits (bounded by [`WAIT`]) until the server's copy holds what the local tree holds.
async fn until_mirrored(local: &Path, remote: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if remote.exists() && contents(local) == contents(remote) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never mirrored:\nlocal {:?}\nremote {:?}",
            contents(local).keys().take(20).collect::<Vec<_>>(),
            remote
                .exists()
                .then(|| contents(remote).into_keys().take(20).collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `sync --watch` process, killed if the test ends early (a failed assertion must not leave
/// it running, holding its session and the server open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_watch_follows_edits_bursts_deletes_and_renames() {
    let (config, token) = config_with_user("watcher", "read,write");
    let server = TestServer::start_plaintext(config).await;
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("tree");
    std::fs::create_dir_all(local.join("docs")).unwrap();
    std::fs::write(local.join("docs/readme"), "first").unwrap();
    std::fs::write(local.join("big.bin"), common::pattern(300_000, 1)).unwrap();
    let remote = server.dir.path().join("root/mirror");
    let mut cmd = server.ferry("sync");
    cmd.env("FERRY_TOKEN", token.to_string())
        .arg("--watch")
        .arg(&local)
        .arg("mirror")
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    // The first pass is done when it says it is watching.
    let stderr = child.0.stderr.take().unwrap();
    let (said, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = said.send(line);
        }
    });
    loop {
        let line = tokio::time::timeout(WAIT, lines.recv())
            .await
            .expect("sync says it is watching")
            .expect("sync is still running");
        if line.contains("watching") {
            break;
        }
    }
    until_mirrored(&local, &remote).await;

    // An edit, a file removed, a link made.
    std::fs::write(local.join("docs/readme"), "second version").unwrap();
    std::fs::remove_file(local.join("big.bin")).unwrap();
    std::os::unix::fs::symlink("docs/readme", local.join("link")).unwrap();
    until_mirrored(&local, &remote).await;

    // A burst: a thousand files at once (a checkout).
    std::fs::create_dir_all(local.join("burst")).unwrap();
    for i in 0..1000 {
        std::fs::write(local.join(format!("burst/f{i:04}")), format!("file {i}")).unwrap();
    }
    until_mirrored(&local, &remote).await;

    // A rename is a rename there: the file keeps its inode on the server.
    let before = std::fs::metadata(remote.join("burst/f0007")).unwrap().ino();
    std::fs::rename(local.join("burst/f0007"), local.join("docs/moved")).unwrap();
    until_mirrored(&local, &remote).await;
    assert_eq!(
        std::fs::metadata(remote.join("docs/moved")).unwrap().ino(),
        before,
        "sent again instead of renamed"
    );

    send_signal(child.0.id(), rustix::process::Signal::INT);
    let status = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.0.wait()))
        .await
        .expect("sync --watch ends on Ctrl-C")
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
