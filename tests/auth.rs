//! Users and tokens: `ferry user add`, token proofs, refusals, rate limiting, anonymous rights.

mod common;

use ferry::protocol::{Challenge, Hello, Proof, Refusal};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{
    ServerProcess, TestServer, config_with_user, fast_failures, ferry_bin, output, raw_plaintext,
    refusal_code,
};
use ferry::auth::token::Token;
use ferry::client::Client;
use ferry::config::ServerConfig;
use ferry::protocol::{ErrorCode, Message, Permission, Permissions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_prints_only_the_token_and_the_server_honours_it() {
    let home = tempfile::tempdir().unwrap();
    let config_path = home.path().join("ferry.toml");
    let mut cmd = ferry_bin(home.path());
    cmd.args([
        "user",
        "add",
        "alice",
        "--allow",
        "chat,read,write,exec",
        "--config",
    ])
    .arg(&config_path);
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the token: {stdout}");
    let token: Token = stdout.trim().parse().unwrap();
    assert_eq!(token.user(), "alice");
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(!text.contains(token.secret()), "the config holds no token");

    // A second user extends the same file.
    let mut cmd = ferry_bin(home.path());
    cmd.args(["user", "add", "bob", "--allow", "read", "--config"])
        .arg(&config_path);
    let bob: Token = String::from_utf8(output(cmd).await.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let config = ServerConfig::load(&config_path, true).unwrap();
    let server = TestServer::start(config).await;
    let alice_session = server.client(Some(token)).await;
    let granted = &alice_session.info().granted;
    assert_eq!(granted.user.as_deref(), Some("alice"));
    assert_eq!(
        granted.permissions,
        Permissions::parse_list("chat,read,write,exec").unwrap()
    );
    let bob_session = server.client(Some(bob)).await;
    assert_eq!(
        bob_session.info().granted.permissions.to_vec(),
        vec![Permission::Read]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_refuses_bad_names_permissions_and_duplicates() {
    let home = tempfile::tempdir().unwrap();
    let config_path = home.path().join("ferry.toml");
    for (name, allow, needle) in [
        ("../evil", "chat", "invalid user name"),
        ("carol", "chat,root", "unknown permission 'root'"),
    ] {
        let mut cmd = ferry_bin(home.path());
        cmd.args(["user", "add", name, "--allow", allow, "--config"])
            .arg(&config_path);
        let out = output(cmd).await;
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle));
    }
    for expect_success in [true, false] {
        let mut cmd = ferry_bin(home.path());
        cmd.args(["user", "add", "dave", "--allow", "chat", "--config"])
            .arg(&config_path);
        let out = output(cmd).await;
        assert_eq!(out.status.success(), expect_success);
    }
}

#[tokio::test]
async fn a_wrong_token_and_an_unknown_user_get_the_same_refusal_after_the_delay() {
    let (mut config, token) = config_with_user("alice", "exec");
    config.limits.auth_failure_delay_ms = 150;
    let server = TestServer::start(config).await;
    let wrong: Token = format!("alice:{}", "x".repeat(43)).parse().unwrap();
    let unknown: Token = format!("mallory:{}", token.secret()).parse().unwrap();
    let mut messages = Vec::new();
    for bad in [wrong, unknown] {
        let started = Instant::now();
        let err = Client::connect(&server.options(Some(bad)))
            .await
            .err()
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "refusal is delayed"
        );
        assert_eq!(refusal_code(&err), Some(ErrorCode::AuthFailed), "{err}");
        messages.push(err.to_string());
    }
    assert_eq!(messages[0], messages[1], "no hint about which names exist");
    assert!(messages[0].contains("authentication failed"));
    // The right token still works.
    server.client(Some(token)).await.ping(1).await.unwrap();
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_rate_limited() {
    let (mut config, token) = config_with_user("alice", "exec");
    config.limits.auth_max_failures = 3;
    let server = TestServer::start(fast_failures(config)).await;
    let wrong: Token = format!("alice:{}", "y".repeat(43)).parse().unwrap();
    for _ in 0..3 {
        let err = Client::connect(&server.options(Some(wrong.clone())))
            .await
            .err()
            .unwrap();
        assert_eq!(refusal_code(&err), Some(ErrorCode::AuthFailed));
    }
    // Now even the right token is turned away, with a clear reason.
    let err = Client::connect(&server.options(Some(token)))
        .await
        .err()
        .unwrap();
    assert_eq!(refusal_code(&err), Some(ErrorCode::RateLimited), "{err}");
    assert!(err.to_string().contains("retry in"), "{err}");
    // Anonymous sessions present no credential and are not limited.
    server.client(None).await.ping(1).await.unwrap();
}

#[tokio::test]
async fn the_config_can_narrow_anonymous_rights() {
    let mut config = ServerConfig::default();
    config.anonymous.allow = vec![];
    let server = TestServer::start(config).await;
    // A session that could do nothing is refused rather than left holding a slot.
    let Err(err) = Client::connect(&server.options(None)).await else {
        panic!("an anonymous session that may do nothing was opened");
    };
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );
    assert!(err.to_string().contains("--token"), "{err}");

    let default = TestServer::start(ServerConfig::default()).await;
    let client = default.client(None).await;
    assert_eq!(
        client.info().granted.permissions,
        Permissions::parse_list("chat,read").unwrap()
    );
}

#[tokio::test]
async fn the_token_never_crosses_the_wire_and_a_replayed_proof_fails() {
    let (config, token) = config_with_user("alice", "exec");
    let server = TestServer::start_plaintext(fast_failures(config)).await;

    // Run the handshake by hand, recording every byte the client sends.
    let nonce = STANDARD.encode([7u8; 24]);
    let mut conn = raw_plaintext(server.addr).await;
    let hello = Message::Hello(Hello {
        client: "test".into(),
        user: Some("alice".into()),
        nonce: Some(nonce.clone()),
        keys: Vec::new(),
    });
    conn.write_message(&hello).await.unwrap();
    let Message::Challenge(Challenge {
        nonce: server_nonce,
        salt,
    }) = conn.read_message().await.unwrap()
    else {
        panic!("expected a challenge")
    };
    let salt = STANDARD.decode(salt).unwrap();
    let auth = ferry::auth::scram::auth_message("alice", &nonce, &server_nonce, "plaintext");
    let proof = Message::Proof(Proof {
        proof: STANDARD.encode(ferry::auth::scram::client_proof(
            token.secret(),
            &salt,
            &auth,
        )),
    });
    conn.write_message(&proof).await.unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Welcome(_)
    ));
    let sent = [hello.to_json(), proof.to_json()].concat();
    assert!(!String::from_utf8_lossy(&sent).contains(token.secret()));

    // Replaying the same hello and proof on a new connection fails: the server nonce is fresh.
    let mut replay = raw_plaintext(server.addr).await;
    replay.write_message(&hello).await.unwrap();
    assert!(matches!(
        replay.read_message().await.unwrap(),
        Message::Challenge(_)
    ));
    replay.write_message(&proof).await.unwrap();
    assert!(matches!(
        replay.read_message().await.unwrap(),
        Message::Error(Refusal {
            code: ErrorCode::AuthFailed,
            ..
        })
    ));
}

#[tokio::test]
async fn hello_with_a_user_but_no_nonce_is_a_bad_message() {
    let (config, _token) = config_with_user("alice", "exec");
    let server = TestServer::start_plaintext(config).await;
    let mut conn = raw_plaintext(server.addr).await;
    conn.write_message(&Message::Hello(Hello {
        client: "test".into(),
        user: Some("alice".into()),
        nonce: None,
        keys: Vec::new(),
    }))
    .await
    .unwrap();
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::BadMessage);
            assert!(message.contains("nonce"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_users_of_its_config_file() {
    let home = tempfile::tempdir().unwrap();
    let config_path = home.path().join("ferry.toml");
    let mut cmd = ferry_bin(home.path());
    cmd.args(["user", "add", "erin", "--allow", "write", "--config"])
        .arg(&config_path);
    let token = String::from_utf8(output(cmd).await.stdout).unwrap();
    let server = ServerProcess::start(&["--plaintext", "--config", config_path.to_str().unwrap()]);

    let mut ping = ferry_bin(home.path());
    ping.args(["ping", "--plaintext", "-c", "1", "-i", "0", "--server"])
        .arg(server.addr.to_string())
        .env("FERRY_TOKEN", token.trim());
    let out = output(ping).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("user erin, may write"), "{stdout}");

    let mut missing = ferry_bin(home.path());
    missing
        .args(["serve", "--config"])
        .arg(home.path().join("nope.toml"));
    let out = output(missing).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}
