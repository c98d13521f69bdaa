//! Host aliases: `[hosts.NAME]` in FERRY_HOME/config.toml names a server once, and every verb
//! of the real binary takes the name where it takes HOST[:PORT].

mod common;

use std::process::Command;

use common::{TestServer, ferry_bin, output, output_with_stdin};
use ferry::config::{ServerConfig, add_user, add_user_with_keys};
use ferry::protocol::Permissions;

/// A server with alice (a token) and bob (an SSH key written by `ssh-keygen`), and a client
/// FERRY_HOME whose config holds `box` (alice's token in a file) and `kbox` (bob's key).
struct World {
    server: TestServer,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

async fn world() -> World {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("server.toml");
    let all = Permissions::parse_list("chat,read,write,exec").unwrap();
    let alice = add_user(&config, "alice", all).unwrap();
    let key = work.path().join("bob_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen is installed (openssh-client)");
    assert!(made.status.success());
    let bob_line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    add_user_with_keys(&config, "bob", all, &[bob_line]).unwrap();
    let server = TestServer::start(ServerConfig::load(&config, true).unwrap()).await;
    let home = tempfile::tempdir().unwrap();
    let token_file = work.path().join("alice.token");
    std::fs::write(&token_file, format!("{alice}\n")).unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[hosts.box]\nserver = \"{addr}\"\ntoken_file = \"{token}\"\n\n\
             [hosts.kbox]\nserver = \"{addr}\"\nuser = \"bob\"\nidentity = \"{key}\"\n",
            addr = server.addr,
            token = token_file.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    World { server, home, work }
}

impl World {
    fn ferry(&self, args: &[&str]) -> Command {
        let mut cmd = ferry_bin(self.home.path());
        cmd.args(args)
            .current_dir(self.work.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("FERRY_USER")
            .env("HOME", self.work.path());
        cmd
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = output(self.ferry(args)).await;
        assert!(
            out.status.success(),
            "ferry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn root(world: &World) -> std::path::PathBuf {
    world.server.dir.path().join("root")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_takes_an_alias() {
    let w = world().await;
    std::fs::write(root(&w).join("notes.txt"), b"from the server\n").unwrap();
    std::fs::write(w.work.path().join("up.txt"), b"to the server\n").unwrap();
    std::fs::create_dir_all(w.work.path().join("tree/sub")).unwrap();
    std::fs::write(w.work.path().join("tree/sub/a"), b"a").unwrap();

    assert!(w.ok(&["ls", "box:"]).await.contains("notes.txt"));
    w.ok(&["get", "box:notes.txt", "got.txt"]).await;
    assert_eq!(
        std::fs::read(w.work.path().join("got.txt")).unwrap(),
        b"from the server\n"
    );
    w.ok(&["put", "up.txt", "box:up.txt"]).await;
    assert_eq!(
        std::fs::read(root(&w).join("up.txt")).unwrap(),
        b"to the server\n"
    );
    w.ok(&["sync", "tree/", "box:mirror"]).await;
    assert_eq!(std::fs::read(root(&w).join("mirror/sub/a")).unwrap(), b"a");
    w.ok(&["mkdir", "box:made"]).await;
    assert!(root(&w).join("made").is_dir());
    w.ok(&["mv", "box:made", "box:moved"]).await;
    assert!(root(&w).join("moved").is_dir());
    w.ok(&["rm", "box:moved"]).await;
    assert!(!root(&w).join("moved").exists());
    assert_eq!(
        w.ok(&["exec", "--server", "box", "--", "echo", "hi"]).await,
        "hi\n"
    );
    w.ok(&["ping", "--server", "box", "-c", "1"]).await;
    let chat = output_with_stdin(
        w.ferry(&["chat", "--server", "box", "--with", "babyshen"]),
        "我\n",
    )
    .await;
    assert!(
        String::from_utf8_lossy(&chat.stdout).contains("我好"),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    // The key alias signs in as bob with his key, whatever token the environment holds.
    let mut exec = w.ferry(&["exec", "--server", "kbox", "--", "echo", "as-bob"]);
    exec.env("FERRY_TOKEN", "alice:not-the-right-secret");
    let out = output(exec).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "as-bob\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_lists_the_aliases_without_a_secret() {
    let w = world().await;
    let listed = w.ok(&["hosts"]).await;
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("box\t") && lines[0].contains("token_file"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("kbox\t") && lines[1].contains("as bob"),
        "{listed}"
    );
    let token = std::fs::read_to_string(w.work.path().join("alice.token")).unwrap();
    let secret = token.trim().rsplit(':').next().unwrap();
    assert!(!listed.contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_config_is_an_error_naming_the_file() {
    let w = world().await;
    let config = w.home.path().join("config.toml");
    std::fs::write(&config, "[hosts.box]\nsevrer = \"127.0.0.1:1\"\n").unwrap();
    let out = output(w.ferry(&["ls", "box:"])).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&config.display().to_string()) && stderr.contains("sevrer"),
        "{stderr}"
    );
}
