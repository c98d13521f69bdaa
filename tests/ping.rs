//! `ferry ping` through the real binary against a real server.

mod common;

use common::{TestServer, ferry_bin, output};
use ferry::config::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_prints_each_round_trip_and_a_summary_and_pins_the_server() {
    let server = TestServer::start(ServerConfig::default()).await;
    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "3", "-i", "0"]);
        cmd
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for seq in 1..=3 {
        assert!(stdout.contains(&format!("seq={seq} time=")), "{stdout}");
    }
    assert!(!stdout.contains("seq=4"), "{stdout}");
    assert!(
        stdout.contains("3 pongs, rtt min/median/max = "),
        "{stdout}"
    );
    let fingerprint = server.fingerprint.clone().unwrap();
    assert!(
        stderr.contains("pinned the identity") && stderr.contains(&fingerprint),
        "{stderr}"
    );
    let pins = std::fs::read_to_string(server.home().join("known_servers")).unwrap();
    assert_eq!(pins.trim(), format!("{} {fingerprint}", server.addr));

    // Second time: the pin is known, so nothing is said about it.
    let again = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "1", "-i", "0"]);
        cmd
    })
    .await;
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("pinned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_ping_against_a_plaintext_server() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "2", "-i", "0"]);
        cmd
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("plaintext") && stdout.contains("2 pongs"),
        "{stdout}"
    );
    assert!(!server.home().join("known_servers").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_to_an_unreachable_server_fails_with_one_clear_line() {
    // Reserve a free port, then close it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["ping", "--server", &format!("127.0.0.1:{port}"), "-c", "1"]);
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ferry: cannot connect to 127.0.0.1:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_address_and_token_come_from_the_environment() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut cmd = ferry_bin(&server.home());
    cmd.args(["ping", "--plaintext", "-c", "1", "-i", "0"])
        .env("FERRY_SERVER", server.addr.to_string())
        .env("FERRY_TOKEN", "not a token");
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("FERRY_TOKEN") && stderr.contains("NAME:SECRET"),
        "{stderr}"
    );

    let mut cmd = ferry_bin(&server.home());
    cmd.args(["ping", "--plaintext", "-c", "1", "-i", "0"])
        .env("FERRY_SERVER", server.addr.to_string());
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_cover_every_verb() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["completions", "bash"]);
    let out = output(cmd).await;
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for verb in [
        "serve", "ping", "chat", "exec", "shell", "ls", "get", "put", "forget",
    ] {
        assert!(script.contains(verb), "{verb} missing");
    }
}
