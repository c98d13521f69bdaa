//! What a person at a terminal sees: the one-line summary a transfer leaves (driven in tmux,
//! read back with `capture-pane`), and Ctrl-C in the middle of a transfer keeping the partial.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tmux::Tmux;
use common::{ServerProcess, WAIT, pattern};

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_on_a_terminal_leaves_a_summary_line() {
    let server = ServerProcess::start(&["--plaintext"]);
    std::fs::write(server.root.join("data.bin"), pattern(3 << 20, 7)).unwrap();
    let local = tempfile::tempdir().unwrap();
    let command = format!(
        "cd {} && FERRY_HOME={} {} get --server {} --plaintext data.bin; echo EXIT=$?; sleep 60",
        quoted(local.path()),
        quoted(&local.path().join("home")),
        env!("CARGO_BIN_EXE_ferry"),
        server.addr
    );
    let tmux = Tmux::start(&command);
    let screen = tmux.wait_for("EXIT=").await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    let line = screen
        .lines()
        .find(|l| l.starts_with("data.bin"))
        .unwrap_or_else(|| panic!("no summary line:\n{screen}"));
    assert!(
        line.contains("3.0 MiB") && line.contains(" s ") && line.ends_with("/s"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_the_middle_keeps_the_partial_and_says_so() {
    let server = ServerProcess::start(&["--plaintext"]);
    std::fs::write(server.root.join("big.bin"), pattern(64 << 20, 3)).unwrap();
    let local = tempfile::tempdir().unwrap();
    let client = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "get",
            "--server",
            &server.addr.to_string(),
            "--plaintext",
            "big.bin",
        ])
        .env("FERRY_HOME", local.path().join("home"))
        .current_dir(local.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once some bytes are in, the server is frozen, so the transfer is surely unfinished.
    let partial = local.path().join(".big.bin.ferry-part");
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no bytes arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    common::send_signal(server.child.id(), rustix::process::Signal::STOP);
    common::send_signal(client.id(), rustix::process::Signal::INT);
    let out = tokio::task::spawn_blocking(move || client.wait_with_output().unwrap())
        .await
        .unwrap();
    common::send_signal(server.child.id(), rustix::process::Signal::CONT);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("partial kept: re-run to resume"), "{said}");
    assert!(partial.exists() && !local.path().join("big.bin").exists());
}

/// `ferry ping` against a TLS server met for the first time, in a terminal.
fn first_ping(server: &common::TestServer, home: &Path, extra: &str) -> Tmux {
    Tmux::start(&format!(
        "FERRY_HOME={} {} ping --server {} -c 1 {extra}; echo EXIT=$?; sleep 60",
        quoted(home),
        env!("CARGO_BIN_EXE_ferry"),
        server.addr
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_is_trusted_only_when_the_person_says_yes() {
    let server = common::TestServer::start(ferry::config::ServerConfig::default()).await;
    let fingerprint = server.fingerprint.clone().unwrap();
    let home = tempfile::tempdir().unwrap();
    let pins = home.path().join("known_servers");

    let tmux = first_ping(&server, home.path(), "");
    let screen = tmux.wait_for("(yes/no)?").await;
    assert!(
        screen.contains(&fingerprint),
        "the fingerprint is shown:\n{screen}"
    );
    tmux.type_line("no");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(
        screen.contains("EXIT=1") && screen.contains("not trusted"),
        "{screen}"
    );
    assert!(
        !pins.exists()
            || !std::fs::read_to_string(&pins)
                .unwrap()
                .contains(&fingerprint)
    );
    drop(tmux);

    let tmux = first_ping(&server, home.path(), "");
    tmux.wait_for("(yes/no)?").await;
    tmux.type_line("yes");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        std::fs::read_to_string(&pins)
            .unwrap()
            .contains(&fingerprint)
    );
    drop(tmux);

    // Known now: no question.
    let tmux = first_ping(&server, home.path(), "");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(
        screen.contains("EXIT=0") && !screen.contains("yes/no"),
        "{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_pins_without_asking_on_a_terminal() {
    let server = common::TestServer::start(ferry::config::ServerConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let tmux = first_ping(&server, home.path(), "--accept-new");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(
        screen.contains("EXIT=0") && !screen.contains("yes/no"),
        "{screen}"
    );
    assert!(screen.contains("pinned the identity"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_r_on_a_terminal_asks_with_the_tree_s_size() {
    let (config_dir, token) = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let token = ferry::config::add_user(
            &path,
            "ops",
            ferry::protocol::Permissions::parse_list("read,write").unwrap(),
        )
        .unwrap();
        (dir, token)
    };
    let server = ServerProcess::start(&[
        "--plaintext",
        "--config",
        config_dir.path().join("config.toml").to_str().unwrap(),
    ]);
    std::fs::create_dir_all(server.root.join("tree/sub")).unwrap();
    std::fs::write(server.root.join("tree/sub/f"), vec![7u8; 3 << 20]).unwrap();
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&format!(
        "FERRY_HOME={} FERRY_TOKEN={token} {} rm -r --server {} --plaintext tree; echo EXIT=$?; sleep 60",
        quoted(home.path()),
        env!("CARGO_BIN_EXE_ferry"),
        server.addr
    ));
    let screen = tmux.wait_for("(yes/no)").await;
    assert!(
        screen.contains("1 file, 1 directory, 3.0 MiB"),
        "the question says what goes:\n{screen}"
    );
    tmux.type_line("yes");
    let screen = tmux.wait_for("EXIT=").await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!server.root.join("tree").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_a_terminal_echoes_own_lines_confirms_nicks_and_leaves_cleanly() {
    let server = common::TestServer::start_plaintext(ferry::config::ServerConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&format!(
        "FERRY_HOME={} {} chat --server {} --plaintext --nick me; echo EXIT=$?; sleep 60",
        quoted(home.path()),
        env!("CARGO_BIN_EXE_ferry"),
        server.addr
    ));
    tmux.wait_for("as me;").await;
    tmux.type_line("hello");
    tmux.wait_for("[lobby] me: hello").await;
    tmux.type_line("/me waves");
    tmux.wait_for("[lobby] * me waves").await;
    tmux.type_line("/nick meow");
    tmux.wait_for("you are now known as meow").await;
    tmux.type_line("hi again");
    tmux.wait_for("[lobby] meow: hi again").await;
    tmux.type_line("q");
    let screen = tmux.wait_for("EXIT=").await;
    let last = screen.lines().find(|l| l.contains("EXIT=")).unwrap();
    assert_eq!(last, "EXIT=0", "no prompt left half-drawn:\n{screen}");
}

/// What a person joining a room with a past sees: the history lines with the time each was
/// said, a marker where live lines begin, their own line once (the typed copy gives way to the
/// server's confirmation), and a `/msg` confirmed with its recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_a_terminal_shows_history_with_times_then_live_lines_once() {
    let server = common::TestServer::start_plaintext(ferry::config::ServerConfig::default()).await;
    let (mut tx, mut rx, _) = ferry::client::chat::join(
        server.client(None).await.into_connection(),
        ferry::client::chat::ChatTarget::Room("lobby".into()),
        "early",
        false,
    )
    .await
    .unwrap();
    common::say_acked(&mut tx, &mut rx, "said-before").await;
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&format!(
        "FERRY_HOME={} {} chat --server {} --plaintext --nick me; echo EXIT=$?; sleep 60",
        quoted(home.path()),
        env!("CARGO_BIN_EXE_ferry"),
        server.addr
    ));
    let screen = tmux.wait_for("live from here").await;
    let history = screen
        .lines()
        .find(|l| l.contains("early: said-before"))
        .unwrap_or_else(|| panic!("the history line:\n{screen}"));
    // `[lobby] (2026-12-07 06:45 UTC) early: said-before`
    let when = history
        .strip_prefix("[lobby] (")
        .and_then(|rest| rest.split_once(" UTC) early: said-before"))
        .map(|(when, _)| when)
        .unwrap_or_else(|| panic!("no time on the history line: {history}"));
    assert!(
        when.len() == 16 && when.as_bytes()[4] == b'-' && when.as_bytes()[13] == b':',
        "{history}"
    );
    tmux.type_line("hello-once");
    let screen = tmux.wait_for("[lobby] me: hello-once").await;
    assert_eq!(
        screen.matches("hello-once").count(),
        1,
        "the typed line and its echo both stayed:\n{screen}"
    );
    tmux.type_line("/msg early psst-once");
    let screen = tmux.wait_for("[-> early] me: psst-once").await;
    assert_eq!(screen.matches("psst-once").count(), 1, "{screen}");
    tmux.type_line("q");
    tmux.wait_for("EXIT=").await;
    drop((tx, rx));
}
