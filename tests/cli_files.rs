//! `ferry get` and `ferry put` as scp and rsync users type them, through the real binary:
//! `HOST:PORT:PATH`, several sources, remote globs, `-` for stdout and stdin, "up to date",
//! and errors that name the real cause.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{TestServer, config_with_user, ferry_bin, output, output_with_stdin};
use ferry::auth::token::Token;

struct Setup {
    server: TestServer,
    token: Token,
    local: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let (config, token) = config_with_user("writer", "read,write");
        Setup {
            server: TestServer::start_plaintext(config).await,
            token,
            local: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.server.dir.path().join("root")
    }

    fn local(&self, name: &str) -> PathBuf {
        self.local.path().join(name)
    }

    /// The binary with only FERRY_HOME, the token and --plaintext: the server is named in
    /// the arguments.
    fn bare(&self, verb: &str) -> std::process::Command {
        let mut cmd = ferry_bin(&self.server.home());
        cmd.arg(verb)
            .arg("--plaintext")
            .env("FERRY_TOKEN", self.token.to_string())
            .current_dir(self.local.path());
        cmd
    }

    /// The binary with --server preset too.
    fn ferry(&self, verb: &str) -> std::process::Command {
        let mut cmd = self.server.ferry(verb);
        cmd.env("FERRY_TOKEN", self.token.to_string())
            .current_dir(self.local.path());
        cmd
    }

    /// `127.0.0.1:PORT:PATH`.
    fn remote(&self, path: &str) -> String {
        format!("127.0.0.1:{}:{path}", self.server.addr.port())
    }
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn failed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should have failed: {stderr}");
    stderr
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_port_path_arguments_name_the_server_like_scp() {
    let s = Setup::new().await;
    write(&s.local("up.txt"), "up");
    let mut put = s.bare("put");
    put.arg("up.txt").arg(s.remote("landed.txt"));
    ok(&output(put).await);
    assert_eq!(
        std::fs::read_to_string(s.root().join("landed.txt")).unwrap(),
        "up"
    );

    let mut get = s.bare("get");
    get.arg(s.remote("landed.txt")).arg("back.txt");
    ok(&output(get).await);
    assert_eq!(std::fs::read_to_string(s.local("back.txt")).unwrap(), "up");

    // Two servers in one command are refused, not half-done.
    let mut two = s.bare("get");
    two.arg(s.remote("landed.txt"))
        .arg("127.0.0.2:1:other")
        .arg(".");
    assert!(failed(&output(two).await).contains("one server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sources_go_into_a_directory_and_remote_globs_expand() {
    let s = Setup::new().await;
    write(&s.local("a.txt"), "a");
    write(&s.local("b.txt"), "b");
    std::fs::create_dir(s.root().join("docs")).unwrap();
    let mut put = s.ferry("put");
    put.args(["a.txt", "b.txt", "docs/"]);
    ok(&output(put).await);
    assert_eq!(
        std::fs::read_to_string(s.root().join("docs/a.txt")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(s.root().join("docs/b.txt")).unwrap(),
        "b"
    );

    std::fs::create_dir(s.root().join("logs")).unwrap();
    for name in ["1.gz", "2.gz", "3.txt"] {
        write(&s.root().join("logs").join(name), name);
    }
    std::fs::create_dir(s.local("fetched")).unwrap();
    let mut get = s.ferry("get");
    get.args(["logs/*.gz", "fetched"]);
    ok(&output(get).await);
    let mut got: Vec<String> = std::fs::read_dir(s.local("fetched"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["1.gz", "2.gz"]);

    let mut none = s.ferry("get");
    none.args(["logs/*.zip", "fetched"]);
    assert!(failed(&output(none).await).contains("no remote file matches"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dash_is_stdout_for_get_and_stdin_for_put() {
    let s = Setup::new().await;
    let text = "line 1\nline 2\n".repeat(1000);
    let mut put = s.ferry("put");
    put.args(["-", "from-stdin.txt"]);
    ok(&output_with_stdin(put, &text).await);
    assert_eq!(
        std::fs::read_to_string(s.root().join("from-stdin.txt")).unwrap(),
        text
    );

    let mut get = s.ferry("get");
    get.args(["from-stdin.txt", "-"]);
    let out = output(get).await;
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_file_is_up_to_date_and_moves_nothing() {
    let s = Setup::new().await;
    write(&s.local("same.txt"), "same content");
    let mut put = s.ferry("put");
    put.arg("same.txt");
    ok(&output(put).await);

    // By size and time (the upload kept the mtime), then by hash.
    for extra in [None, Some("--checksum")] {
        let mut again = s.ferry("put");
        again.args(extra).args(["same.txt", "--json"]);
        let out = output(again).await;
        ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["up_to_date"], true, "{json}");
        assert_eq!(json["bytes_moved"], 0);
    }
    let mut get = s.ferry("get");
    get.arg("same.txt");
    assert!(ok(&output(get).await).contains("up to date"));

    // Same size and time but other bytes: only --checksum sees it.
    let remote = s.root().join("same.txt");
    let mtime = std::fs::metadata(&remote).unwrap().modified().unwrap();
    write(&remote, "SAME CONTENT");
    std::fs::File::options()
        .write(true)
        .open(&remote)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let mut get = s.ferry("get");
    get.args(["--checksum", "--json", "same.txt"]);
    let out = output(get).await;
    ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["bytes_moved"], 12, "{json}");
    assert_eq!(
        std::fs::read_to_string(s.local("same.txt")).unwrap(),
        "SAME CONTENT"
    );

    // A tree copied again moves nothing.
    std::fs::create_dir_all(s.local("tree/sub")).unwrap();
    write(&s.local("tree/sub/f"), "f");
    for round in 0..2 {
        let mut put = s.ferry("put");
        put.args(["-r", "--json", "tree"]);
        let out = output(put).await;
        ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let up_to_date = json["up_to_date"].as_array().unwrap().len();
        assert_eq!(up_to_date, round, "{json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_real_cause_and_mkdir_makes_the_missing_directory() {
    let s = Setup::new().await;
    write(&s.local("x"), "x");
    let mut put = s.ferry("put");
    put.args(["x", "nosuchdir/"]);
    let said = failed(&output(put).await);
    assert!(said.contains("'nosuchdir' does not exist"), "{said}");
    let mut put = s.ferry("put");
    put.args(["-p", "x", "made/deep/"]);
    ok(&output(put).await);
    assert!(s.root().join("made/deep/x").is_file());

    write(&s.root().join("remote.txt"), "r");
    let mut get = s.ferry("get");
    get.args(["remote.txt", "missing/"]);
    let said = failed(&output(get).await);
    assert!(
        said.contains("local directory 'missing/' does not exist"),
        "{said}"
    );

    std::fs::create_dir(s.local("tree")).unwrap();
    write(&s.root().join("file"), "f");
    let mut put = s.ferry("put");
    put.args(["-r", "tree", "file"]);
    let said = failed(&output(put).await);
    assert!(
        said.contains("cannot put the directory 'tree' into 'file': it is a file"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mv_renames_and_moves_into_a_directory() {
    let s = Setup::new().await;
    write(&s.root().join("a.txt"), "a");
    std::fs::create_dir_all(s.root().join("dir/sub")).unwrap();
    let mut mv = s.ferry("mv");
    mv.args(["a.txt", "b.txt"]);
    ok(&output(mv).await);
    assert!(!s.root().join("a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(s.root().join("b.txt")).unwrap(),
        "a"
    );

    let mut mv = s.ferry("mv");
    mv.args(["b.txt", "dir"]);
    ok(&output(mv).await);
    assert!(s.root().join("dir/b.txt").is_file());

    let mut into_itself = s.ferry("mv");
    into_itself.args(["dir", "dir/sub/inner"]);
    let said = failed(&output(into_itself).await);
    assert!(said.contains("into itself"), "{said}");
    let mut missing = s.ferry("mv");
    missing.args(["nothing", "x"]);
    assert!(failed(&output(missing).await).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_r_removes_a_tree_but_asks_or_needs_force() {
    let s = Setup::new().await;
    std::fs::create_dir_all(s.root().join("tree/a/b")).unwrap();
    write(&s.root().join("tree/a/b/f"), "f");
    write(&s.root().join("tree/g"), "g");

    let mut plain = s.ferry("rm");
    plain.arg("tree");
    let said = failed(&output(plain).await);
    assert!(
        said.contains("not_empty") || said.contains("still holds"),
        "{said}"
    );

    let mut scripted = s.ferry("rm");
    scripted.args(["-r", "tree"]);
    let said = failed(&output(scripted).await);
    assert!(said.contains("needs --force"), "{said}");
    assert!(s.root().join("tree/a/b/f").exists(), "nothing was removed");

    let mut forced = s.ferry("rm");
    forced.args(["-r", "--force", "tree"]);
    ok(&output(forced).await);
    assert!(!s.root().join("tree").exists());
}

/// A name that is not UTF-8 never vanishes: `ls` shows it escaped, `get -r` names it skipped
/// and exits 1, `rm -r` says why it cannot remove the tree before removing anything, and `rm`
/// of a directory that still holds something suggests `-r`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_not_utf8_is_listed_escaped_and_named_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let setup = Setup::new().await;
    let dir = setup.root().join("d");
    std::fs::create_dir(&dir).unwrap();
    write(&dir.join("fine.txt"), "fine");
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "bad").unwrap();

    let out = output({
        let mut cmd = setup.ferry("ls");
        cmd.arg("d");
        cmd
    })
    .await;
    ok(&out);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("bad\\xffname"), "{listed}");
    assert!(listed.contains("fine.txt"), "{listed}");

    let out = output({
        let mut cmd = setup.ferry("get");
        cmd.args(["-r", "d/", "copy"]);
        cmd
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("bad\\xffname") && said.contains("not UTF-8"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.local("copy/fine.txt")).unwrap(),
        "fine"
    );

    let said = failed(
        &output({
            let mut cmd = setup.ferry("rm");
            cmd.args(["-r", "--force", "d"]);
            cmd
        })
        .await,
    );
    assert!(
        said.contains("not UTF-8") && said.contains("nothing was removed"),
        "{said}"
    );
    assert!(dir.join("fine.txt").exists());

    let said = failed(
        &output({
            let mut cmd = setup.ferry("rm");
            cmd.arg("d");
            cmd
        })
        .await,
    );
    assert!(said.contains("rm -r"), "{said}");
}

/// A reader that goes away early is no error worth a word: `ls | head -1` and `get FILE - |
/// head -c 10` end quietly with SIGPIPE's status, as `exec` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_on_stdout_ends_quietly() {
    let setup = Setup::new().await;
    for i in 0..2000 {
        write(
            &setup
                .root()
                .join(format!("a-rather-long-file-name-to-fill-a-pipe-{i:05}")),
            "",
        );
    }
    std::fs::write(setup.root().join("big"), vec![b'x'; 4 << 20]).unwrap();
    for verb in ["ls -r", "get big -"] {
        let cmd = setup.ferry("ls");
        let program = cmd.get_program().to_owned();
        let args: Vec<String> = cmd
            .get_args()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let (verb_name, rest) = verb.split_once(' ').unwrap();
        let script = format!(
            "\"$0\" {verb_name} {} {rest} | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
            args.join(" ")
        );
        let mut sh = std::process::Command::new("bash");
        sh.arg("-c").arg(&script).arg(&program);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => sh.env(key, value),
                None => sh.env_remove(key),
            };
        }
        sh.current_dir(setup.local.path());
        let out = output(sh).await;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{verb}: {said}");
        assert!(!said.contains("Broken pipe"), "{verb}: {said}");
    }
}

/// Counts read right ("1 file", "1 directory"), a script sees one line whether or not
/// anything was copied, and a pattern in a directory part is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_are_one_line_with_singulars_and_patterns_only_in_the_last_name() {
    let setup = Setup::new().await;
    std::fs::create_dir_all(setup.local("tree/sub")).unwrap();
    write(&setup.local("tree/sub/one.txt"), "one");
    let put = |setup: &Setup| {
        let mut cmd = setup.ferry("put");
        cmd.args(["-r", "tree", "."]);
        cmd
    };
    let first = ok(&output(put(&setup)).await);
    assert_eq!(first.lines().count(), 1, "{first}");
    assert!(
        first.contains("1 file copied") && first.contains("1 directory,"),
        "{first}"
    );
    let again = ok(&output(put(&setup)).await);
    assert_eq!(again.lines().count(), 1, "{again}");
    assert!(
        again.contains("0 files copied") && again.contains("1 up to date"),
        "{again}"
    );

    write(&setup.local("single.txt"), "single");
    let copy = |setup: &Setup| {
        let mut cmd = setup.ferry("put");
        cmd.args(["single.txt", "single.txt"]);
        cmd
    };
    let copied = ok(&output(copy(&setup)).await);
    let up_to_date = ok(&output(copy(&setup)).await);
    assert_eq!(copied.lines().count(), 1, "{copied}");
    assert_eq!(up_to_date.lines().count(), 1, "{up_to_date}");

    let said = failed(
        &output({
            let mut cmd = setup.ferry("get");
            cmd.args(["*/one.txt", "out"]);
            cmd
        })
        .await,
    );
    assert!(said.contains("in the last name only"), "{said}");
}

/// Every verb that takes a remote path takes scp's HOST:PATH, and a web door's
/// ws(s)://HOST:PORT:PATH, as get and put do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_remote_path_verb_takes_host_path_and_a_web_door() {
    let (config, token) = config_with_user("writer", "read,write");
    let server = TestServer::start_with_web(config, true).await;
    let root = server.dir.path().join("root");
    let web = server.web_addr.unwrap();
    let tcp = format!("127.0.0.1:{}", server.addr.port());
    let run = |args: Vec<String>| {
        let mut cmd = ferry_bin(&server.home());
        cmd.arg(&args[0])
            .arg("--plaintext")
            .args(&args[1..])
            .env("FERRY_TOKEN", token.to_string());
        cmd
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    for (host, dir) in [(tcp.clone(), "by-tcp"), (format!("ws://{web}"), "by-web")] {
        ok(&output(run(s(&["mkdir", &format!("{host}:{dir}")]))).await);
        assert!(root.join(dir).is_dir(), "{host}");
        write(&root.join(dir).join("a.txt"), "a");
        ok(&output(run(s(&[
            "mv",
            &format!("{host}:{dir}/a.txt"),
            &format!("{host}:{dir}/b.txt"),
        ])))
        .await);
        assert!(root.join(dir).join("b.txt").exists(), "{host}");
        let out = output(run(s(&["ls", &format!("{host}:{dir}")]))).await;
        ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("b.txt"),
            "{host}"
        );
        ok(&output(run(s(&["rm", "-r", "--force", &format!("{host}:{dir}")]))).await);
        assert!(!root.join(dir).exists(), "{host}");
    }
}

/// An interrupted `put -r` run again sends only what is not complete on the server: the
/// directory goes to the same place both times (rsync's rule: `tree` is the directory itself,
/// into `dest` whether or not `dest` exists yet), the finished files are up to date, and the
/// cut file resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_tree_put_run_again_sends_only_what_is_missing() {
    let setup = Setup::new().await;
    let tree = setup.local("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..200 {
        write(&tree.join(format!("f{i:03}.txt")), &format!("file {i}"));
    }
    {
        use std::io::Write;
        let block = common::pattern(1 << 20, 7);
        let mut big = std::fs::File::create(tree.join("zbig.bin")).unwrap();
        for i in 0..512u32 {
            big.write_all(&block).unwrap();
            big.write_all(&i.to_le_bytes()).unwrap();
        }
    }
    let put = |setup: &Setup| {
        let mut cmd = setup.ferry("put");
        cmd.args(["-r", "--json", "tree", "dest"]);
        cmd
    };
    let mut first = put(&setup);
    first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    let there = setup.root().join("dest/tree");
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let partial_started = common::partials_under(&there)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
        let small_done = (0..200).all(|i| there.join(format!("f{i:03}.txt")).exists());
        if partial_started && small_done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && first.try_wait().unwrap().is_none(),
            "the first run never reached the big file (or finished first)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let out = output(put(&setup)).await;
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["to"], "dest/tree", "{report}");
    assert_eq!(
        report["up_to_date"].as_array().unwrap().len(),
        200,
        "{report}"
    );
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{report}");
    assert_eq!(files[0]["path"], "zbig.bin");
    assert!(files[0]["resumed_from"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        std::fs::read(there.join("zbig.bin")).unwrap(),
        std::fs::read(tree.join("zbig.bin")).unwrap()
    );
}
