//! Signing in with SSH keys, with OpenSSH as the oracle: keys written by `ssh-keygen`, a real
//! `ssh-agent` holding them (`ssh-add`), and the real `ferry` binary signing in with them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ServerProcess, WAIT, ferry_user};
use ferry::auth::keys::signed_message;
use ferry::client::keys::KeyLogin;
use ferry::client::{Client, ClientOptions};
use ferry::config::add_user_with_keys;
use ferry::connection::Connection;
use ferry::protocol::preamble::PREAMBLE_LEN;
use ferry::protocol::{ErrorCode, Hello, KeyProof, Message, Mode, Permissions, Preamble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A key pair written by `ssh-keygen` (`passphrase` empty for none); returns the private file.
fn keygen(dir: &Path, kind: &str, name: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        &format!("{name}@test",),
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd
        .output()
        .expect("ssh-keygen is installed (openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for the server's log line saying it read its changed config.
fn wait_for_reload(server: &ServerProcess) {
    loop {
        let line = server
            .stderr
            .recv_timeout(WAIT)
            .expect("the server never reloaded");
        if line.contains("reloaded users and permissions") {
            return;
        }
    }
}

fn public_line(private: &Path) -> String {
    std::fs::read_to_string(private.with_extension("pub")).unwrap()
}

/// `ferry exec` as `user` with these extra arguments and environment: HOME is an empty
/// directory and no agent is set unless given, so only what the test chose is used.
fn ferry_exec(
    server: &ServerProcess,
    home: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> std::process::Output {
    let mut cmd = common::ferry_bin(&server.dir.path().join("client-home"));
    cmd.arg("exec")
        .arg("--server")
        .arg(server.addr.to_string())
        .args(args)
        .args(["--", "echo", "signed-in"])
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_USER")
        .stdin(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    home: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.path().join("server.toml");
    Setup {
        keys,
        home,
        config,
        _dir: dir,
    }
}

#[test]
fn ed25519_ecdsa_and_rsa_key_files_sign_in_and_only_as_their_user() {
    let s = setup();
    let ed = keygen(&s.keys, "ed25519", "ed", "");
    let ec = keygen(&s.keys, "ecdsa", "ec", "");
    let rsa = keygen(&s.keys, "rsa", "rsa", "");
    let other = keygen(&s.keys, "ed25519", "other", "");
    let exec = Permissions::parse_list("exec").unwrap();
    add_user_with_keys(
        &s.config,
        "alice",
        exec,
        &[public_line(&ed), public_line(&ec), public_line(&rsa)],
    )
    .unwrap();
    add_user_with_keys(&s.config, "bob", exec, &[public_line(&other)]).unwrap();
    let server = ServerProcess::start(&["--config", s.config.to_str().unwrap()]);
    for key in [&ed, &ec, &rsa] {
        let out = ferry_exec(
            &server,
            &s.home,
            &["--user", "alice", "--identity", key.to_str().unwrap()],
            &[],
        );
        assert_eq!(
            stdout(&out),
            "signed-in\n",
            "{}: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The default files, as ssh finds them: ~/.ssh/id_ecdsa (no id_ed25519 there).
    std::fs::create_dir_all(s.home.join(".ssh")).unwrap();
    std::fs::copy(&ec, s.home.join(".ssh/id_ecdsa")).unwrap();
    let out = ferry_exec(&server, &s.home, &["--user", "alice"], &[]);
    assert_eq!(
        stdout(&out),
        "signed-in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // FERRY_USER names the user as --user does.
    let out = ferry_exec(&server, &s.home, &[], &[("FERRY_USER", Path::new("alice"))]);
    assert_eq!(
        stdout(&out),
        "signed-in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bob's key is not alice's, and alice's keys are not bob's.
    for (user, key) in [("alice", &other), ("bob", &ed)] {
        let out = ferry_exec(
            &server,
            &s.home,
            &["--user", user, "--identity", key.to_str().unwrap()],
            &[],
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("authentication failed"), "{stderr}");
    }
}

/// A running `ssh-agent` (foreground, on its own socket), stopped when dropped.
struct SshAgent {
    child: std::process::Child,
    socket: PathBuf,
}

impl SshAgent {
    fn start(dir: &Path) -> SshAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent is installed (openssh-client)");
        let agent = SshAgent { child, socket };
        // The agent's socket appears once it listens.
        let start = std::time::Instant::now();
        while !agent.socket.exists() {
            assert!(start.elapsed() < WAIT, "ssh-agent never listened");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        agent
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_agent_signs_without_the_private_key_being_read() {
    let s = setup();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = SshAgent::start(agent_dir.path());
    let rsa = keygen(&s.keys, "rsa", "in-agent", "");
    let unrelated = keygen(&s.keys, "ed25519", "unrelated", "");
    add_user_with_keys(
        &s.config,
        "alice",
        Permissions::parse_list("exec").unwrap(),
        &[public_line(&rsa)],
    )
    .unwrap();
    // The agent holds an unrelated key first and alice's second: the server picks hers.
    agent.add(&unrelated);
    agent.add(&rsa);
    // The private halves are gone: only the agent can sign.
    std::fs::remove_file(&rsa).unwrap();
    std::fs::remove_file(&unrelated).unwrap();
    let server = ServerProcess::start(&["--config", s.config.to_str().unwrap()]);
    let out = ferry_exec(
        &server,
        &s.home,
        &["--user", "alice"],
        &[("SSH_AUTH_SOCK", &agent.socket)],
    );
    assert_eq!(
        stdout(&out),
        "signed-in\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_encrypted_key_without_a_terminal_fails_in_one_line() {
    let s = setup();
    let locked = keygen(&s.keys, "ed25519", "locked", "correct horse");
    add_user_with_keys(
        &s.config,
        "alice",
        Permissions::parse_list("exec").unwrap(),
        &[public_line(&locked)],
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", s.config.to_str().unwrap()]);
    let out = ferry_exec(
        &server,
        &s.home,
        &["--user", "alice", "--identity", locked.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("encrypted") && stderr.contains("no terminal"),
        "{stderr}"
    );
}

fn options(server: &ServerProcess, key: &Path) -> ClientOptions {
    ClientOptions {
        server: server.addr.to_string(),
        token: None,
        plaintext: false,
        home: server.dir.path().join("client-home"),
        connect_timeout: WAIT,
        accept_new: true,
        keys: Some(KeyLogin {
            user: "alice".into(),
            identity: Some(key.to_path_buf()),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_ends_its_sessions_and_no_longer_signs_in() {
    let s = setup();
    let kept = keygen(&s.keys, "ed25519", "kept", "");
    let removed = keygen(&s.keys, "ed25519", "removed", "");
    add_user_with_keys(
        &s.config,
        "alice",
        Permissions::parse_list("chat").unwrap(),
        &[public_line(&kept), public_line(&removed)],
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", s.config.to_str().unwrap()]);
    let mut open = Client::connect(&options(&server, &removed)).await.unwrap();
    open.ping(1).await.unwrap();
    let listed = ferry_user(&s.config, &["key", "list", "alice"]);
    assert!(
        listed.contains("removed@test") && listed.contains("SHA256:"),
        "{listed}"
    );
    ferry_user(&s.config, &["key", "remove", "alice", "removed@test"]);
    wait_for_reload(&server);
    assert!(
        open.ping(2).await.is_err(),
        "the removed key's session ends"
    );
    let err = Client::connect(&options(&server, &removed))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let mut still = Client::connect(&options(&server, &kept)).await.unwrap();
    still.ping(1).await.unwrap();
}

/// Signs in by hand up to `key_challenge`, returns the session and the server's nonce.
async fn key_challenge(
    server: &ServerProcess,
    offered: &str,
    client_nonce: &str,
) -> (Connection<tokio::net::TcpStream>, String) {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
        .await
        .unwrap();
    let mut answer = [0u8; PREAMBLE_LEN];
    tcp.read_exact(&mut answer).await.unwrap();
    let mut conn = Connection::new(tcp);
    conn.write_message(&Message::Hello(Hello {
        client: "test".into(),
        user: Some("alice".into()),
        nonce: Some(client_nonce.into()),
        keys: vec![offered.into()],
    }))
    .await
    .unwrap();
    match conn.read_message().await.unwrap() {
        Message::KeyChallenge(challenge) => (conn, challenge.nonce),
        other => panic!("no key_challenge: {other:?}"),
    }
}

async fn answer(conn: &mut Connection<tokio::net::TcpStream>, signature: &[u8]) -> Message {
    conn.write_message(&Message::KeyProof(KeyProof {
        signature: STANDARD.encode(signature),
    }))
    .await
    .unwrap();
    conn.read_message().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_signature_and_one_over_another_server_are_refused() {
    let s = setup();
    let key = keygen(&s.keys, "ed25519", "alice", "");
    let line = public_line(&key);
    add_user_with_keys(
        &s.config,
        "alice",
        Permissions::parse_list("chat").unwrap(),
        std::slice::from_ref(&line),
    )
    .unwrap();
    let server = ServerProcess::start(&["--plaintext", "--config", s.config.to_str().unwrap()]);
    let private = ssh_key::PrivateKey::read_openssh_file(&key).unwrap();
    let wire = ferry::auth::keys::AuthorizedKey::parse(&line)
        .unwrap()
        .wire();
    let sign = |message: &[u8]| -> Vec<u8> {
        let signature: ssh_key::Signature = signature::Signer::try_sign(&private, message).unwrap();
        signature.try_into().unwrap()
    };
    let client_nonce = STANDARD.encode([7u8; 24]);

    // Signed over the right message: welcome. Kept for a replay.
    let (mut conn, nonce) = key_challenge(&server, &wire, &client_nonce).await;
    let good = sign(&signed_message(
        "alice",
        &client_nonce,
        &nonce,
        "plaintext",
        &wire,
    ));
    assert!(matches!(
        answer(&mut conn, &good).await,
        Message::Welcome(_)
    ));

    // The same signature again: the server's nonce is new, so it proves nothing.
    let (mut conn, _) = key_challenge(&server, &wire, &client_nonce).await;
    match answer(&mut conn, &good).await {
        Message::Error(refusal) => assert_eq!(refusal.code, ErrorCode::AuthFailed),
        other => panic!("a replay was let in: {other:?}"),
    }

    // A signature over another server's identity (a relay): refused.
    let (mut conn, nonce) = key_challenge(&server, &wire, &client_nonce).await;
    let relayed = sign(&signed_message(
        "alice",
        &client_nonce,
        &nonce,
        "sha256:AAAA",
        &wire,
    ));
    match answer(&mut conn, &relayed).await {
        Message::Error(refusal) => assert_eq!(refusal.code, ErrorCode::AuthFailed),
        other => panic!("a relayed signature was let in: {other:?}"),
    }
}
