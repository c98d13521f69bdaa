//! Shared test harness: a real server on 127.0.0.1:0 in this process, the real client, the
//! real binary, and a raw-protocol session for feeding the server bad input.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod chat;
pub mod redis;
pub mod tmux;

use ferry::protocol::{ChatAck, Hello};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry::auth::token::Token;
use ferry::client::{Client, ClientOptions};
use ferry::config::{ServerConfig, add_user};
use ferry::connection::Connection;
use ferry::protocol::preamble::PREAMBLE_LEN;
use ferry::protocol::{Message, Mode, Permissions, Preamble};
use ferry::server::{Server, ServerOptions, ServerState};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for any single wait in a test: generous, only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server running in this process, with its own state, root and client home directories.
pub struct TestServer {
    pub addr: SocketAddr,
    pub fingerprint: Option<String>,
    pub state: Arc<ServerState>,
    pub dir: TempDir,
    stop: CancellationToken,
    task: JoinHandle<bool>,
    /// Addresses of the legacy listeners, in the order asked for.
    pub legacy_addrs: Vec<SocketAddr>,
    /// The web door's address, when it was opened.
    pub web_addr: Option<SocketAddr>,
    /// The IRC door's address, when the test opened it.
    pub irc_addr: Option<SocketAddr>,
    /// The metrics door's address, when the test opened it.
    pub metrics_addr: Option<SocketAddr>,
    /// The server's own Redis, when the suite runs on the cluster engine.
    pub redis: Option<redis::RedisServer>,
}

/// The chat engine every test server of this run keeps lines in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    /// On disk in the server's state directory: the single-server default.
    Disk,
    /// In memory (`[chat] store = "memory"`).
    Memory,
    /// On a Redis of the test server's own (the cluster engine).
    Cluster,
}

/// The engine of this run: `FERRY_TEST_ENGINE=disk|memory|cluster` (`FERRY_TEST_CLUSTER=1`
/// means cluster), set by `./test.sh` for its passes: the single-server suite must pass on all
/// three.
pub fn engine_under_test() -> TestEngine {
    if std::env::var_os("FERRY_TEST_CLUSTER").is_some_and(|v| v == "1") {
        return TestEngine::Cluster;
    }
    match std::env::var("FERRY_TEST_ENGINE").as_deref() {
        Ok("cluster") => TestEngine::Cluster,
        Ok("memory") => TestEngine::Memory,
        _ => TestEngine::Disk,
    }
}

/// Whether this run puts every test server on the cluster engine.
pub fn on_cluster_engine() -> bool {
    engine_under_test() == TestEngine::Cluster
}

/// Binds a plaintext server whose web and IRC doors are at `web` and `irc`; the error when it
/// is refused.
pub async fn bind_plaintext_doors(
    web: Option<&str>,
    irc: Option<&str>,
) -> Result<(), ferry::server::ServerError> {
    let dir = tempfile::tempdir().unwrap();
    Server::bind(ServerOptions {
        config: ServerConfig::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
        root: dir.path().to_path_buf(),
        state_dir: dir.path().join("state"),
        plaintext: true,
        web: web.map(|a| a.parse().unwrap()),
        irc: irc.map(|a| a.parse().unwrap()),
        metrics: None,
    })
    .await
    .map(drop)
}

/// Which extra doors a test server opens.
#[derive(Default, Clone, Copy)]
struct Doors {
    web: bool,
    irc: bool,
    metrics: bool,
}

impl TestServer {
    /// Starts a TLS server with `config`.
    pub async fn start(config: ServerConfig) -> TestServer {
        Self::start_with(config, false).await
    }

    /// Starts a plaintext server with `config`.
    pub async fn start_plaintext(config: ServerConfig) -> TestServer {
        Self::start_with(config, true).await
    }

    async fn start_with(config: ServerConfig, plaintext: bool) -> TestServer {
        Self::start_full(config, plaintext, Vec::new(), Doors::default()).await
    }

    /// Starts a server with its web door open too (port 0 on loopback).
    pub async fn start_with_web(config: ServerConfig, plaintext: bool) -> TestServer {
        let doors = Doors {
            web: true,
            ..Doors::default()
        };
        Self::start_full(config, plaintext, Vec::new(), doors).await
    }

    /// Starts a server with its IRC door open too (port 0 on loopback).
    pub async fn start_with_irc(config: ServerConfig, plaintext: bool) -> TestServer {
        let doors = Doors {
            irc: true,
            ..Doors::default()
        };
        Self::start_full(config, plaintext, Vec::new(), doors).await
    }

    /// Starts a server with its web and metrics doors open too (port 0 on loopback).
    pub async fn start_with_metrics(config: ServerConfig, plaintext: bool) -> TestServer {
        let doors = Doors {
            web: true,
            metrics: true,
            ..Doors::default()
        };
        Self::start_full(config, plaintext, Vec::new(), doors).await
    }

    /// Starts a plaintext server with the seed's protocols on legacy listeners (port 0 each).
    pub async fn start_with_legacy(kinds: &[&str]) -> (TestServer, Vec<SocketAddr>) {
        Self::start_with_legacy_config(ServerConfig::default(), kinds).await
    }

    /// As [`TestServer::start_with_legacy`], with `config`.
    pub async fn start_with_legacy_config(
        config: ServerConfig,
        kinds: &[&str],
    ) -> (TestServer, Vec<SocketAddr>) {
        let specs = kinds
            .iter()
            .map(|k| format!("{k}=127.0.0.1:0").parse().unwrap())
            .collect();
        let server = Self::start_full(config, true, specs, Doors::default()).await;
        let addrs = server.legacy_addrs.clone();
        (server, addrs)
    }

    async fn start_full(
        config: ServerConfig,
        plaintext: bool,
        legacy: Vec<ferry::legacy::LegacySpec>,
        doors: Doors,
    ) -> TestServer {
        let mut config = config;
        if engine_under_test() == TestEngine::Memory {
            config.chat.store = ferry::config::ChatStore::Memory;
        }
        let redis = (on_cluster_engine() && config.cluster.redis.is_none()).then(|| {
            let redis = redis::RedisServer::start();
            config.cluster.redis = Some(redis.url());
            redis
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        let server = Server::bind(ServerOptions {
            config,
            listen: "127.0.0.1:0".parse().unwrap(),
            root: dir.path().join("root"),
            state_dir: dir.path().join("state"),
            plaintext,
            web: doors.web.then(|| "127.0.0.1:0".parse().unwrap()),
            irc: doors.irc.then(|| "127.0.0.1:0".parse().unwrap()),
            metrics: doors.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        })
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let web_addr = server.web_addr().unwrap();
        let irc_addr = server.irc_addr().unwrap();
        let metrics_addr = server.metrics_addr().unwrap();
        let legacy = ferry::legacy::LegacyListeners::bind(&legacy).await.unwrap();
        let legacy_addrs = legacy
            .addrs()
            .unwrap()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let fingerprint = server.fingerprint().map(str::to_string);
        let state = server.state();
        let stop = CancellationToken::new();
        let context = ferry::legacy::LegacyContext::beside(&state);
        let grace = state.limits.shutdown_grace();
        let legacy = legacy.run(context, stop.clone(), grace);
        let server = server.run(stop.clone());
        let task = tokio::spawn(async move { tokio::join!(server, legacy).0 });
        TestServer {
            addr,
            fingerprint,
            state,
            dir,
            stop,
            task,
            legacy_addrs,
            web_addr,
            irc_addr,
            metrics_addr,
            redis,
        }
    }

    /// The client home (FERRY_HOME) that tests use for this server.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Options for the library client.
    pub fn options(&self, token: Option<Token>) -> ClientOptions {
        ClientOptions {
            server: self.addr.to_string(),
            token,
            plaintext: self.fingerprint.is_none(),
            home: self.home(),
            connect_timeout: WAIT,
            accept_new: true,
            keys: None,
        }
    }

    /// Connects the library client.
    pub async fn client(&self, token: Option<Token>) -> Client {
        Client::connect(&self.options(token)).await.unwrap()
    }

    /// The ferry binary, with FERRY_HOME and --server preset after `verb`.
    pub fn ferry(&self, verb: &str) -> std::process::Command {
        let mut cmd = ferry_bin(&self.home());
        cmd.arg(verb).arg("--server").arg(self.addr.to_string());
        if self.fingerprint.is_none() {
            cmd.arg("--plaintext");
        }
        cmd
    }

    /// Stops the server and returns whether every session closed within the grace period.
    pub async fn stop(self) -> bool {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .unwrap()
    }

    /// Waits until the server holds exactly `n` connections.
    pub async fn wait_for_active(&self, n: usize) {
        let mut active = self.state.stats.watch_active();
        tokio::time::timeout(WAIT, active.wait_for(|a| *a == n))
            .await
            .unwrap_or_else(|_| panic!("active connections never reached {n}"))
            .unwrap();
    }
}

/// The ferry binary with FERRY_HOME set and the caller's FERRY_* variables removed.
pub fn ferry_bin(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.env("FERRY_HOME", home)
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a command to completion off the async runtime.
pub async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || cmd.output().unwrap()),
    )
    .await
    .expect("command finishes in time")
    .unwrap()
}

/// Runs `cmd` to completion with `input` on its stdin, off the async runtime.
pub async fn output_with_stdin(
    mut cmd: std::process::Command,
    input: &str,
) -> std::process::Output {
    use std::io::Write;
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Runs `ferry user ARGS --config CONFIG` (the real binary) and returns its stdout.
pub fn ferry_user(config: &Path, args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = ferry_bin(home.path())
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A config with one user holding `allow`, and that user's token (made by the real
/// `add_user`, so the config holds only the derived credential).
pub fn config_with_user(name: &str, allow: &str) -> (ServerConfig, Token) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let token = add_user(&path, name, Permissions::parse_list(allow).unwrap()).unwrap();
    let config = ServerConfig::load(&path, true).unwrap();
    (config, token)
}

/// The wire code of a server's refusal, if `err` is one.
pub fn refusal_code(err: &ferry::client::ClientError) -> Option<ferry::protocol::ErrorCode> {
    match err {
        ferry::client::ClientError::Server(refusal) => Some(refusal.code),
        _ => None,
    }
}

/// Speed up auth refusals in tests; the delay itself is tested separately.
pub fn fast_failures(mut config: ServerConfig) -> ServerConfig {
    config.limits.auth_failure_delay_ms = 1;
    config
}

/// A plaintext TCP connection that has exchanged preambles, ready for a raw handshake.
pub async fn raw_plaintext(addr: SocketAddr) -> Connection<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&Preamble::new(Mode::Plaintext).encode())
        .await
        .unwrap();
    let mut answer = [0u8; PREAMBLE_LEN];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(Preamble::decode(&answer).unwrap().mode, Mode::Plaintext);
    Connection::new(tcp)
}

/// A raw plaintext session, anonymous, past `welcome`.
pub async fn raw_session(addr: SocketAddr) -> Connection<TcpStream> {
    let mut conn = raw_plaintext(addr).await;
    conn.write_message(&Message::Hello(Hello {
        client: "raw-test".into(),
        user: None,
        nonce: None,
        keys: Vec::new(),
    }))
    .await
    .unwrap();
    let welcome = conn.read_message().await.unwrap();
    assert!(matches!(welcome, Message::Welcome(_)), "{welcome:?}");
    conn
}

/// Reads until the peer closes; returns everything read. Bounded by [`WAIT`].
pub async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("peer closes in time")
        .ok();
    out
}

/// A `ferry serve` process; killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// The server's root (the temporary directory itself unless said otherwise).
    pub root: PathBuf,
    /// The rest of the server's stderr, line by line.
    pub stderr: std::sync::mpsc::Receiver<String>,
    /// What it printed before its "listening on" line (the other doors' addresses).
    pub startup: Vec<String>,
    launch: Launch,
}

/// How a server process was started, to start it again the same way.
#[derive(Clone)]
struct Launch {
    wrapper: Vec<String>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Launch {
    /// The server in a user and mount namespace of its own, with a tmpfs of `size` on `at`.
    fn on_tmpfs(size: &str, at: &Path, extra: &[&str]) -> Launch {
        Launch {
            wrapper: [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                &format!("mount -t tmpfs -o size={size} ferry-test-disk \"$0\" && exec \"$@\""),
                at.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        }
    }
}

impl ServerProcess {
    /// Starts `ferry serve --listen 127.0.0.1:0` with `extra` arguments and waits for its
    /// "listening on" line.
    pub fn start(extra: &[&str]) -> ServerProcess {
        Self::start_with_env(extra, &[])
    }

    /// As [`ServerProcess::start`], with extra environment variables for the server.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let launch = Launch {
            wrapper: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        Self::launch(dir, root, launch)
    }

    /// As [`ServerProcess::start`], with the root (`dir/disk`) on a tmpfs of `size` (e.g.
    /// "8m") mounted in a mount namespace of the server's own: a small disk that really fills.
    /// The test reaches it through `/proc/PID/root`, see [`ServerProcess::root_seen_from_here`].
    pub fn start_on_tmpfs(size: &str, extra: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("disk");
        std::fs::create_dir(&root).unwrap();
        let launch = Launch::on_tmpfs(size, &root, extra);
        Self::launch(dir, root, launch)
    }

    /// As [`ServerProcess::start_on_tmpfs`], with the chat store (`STATE/chat`) on the small
    /// disk instead of the root; see [`ServerProcess::chat_store_seen_from_here`]. The tmpfs
    /// goes with the server: this one is not restarted.
    pub fn start_with_chat_store_on_tmpfs(size: &str, extra: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("state").join("chat");
        std::fs::create_dir_all(&store).unwrap();
        let launch = Launch::on_tmpfs(size, &store, extra);
        let root = dir.path().to_path_buf();
        Self::launch(dir, root, launch)
    }

    /// As [`ServerProcess::start`], under a soft and hard open-file limit of `limit` (set by
    /// `sh`, then `exec`): the server cannot raise it.
    pub fn start_under_open_file_limit(limit: u32, extra: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let launch = Launch {
            wrapper: vec![
                "sh".into(),
                "-c".into(),
                format!("ulimit -n {limit} && exec \"$@\""),
                "sh".into(),
            ],
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        Self::launch(dir, root, launch)
    }

    /// The server's root as this process sees it: through the server's own mount namespace.
    pub fn root_seen_from_here(&self) -> PathBuf {
        self.seen_from_here(&self.root)
    }

    /// The server's chat store (`STATE/chat`) as this process sees it.
    pub fn chat_store_seen_from_here(&self) -> PathBuf {
        self.seen_from_here(&self.dir.path().join("state").join("chat"))
    }

    fn seen_from_here(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap())
    }

    /// Kills the server at once (SIGKILL: no goodbye, no clean-up).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again, the same way, on the same root and state (a new port).
    pub fn restart(mut self) -> ServerProcess {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::launch(dir, self.root.clone(), self.launch.clone())
    }

    fn launch(dir: TempDir, root: PathBuf, launch: Launch) -> ServerProcess {
        use std::io::BufRead;
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = std::process::Command::new(program);
                cmd.args(args).arg(env!("CARGO_BIN_EXE_ferry"));
                cmd
            }
            None => std::process::Command::new(env!("CARGO_BIN_EXE_ferry")),
        };
        cmd.env("FERRY_HOME", dir.path().join("home"))
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(&root)
            .arg("--state")
            .arg(dir.path().join("state"))
            .args(&launch.extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut startup = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("the server did not print its address"));
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
            startup.push(line);
        };
        ServerProcess {
            child,
            addr,
            dir,
            root,
            stderr: rx,
            startup,
            launch,
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status in KiB, such as `VmHWM` (peak resident memory).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic, incompressible bytes that differ at every offset and with every seed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Says `text` as a chat member and waits (bounded by [`WAIT`]) until the server acks it.
pub async fn say_acked(
    tx: &mut ferry::client::chat::ChatSender,
    rx: &mut ferry::client::chat::ChatReceiver,
    text: &str,
) {
    if let Err(refusal) = say_answered(tx, rx, text).await {
        panic!("the line is acked, not refused: {refusal:?}");
    }
}

/// Says `text` and waits for its answer: `Ok` when acknowledged, the refusal otherwise.
pub async fn say_answered(
    tx: &mut ferry::client::chat::ChatSender,
    rx: &mut ferry::client::chat::ChatReceiver,
    text: &str,
) -> Result<(), ferry::protocol::Refusal> {
    let id = tx.say(text).await.unwrap();
    answered(rx, id).await
}

/// Waits for the server's answer to request `id`: its ack, or its refusal.
pub async fn answered(
    rx: &mut ferry::client::chat::ChatReceiver,
    id: u64,
) -> Result<(), ferry::protocol::Refusal> {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.next().await.unwrap().expect("the server stays") {
                Message::ChatAck(ChatAck { id: acked }) if acked == id => return Ok(()),
                Message::Error(refusal) if refusal.id == Some(id) => return Err(refusal),
                _ => {}
            }
        }
    })
    .await
    .expect("the request is answered")
}

/// Makes a FIFO at `path` (a name no transfer may freeze on).
pub fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RWXU,
        0,
    )
    .unwrap();
}

/// Sends `signal` to the process `pid` (a server or client child under test).
pub fn send_signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Every partial file (`.NAME.ferry-part…`) anywhere under `dir`.
pub fn partials_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().contains(".ferry-part") {
                found.push(path);
            }
        }
    }
    found
}
