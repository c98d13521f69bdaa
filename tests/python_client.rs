//! The standard-library Python client in examples/python, against a real server: proof that
//! PROTOCOL.md is complete enough to write a client from.

mod common;

use common::{TestServer, config_with_user, fast_failures, output};
use ferry::protocol::ChatMessage;

fn python(server: &TestServer, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/python/ferry_client.py"
    ))
    .arg("--server")
    .arg(server.addr.to_string())
    .arg("--home")
    .arg(server.home())
    .args(args)
    .env_remove("FERRY_TOKEN");
    if server.fingerprint.is_none() {
        cmd.arg("--plaintext");
    }
    cmd
}

fn with_command(mut cmd: std::process::Command, rest: &[&str]) -> std::process::Command {
    cmd.args(rest);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_pings_over_tls_with_a_token_and_pins_the_server() {
    let (config, token) = config_with_user("alice", "chat,exec");
    let server = TestServer::start(config).await;
    let token = token.to_string();
    let out = output(with_command(
        python(&server, &["--token", &token]),
        &["ping", "-c", "3"],
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("as alice, may chat,exec"), "{stdout}");
    assert!(
        stdout.contains("pong seq=3") && stdout.contains("3 pongs"),
        "{stdout}"
    );
    let fingerprint = server.fingerprint.as_deref().unwrap();
    assert!(
        stderr.contains(fingerprint),
        "pinned on first use: {stderr}"
    );
    let pins = std::fs::read_to_string(server.home().join("known_servers")).unwrap();
    assert!(pins.contains(fingerprint));

    // The Rust client shares the pin store and accepts the pin the Python client wrote.
    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "1", "-i", "0"]);
        cmd
    })
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_speaks_plaintext_and_anonymous() {
    let server = TestServer::start_plaintext(Default::default()).await;
    let out = output(with_command(python(&server, &[]), &["ping", "-c", "2"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("as anonymous, may chat,read"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_reports_a_wrong_token_and_a_changed_identity() {
    let (config, _token) = config_with_user("alice", "exec");
    let server = TestServer::start(fast_failures(config)).await;
    let wrong = format!("alice:{}", "z".repeat(43));
    let out = output(with_command(
        python(&server, &["--token", &wrong]),
        &["ping"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");

    std::fs::write(
        server.home().join("known_servers"),
        format!("{} sha256:{}\n", server.addr, "0".repeat(64)),
    )
    .unwrap();
    let out = output(with_command(python(&server, &[]), &["ping"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SERVER IDENTITY CHANGED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_chats_with_the_bot_and_a_room() {
    let server = TestServer::start(Default::default()).await;
    let mut cmd = with_command(
        python(&server, &[]),
        &["chat", "--with", "babyshen", "--nick", "py"],
    );
    cmd.stdin(std::process::Stdio::piped());
    let out = common::output_with_stdin(cmd, "我\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "[direct] babyshen: 欢迎致电babyshen",
            "[direct] babyshen: 我好"
        ]
    );

    // A room line from the Python client reaches a member using the Rust client.
    let client = server.client(None).await;
    let (_tx, mut rx, _) = ferry::client::chat::join(
        client.into_connection(),
        ferry::client::chat::ChatTarget::Room("lobby".into()),
        "rusty",
        false,
    )
    .await
    .unwrap();
    let cmd = with_command(
        python(&server, &[]),
        &["chat", "--room", "lobby", "--nick", "py"],
    );
    let out = common::output_with_stdin(cmd, "hello from python\n").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = tokio::time::timeout(common::WAIT, async {
        loop {
            if let Some(ferry::protocol::Message::ChatMessage(ChatMessage { from, text, .. })) =
                rx.next().await.unwrap()
            {
                return (from, text);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, ("py".to_string(), "hello from python".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_runs_commands_with_their_exit_status_and_streams() {
    let (config, token) = config_with_user("ops", "exec");
    let server = TestServer::start(config).await;
    let token = token.to_string();
    let cmd = with_command(
        python(&server, &["--token", &token]),
        &[
            "exec",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; tr a-z A-Z; exit 7",
        ],
    );
    let out = common::output_with_stdin(cmd, "piped in\n").await;
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nPIPED IN\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().last(), Some("err"), "{stderr}");

    let cmd = with_command(python(&server, &[]), &["exec", "--", "true"]);
    let out = common::output_with_stdin(cmd, "").await;
    assert_eq!(out.status.code(), Some(255), "anonymous exec is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exec"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_puts_and_gets_files_verified_with_sha256() {
    let (config, token) = config_with_user("writer", "read,write");
    let server = TestServer::start(config).await;
    let token = token.to_string();
    let work = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let local = work.path().join("in.bin");
    std::fs::write(&local, &data).unwrap();

    let out = common::output_with_stdin(
        with_command(
            python(&server, &["--token", &token]),
            &["put", local.to_str().unwrap(), "up.bin"],
        ),
        "",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(server.dir.path().join("root/up.bin")).unwrap(),
        data
    );
    let sha = ring::digest::digest(&ring::digest::SHA256, &data);
    let hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&hex));

    // A stale partial with wrong bytes is not trusted; the download is verified.
    let back = work.path().join("back.bin");
    std::fs::write(work.path().join(".back.bin.ferry-part"), vec![0u8; 1000]).unwrap();
    let out = common::output_with_stdin(
        with_command(
            python(&server, &["--token", &token]),
            &["get", "up.bin", back.to_str().unwrap()],
        ),
        "",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert!(!work.path().join(".back.bin.ferry-part").exists());

    // The Rust client reads what the Python client wrote, and the hashes agree.
    let out = output({
        let mut cmd = server.ferry("get");
        cmd.env("FERRY_TOKEN", &token)
            .args(["--sha256", "--json", "up.bin"])
            .arg(work.path().join("rust.bin"));
        cmd
    })
    .await;
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["hash"], hex);
}
