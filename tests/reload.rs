//! A running server follows its config: users added, removed or rotated with `ferry user`, and
//! permissions edited by hand, apply without a restart — to new sessions and to the next request
//! of open ones — and SIGHUP reloads instead of killing the server.

mod common;

use ferry::protocol::{Exec, Goodbye};
use std::time::Duration;

use common::{ServerProcess, WAIT, ferry_user, refusal_code};
use ferry::auth::token::Token;
use ferry::client::chat::{ChatTarget, join};
use ferry::client::{Client, ClientError, ClientOptions};
use ferry::config::add_user;
use ferry::protocol::{ErrorCode, Message, Permissions};

fn options(server: &ServerProcess, token: Option<&Token>) -> ClientOptions {
    ClientOptions {
        server: server.addr.to_string(),
        token: token.cloned(),
        plaintext: false,
        home: server.dir.path().join("client-home"),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    }
}

/// Waits for the server's log line saying it reloaded (for `why`).
fn wait_for_reload(server: &ServerProcess, why: &str) {
    loop {
        let line = server
            .stderr
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the server never reloaded ({why})"));
        // A read that caught the file half-written says "not reloaded"; the next look, once
        // the write is complete, reloads.
        if line.contains("reloaded users and permissions") && line.contains(why) {
            return;
        }
    }
}

fn token_from(stdout: &str) -> Token {
    stdout.trim().parse().unwrap()
}

async fn exec_true(client: Client) -> Result<(), ClientError> {
    let mut conn = client.into_connection();
    conn.write_message(&Message::Exec(Exec {
        argv: vec!["true".into()],
        shell: false,
        tty: None,
        timeout_ms: None,
    }))
    .await?;
    loop {
        match conn.read_message().await? {
            Message::ExecExit(_) => return Ok(()),
            Message::Error(refusal) => return Err(ClientError::Server(refusal)),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_permissions_follow_the_config_without_a_restart() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    let alice = add_user(
        &config,
        "alice",
        Permissions::parse_list("chat,exec").unwrap(),
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]);

    // A user added while the server runs can log in once the server has read the file.
    let bob = token_from(&ferry_user(&config, &["add", "bob", "--allow", "chat"]));
    wait_for_reload(&server, "the file changed");
    let mut bob_client = Client::connect(&options(&server, Some(&bob)))
        .await
        .unwrap();
    bob_client.ping(1).await.unwrap();

    // A permission taken away applies to the next request of an open session.
    let mut open = Client::connect(&options(&server, Some(&alice)))
        .await
        .unwrap();
    open.ping(1).await.unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replace("\"chat\", \"exec\"", "\"chat\"");
    assert_ne!(edited, text);
    std::fs::write(&config, edited).unwrap();
    wait_for_reload(&server, "the file changed");
    let err = exec_true(open).await.unwrap_err();
    assert_eq!(
        refusal_code(&err),
        Some(ErrorCode::PermissionDenied),
        "{err}"
    );

    // A rotated token: the old one no longer logs in, and its open sessions end.
    let mut before = Client::connect(&options(&server, Some(&alice)))
        .await
        .unwrap();
    let new_alice = token_from(&ferry_user(&config, &["rotate", "alice"]));
    wait_for_reload(&server, "the file changed");
    let err = Client::connect(&options(&server, Some(&alice)))
        .await
        .err()
        .expect("the old token is refused");
    assert_eq!(refusal_code(&err), Some(ErrorCode::AuthFailed), "{err}");
    assert!(
        before.ping(2).await.is_err(),
        "a session of the old token ends"
    );
    Client::connect(&options(&server, Some(&new_alice)))
        .await
        .unwrap();

    // A removed user's chat membership ends with a goodbye saying why.
    let (_tx, mut rx, _) = join(
        bob_client.into_connection(),
        ChatTarget::Room("lobby".into()),
        "bob",
        false,
    )
    .await
    .unwrap();
    ferry_user(&config, &["remove", "bob"]);
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            match rx.next().await {
                Ok(Some(Message::Goodbye(Goodbye { reason }))) => return reason,
                Ok(Some(_)) => {}
                other => panic!("the session ended without a goodbye: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert!(reason.contains("revoked"), "{reason}");

    // `ferry user list` shows who is left, never a token.
    let listed = ferry_user(&config, &["list"]);
    assert_eq!(listed.trim(), "alice\tchat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_the_server_serves_on() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    add_user(&config, "alice", Permissions::parse_list("chat").unwrap()).unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]);
    let mut client = Client::connect(&options(&server, None)).await.unwrap();
    common::send_signal(server.pid(), rustix::process::Signal::HUP);
    wait_for_reload(&server, "SIGHUP");
    tokio::time::timeout(Duration::from_secs(5), client.ping(1))
        .await
        .unwrap()
        .unwrap();
}

/// Pids of `sleep MARKER` processes.
fn sleeping(marker: &str) -> usize {
    let wanted = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
        })
        .count()
}

/// How a session whose user was removed ended: its goodbye's reason, or `closed`.
async fn end_of(
    conn: &mut ferry::connection::Connection<ferry::connection::BoxedStream>,
) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match conn.read_frame().await {
                Ok(Some(ferry::protocol::Frame::Message(body))) => {
                    match Message::parse(&body).unwrap() {
                        Message::Goodbye(Goodbye { reason }) => return reason,
                        Message::GetEnd(_) | Message::ExecExit(_) => {
                            panic!("the request went on to its end after the user was removed")
                        }
                        _ => {}
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return "closed".to_string(),
            }
        }
    })
    .await
    .expect("the session ends in time")
}

/// Removing a user ends whatever its sessions are doing: a running command (and everything it
/// started), a shell on a pty, a get streaming a large file to a client that reads slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_ends_its_running_commands_shells_and_transfers() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.toml");
    let alice = add_user(
        &config,
        "alice",
        Permissions::parse_list("exec,read").unwrap(),
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]);
    std::fs::write(server.root.join("big"), vec![7u8; 64 << 20]).unwrap();
    let marker = format!("1004.{}", std::process::id());

    let mut command = Client::connect(&options(&server, Some(&alice)))
        .await
        .unwrap()
        .into_connection();
    command
        .write_message(&Message::Exec(Exec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("sleep {marker}; echo never"),
            ],
            shell: false,
            tty: None,
            timeout_ms: None,
        }))
        .await
        .unwrap();
    let mut shell = Client::connect(&options(&server, Some(&alice)))
        .await
        .unwrap()
        .into_connection();
    shell
        // A shell on a pty (`sh`, not the account's login shell: killing a login shell half-way
        // through its start-up files can leave their locks behind, such as pyenv's).
        .write_message(&Message::Exec(Exec {
            argv: vec!["sh".into()],
            shell: false,
            tty: Some(ferry::protocol::TtySize {
                rows: 24,
                cols: 80,
                term: "xterm".into(),
            }),
            timeout_ms: None,
        }))
        .await
        .unwrap();
    for conn in [&mut command, &mut shell] {
        loop {
            match conn.read_message().await.unwrap() {
                Message::ExecStarted(_) => break,
                Message::Error(refusal) => panic!("{refusal:?}"),
                _ => {}
            }
        }
    }
    let mut get = Client::connect(&options(&server, Some(&alice)))
        .await
        .unwrap()
        .into_connection();
    get.write_message(&Message::Get(ferry::protocol::Get {
        path: "big".into(),
        hash: Default::default(),
        offset: 0,
        prefix_hash: None,
        base: None,
        signing: None,
        compress: false,
    }))
    .await
    .unwrap();
    assert!(matches!(
        get.read_message().await.unwrap(),
        Message::GetReady(_)
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while sleeping(&marker) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    ferry_user(&config, &["remove", "alice"]);
    for (what, conn) in [
        ("exec", &mut command),
        ("shell", &mut shell),
        ("get", &mut get),
    ] {
        let end = end_of(conn).await;
        assert!(end.contains("revoked") || end == "closed", "{what}: {end}");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while sleeping(&marker) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed user's command still runs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
