//! What a tree copy must and must never do, beyond rsync's oracle: a mirror removes only
//! under its target and never through a link, the root is mirrored only with `--force`, a
//! script without a terminal is not asked but refused, a dry run changes nothing, filters
//! follow rsync's order and `.ferryignore`, and hard links stay links with `-H`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{TestServer, config_with_user, output};

async fn server() -> (TestServer, String) {
    let (config, token) = config_with_user("mirror", "read,write");
    (TestServer::start_plaintext(config).await, token.to_string())
}

fn root(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("root")
}

/// Runs `ferry VERB ARGS...` with the token; its exit code, stdout and stderr.
async fn ferry(
    server: &TestServer,
    token: &str,
    verb: &str,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = server.ferry(verb);
    cmd.env("FERRY_TOKEN", token).args(args);
    let out = output(cmd).await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every path under `dir` with a digest of what it is (kind, bytes, mode, mtime, link text).
fn state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            for child in std::fs::read_dir(&path).unwrap() {
                pending.push(child.unwrap().path());
            }
            format!("dir {:o} {}", meta.mode(), meta.mtime_nsec())
        } else {
            let bytes = std::fs::read(&path).unwrap();
            format!(
                "file {} {:o} {}",
                blake3::hash(&bytes).to_hex(),
                meta.mode(),
                meta.mtime_nsec()
            )
        };
        out.insert(rel, what);
    }
    out
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_mirror_removes_only_under_its_target_and_never_through_a_link() {
    let (server, token) = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("keep"), "k");
    std::fs::create_dir_all(src.join("was-a-link")).unwrap();
    // On the server: a tree beside the target, and links from the target into it.
    let r = root(&server);
    write(&r.join("outside/precious"), "p");
    write(&r.join("dst/stale"), "s");
    std::os::unix::fs::symlink("../outside", r.join("dst/link")).unwrap();
    std::os::unix::fs::symlink("../outside", r.join("dst/was-a-link")).unwrap();
    let src_arg = format!("{}/", src.display());
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &["-r", "--delete", "--force", &src_arg, "dst"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(r.join("dst/keep").exists());
    assert!(r.join("dst/stale").symlink_metadata().is_err());
    assert!(
        r.join("dst/link").symlink_metadata().is_err(),
        "the link itself went"
    );
    assert!(
        r.join("dst/was-a-link")
            .symlink_metadata()
            .unwrap()
            .is_dir()
    );
    assert_eq!(std::fs::read(r.join("outside/precious")).unwrap(), b"p");

    // The same on this side: a get mirror removes a local link, never what it points to.
    let got = work.path().join("got");
    let beside = work.path().join("beside");
    write(&beside.join("precious"), "p");
    write(&got.join("stale"), "s");
    std::os::unix::fs::symlink(&beside, got.join("link")).unwrap();
    std::os::unix::fs::symlink(&beside, got.join("was-a-link")).unwrap();
    let got_arg = got.display().to_string();
    let (code, _, err) = ferry(
        &server,
        &token,
        "get",
        &["-r", "--delete", "--force", "dst/", &got_arg],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(got.join("keep").exists() && got.join("was-a-link").is_dir());
    assert!(got.join("stale").symlink_metadata().is_err());
    assert!(got.join("link").symlink_metadata().is_err());
    assert_eq!(std::fs::read(beside.join("precious")).unwrap(), b"p");
}

#[tokio::test]
async fn the_root_is_mirrored_only_with_force_and_a_script_is_refused_not_asked() {
    let (server, token) = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("a"), "a");
    let r = root(&server);
    write(&r.join("other/file"), "o");
    let src_arg = format!("{}/", src.display());
    let (code, _, err) = ferry(&server, &token, "put", &["-r", "--delete", &src_arg, ""]).await;
    assert_ne!(code, 0);
    assert!(err.contains("--force"), "{err}");
    assert!(r.join("other/file").exists(), "nothing removed");

    // Without a terminal, removals need --force: refused with the count, nothing changed.
    write(&r.join("dst/stale"), "s");
    let (code, _, err) = ferry(&server, &token, "put", &["-r", "--delete", &src_arg, "dst"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("would remove 1 file"), "{err}");
    assert!(r.join("dst/stale").exists());
    assert!(!r.join("dst/a").exists(), "nothing copied either");
}

#[tokio::test]
async fn a_dry_run_says_what_would_change_and_changes_nothing() {
    let (server, token) = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("new"), "n");
    write(&src.join("changed"), "after");
    write(&src.join("same"), "s");
    std::os::unix::fs::symlink("same", src.join("link")).unwrap();
    let r = root(&server);
    write(&r.join("dst/changed"), "before");
    write(&r.join("dst/stale"), "s");
    let src_arg = format!("{}/", src.display());
    // Bring "same" to the same size and mtime first.
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &[&src.join("same").display().to_string(), "dst/same"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let server_before = state(&r);
    let local_before = state(work.path());
    let (code, out, err) = ferry(
        &server,
        &token,
        "put",
        &["-r", "-n", "--delete", &src_arg, "dst"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"delete   stale"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("create   new")), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("update   changed")),
        "{out}"
    );
    assert!(lines.contains(&"link     link"), "{out}");
    assert!(!out.contains("same"), "{out}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(state(&r), server_before, "the server's tree is untouched");
    assert_eq!(state(work.path()), local_before);
    // The same for get, on this side.
    let got = work.path().join("got");
    write(&got.join("only-here"), "h");
    let local_before = state(work.path());
    let got_arg = got.display().to_string();
    let (code, out, err) = ferry(
        &server,
        &token,
        "get",
        &["-rn", "--delete", "dst/", &got_arg],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "delete   only-here"), "{out}");
    assert_eq!(state(work.path()), local_before);
    assert_eq!(state(&r), server_before);
}

#[tokio::test]
async fn filters_follow_rsync_s_order_and_the_ferryignore_file() {
    let (server, token) = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    for name in [
        "a.o",
        "keep.o",
        "b.c",
        "x.log",
        "important.log",
        "build/out",
        "d/e.o",
    ] {
        write(&src.join(name), name);
    }
    write(
        &src.join(".ferryignore"),
        "*.log\n!important.log\n/build/\n",
    );
    let excludes = work.path().join("excludes");
    write(&excludes, "# objects\n*.o\n");
    let src_arg = format!("{}/", src.display());
    let excludes_arg = excludes.display().to_string();
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &[
            "-r",
            "--include",
            "keep.o",
            "--exclude-from",
            &excludes_arg,
            &src_arg,
            "dst",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let dst = root(&server).join("dst");
    let present = |p: &str| dst.join(p).exists();
    assert!(present("keep.o") && present("b.c") && present("important.log"));
    assert!(present(".ferryignore") && present("d"));
    assert!(!present("a.o") && !present("d/e.o") && !present("x.log") && !present("build"));
    // The include given after the exclude comes too late: the first match wins.
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &[
            "-r",
            "--exclude",
            "*.o",
            "--include",
            "keep.o",
            &src_arg,
            "dst2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!root(&server).join("dst2/keep.o").exists());
    // --no-ignore sends what .ferryignore leaves out.
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &["-r", "--no-ignore", &src_arg, "dst3"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        root(&server).join("dst3/x.log").exists() && root(&server).join("dst3/build/out").exists()
    );
    // An excluded file the target holds is spared by --delete, removed by --delete-excluded.
    write(&dst.join("x.log"), "old");
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &["-r", "--delete", "--force", &src_arg, "dst"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(dst.join("x.log").exists());
    let (code, _, err) = ferry(
        &server,
        &token,
        "put",
        &[
            "-r",
            "--delete",
            "--delete-excluded",
            "--force",
            &src_arg,
            "dst",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!dst.join("x.log").exists());
    // And on get: the server's .ferryignore is read too.
    let got = work.path().join("got");
    let (code, _, err) = ferry(
        &server,
        &token,
        "get",
        &["-r", "dst3/", &got.display().to_string()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!got.join("x.log").exists() && got.join("important.log").exists());
}

#[tokio::test]
async fn hard_links_stay_links_with_dash_h_both_ways() {
    let (server, token) = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("one"), "shared bytes");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::hard_link(src.join("one"), src.join("d/two")).unwrap();
    std::fs::hard_link(src.join("one"), src.join("three")).unwrap();
    let src_arg = format!("{}/", src.display());
    let (code, _, err) = ferry(&server, &token, "put", &["-rH", &src_arg, "dst"]).await;
    assert_eq!(code, 0, "{err}");
    let dst = root(&server).join("dst");
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&dst.join("one")), ino(&dst.join("d/two")));
    assert_eq!(ino(&dst.join("one")), ino(&dst.join("three")));
    // Without -H they are copies.
    let (code, _, err) = ferry(&server, &token, "put", &["-r", &src_arg, "plain"]).await;
    assert_eq!(code, 0, "{err}");
    let plain = root(&server).join("plain");
    assert_ne!(ino(&plain.join("one")), ino(&plain.join("three")));
    // get -H links them here too.
    let got = work.path().join("got");
    let (code, _, err) = ferry(
        &server,
        &token,
        "get",
        &["-rH", "dst/", &got.display().to_string()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(ino(&got.join("one")), ino(&got.join("d/two")));
    assert_eq!(std::fs::read(got.join("three")).unwrap(), b"shared bytes");
}
