//! The command line's own words: usage errors are exit 2 with a plain sentence, user
//! administration says what went wrong in terms of users, and a port that speaks TLS but not
//! ferry is named as such.

mod common;

use std::process::Output;

use common::{ferry_bin, output};
use tokio::net::TcpListener;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn bad_values_are_usage_errors_with_a_plain_sentence() {
    let home = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["exec", "--timeout", "0", "--", "true"],
            "must be a positive number of seconds",
        ),
        (&["ping", "-c", "0"], "must be a whole number, at least 1"),
        (
            &["serve", "--listen", "9999"],
            "give HOST:PORT, e.g. 127.0.0.1:9999",
        ),
    ];
    for (args, said) in cases {
        let mut cmd = ferry_bin(home.path());
        cmd.args(args);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn help_shows_no_empty_environment_values() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["get", "--help"]);
    let out = output(cmd).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: FERRY_SERVER]"), "{help}");
    assert!(!help.contains("FERRY_SERVER="), "{help}");
    assert!(
        help.contains("Usage: ferry get [OPTIONS] [HOST[:PORT]:]REMOTE..."),
        "{help}"
    );
}

#[tokio::test]
async fn user_add_speaks_of_users_not_of_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let add = |name: &str| {
        let mut cmd = ferry_bin(dir.path());
        cmd.args(["user", "add", name, "--allow", "chat", "--config"])
            .arg(&config);
        cmd
    };
    assert!(output(add("alice")).await.status.success());
    let again = output(add("alice")).await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("user 'alice' already exists"),
        "{}",
        stderr(&again)
    );
    let bad = output(add("Bad Name")).await;
    assert!(!bad.status.success());
    let said = stderr(&bad);
    assert!(!said.contains("invalid config"), "{said}");
    assert!(
        said.contains("invalid user name 'Bad Name': use 1 to 32 letters"),
        "{said}"
    );
}

/// A TLS server that is not ferry: it answers whatever arrives with TLS, as an HTTPS port does.
async fn tls_but_not_ferry() -> std::net::SocketAddr {
    let state = tempfile::tempdir().unwrap();
    let (identity, _) = ferry::tls::identity::ServerIdentity::load_or_create(state.path()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(
        ferry::tls::rustls_config::server_config(&identity).unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _state = state;
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_port_that_is_not_ferry_is_named_as_such() {
    let addr = tls_but_not_ferry().await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["ping", "-c", "1", "--server", &addr.to_string()]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a ferry server"),
        "{}",
        stderr(&out)
    );
}

/// Options of `exec` are ferry's up to the command: a misspelt one is a usage error naming it,
/// never a remote command.
#[tokio::test]
async fn a_misspelt_exec_option_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["exec", "--tiemout", "5", "--", "ls"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tiemout"), "{}", stderr(&out));
}

/// The `--server` help is one text, naming both forms.
#[tokio::test]
async fn the_server_option_has_one_help_text() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args(["ls", "--help"]);
    let out = output(cmd).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(help.matches("Server to").count(), 1, "{help}");
    assert!(help.contains("wss://HOST:PORT"), "{help}");
}

/// `ferry user` finds the config as `ferry serve` does: `--state DIR` edits DIR/config.toml.
#[tokio::test]
async fn user_finds_the_config_in_the_state_directory() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let mut cmd = ferry_bin(home.path());
    cmd.args(["user", "add", "bob", "--allow", "chat", "--state"])
        .arg(&state);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(state.join("config.toml")).unwrap();
    assert!(config.contains("[users.bob]"), "{config}");
    let mut cmd = ferry_bin(home.path());
    cmd.args(["user", "list", "--state"]).arg(&state);
    let out = output(cmd).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bob\tchat");
}

/// Pointed at a web door, the CLI says to use wss://.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_port_is_named_with_the_wss_form_to_use() {
    let server =
        common::TestServer::start_with_web(ferry::config::ServerConfig::default(), false).await;
    let web = server.web_addr.unwrap().to_string();
    let mut cmd = ferry_bin(&server.home());
    cmd.args(["ping", "-c", "1", "--server", &web]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("wss://{web}")),
        "{}",
        stderr(&out)
    );
}
