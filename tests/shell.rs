//! `ferry shell` and `ferry exec` when there is no terminal, and when the client is told to
//! stop: they must end, never hang.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestServer, WAIT, config_with_user, output_with_stdin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_without_a_terminal_reads_stdin_to_its_end() {
    let (config, token) = config_with_user("ops", "exec");
    let server = TestServer::start(config).await;
    let mut cmd = server.ferry("shell");
    cmd.env("FERRY_TOKEN", token.to_string());
    let out = tokio::time::timeout(
        WAIT,
        output_with_stdin(cmd, "echo hello-from-shell\nexit 3\n"),
    )
    .await
    .expect("ferry shell with piped stdin ends instead of hanging");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stdout.trim(), "hello-from-shell", "{stderr}");
    assert!(stderr.contains("no pseudo-terminal"), "{stderr}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_client_even_when_the_command_ignores_it() {
    let (config, token) = config_with_user("ops", "exec");
    let server = TestServer::start(config).await;
    let mut cmd = server.ferry("exec");
    cmd.env("FERRY_TOKEN", token.to_string()).args([
        "--",
        "sh",
        "-c",
        "trap '' TERM HUP; echo ready; sleep 60",
    ]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut line).map(|()| line)
    });
    assert_eq!(
        &tokio::time::timeout(WAIT, ready)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        b"ready\n"
    );
    let sent = Instant::now();
    common::send_signal(child.id(), rustix::process::Signal::TERM);
    let status = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .expect("the client ends after SIGTERM")
    .unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(sent.elapsed() < Duration::from_secs(15));
    let _ = stdin.write_all(b"");
    server.wait_for_active(0).await;
    server.stop().await;
}
