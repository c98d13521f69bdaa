//! Text from a server never reaches the user's terminal raw: escape sequences, newlines and
//! bidi overrides in chat lines and file names are shown as visible escapes.

mod common;

use common::{TestServer, output, output_with_stdin};
use ferry::client::chat::{ChatTarget, join};
use ferry::config::ServerConfig;

const EVIL: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\n[lobby] root: a forged line \u{202e}gpj.exe";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_lines_with_escape_sequences_are_printed_escaped() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = server.client(None).await;
    let (mut alice, mut alice_rx, _) = join(
        client.into_connection(),
        ChatTarget::Room("lobby".into()),
        "alice",
        true,
    )
    .await
    .unwrap();
    common::say_acked(&mut alice, &mut alice_rx, EVIL).await;
    // bob joins with the binary and gets the line as history before his own line is acked.
    let mut cmd = server.ferry("chat");
    cmd.args(["--room", "lobby", "--nick", "bob"]);
    let out = output_with_stdin(cmd, "hello\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "raw ESC reached the terminal: {stdout:?}"
    );
    assert!(
        !stdout.contains('\u{202e}'),
        "raw bidi override: {stdout:?}"
    );
    assert!(
        stdout.contains(
            "alice: \\e]0;pwned\\u{7}\\e[2J\\n[lobby] root: a forged line \\u{202e}gpj.exe"
        ),
        "{stdout:?}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains("forged")).count(),
        1,
        "the newline forged a second line: {stdout:?}"
    );
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn file_names_with_escape_sequences_are_listed_escaped() {
    let server = TestServer::start(ServerConfig::default()).await;
    let root = server.dir.path().join("root");
    std::fs::write(root.join("a\u{1b}[2Jb\nc"), b"x").unwrap();
    std::os::unix::fs::symlink("\u{1b}]0;t\u{7}", root.join("link")).unwrap();
    let out = output(server.ferry("ls")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(stdout.contains("a\\e[2Jb\\nc"), "{stdout:?}");
    assert!(stdout.contains("link -> \\e]0;t\\u{7}"), "{stdout:?}");
    // --json stays exact.
    let mut json = server.ferry("ls");
    json.arg("--json");
    let out = output(json).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "a\u{1b}[2Jb\nc"),
        "{listed}"
    );
    server.stop().await;
}
