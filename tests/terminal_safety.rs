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

/// The server's own log escapes what clients choose: a SASL user name holding CR-LF cannot
/// forge a log line, nor an escape sequence reach the operator's terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_log_escapes_client_supplied_names() {
    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let server = common::ServerProcess::start(&["--plaintext", "--irc", "127.0.0.1:0"]);
    let irc = server
        .startup
        .iter()
        .find_map(|line| line.split("IRC door on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the server prints its IRC door")
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&irc).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let mut lines = BufReader::new(read).lines();
    let forged =
        "mallory\r\n2026-12-06T00:00:00Z  INFO ferry: login ok user=alice\u{1b}]0;owned\u{7}";
    let plain = format!("\0{forged}\0wrong-secret");
    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
    write
        .write_all(
            format!("CAP REQ :sasl\r\nNICK m\r\nUSER m 0 * :m\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE {encoded}\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::timeout(common::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(" 904 ") {
                return;
            }
        }
        panic!("the server closed before refusing the sign-in");
    })
    .await
    .expect("a 904 in time");
    let logged = loop {
        let line = server
            .stderr
            .recv_timeout(common::WAIT)
            .expect("the failed login is logged");
        if line.contains("failed login") {
            break line;
        }
    };
    assert!(logged.contains("mallory\\r\\n2026"), "{logged:?}");
    assert!(
        !logged.contains('\u{1b}') && !logged.contains('\r'),
        "{logged:?}"
    );
    // Nothing else the server printed starts with the forged text.
    while let Ok(line) = server
        .stderr
        .recv_timeout(std::time::Duration::from_millis(200))
    {
        assert!(
            !line.starts_with("2026-12-06T00:00:00Z"),
            "a forged line: {line:?}"
        );
    }
}
