//! `ferry shell` and `ferry exec` when there is no terminal, and when the client is told to
//! stop: they must end, never hang.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestServer, WAIT, config_with_user, output_with_stdin};

/// The login shell these tests run: the account's own (root's bash here) reads the machine's rc
/// files, and on the CI machine they run a pyenv init whose lock, left behind by a shell killed
/// mid-init, makes every later login shell wait 60 s.
const QUIET_SHELL: &str = "/bin/sh";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_without_a_terminal_reads_stdin_to_its_end() {
    let (mut config, token) = config_with_user("ops", "exec");
    config.exec.shell = Some(QUIET_SHELL.into());
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

/// `[exec] shell` replaces the account's login shell, with `SHELL` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_shell_is_the_login_shell() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fsh");
    std::fs::write(&script, "#!/bin/sh\necho \"custom $SHELL\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (mut config, token) = config_with_user("ops", "exec");
    config.exec.shell = Some(script.to_str().unwrap().into());
    let server = TestServer::start(config).await;
    let mut cmd = server.ferry("shell");
    cmd.env("FERRY_TOKEN", token.to_string());
    let out = tokio::time::timeout(WAIT, output_with_stdin(cmd, ""))
        .await
        .expect("ferry shell ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("custom {}", script.display()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
