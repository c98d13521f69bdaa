//! A Redis of the test's own: `redis-server` on a free loopback port, its data in a temporary
//! directory (append-only file, fsynced on every write, so a SIGKILL loses no acknowledged
//! write), stopped on drop. Never a system instance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl RedisServer {
    /// Starts one on a free port (trying another if the port was taken meanwhile).
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if let Some(child) = spawn(addr, dir.path()) {
                return RedisServer {
                    child: Some(child),
                    addr,
                    dir,
                };
            }
        }
        panic!("could not start redis-server on a free loopback port");
    }

    /// `redis://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data (its append-only file).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + super::WAIT;
        while Instant::now() < deadline {
            if let Some(child) = spawn(self.addr, self.dir.path()) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come back on {}", self.addr);
    }

    /// Sends one command (inline form) and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        command(self.addr, line).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(addr: SocketAddr, dir: &Path) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
        .arg("--dir")
        .arg(dir)
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (./test.sh installs it)");
    let deadline = Instant::now() + super::WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if command(addr, "PING").is_some_and(|r| r.starts_with("+PONG")) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn command(addr: SocketAddr, line: &str) -> Option<String> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.write_all(format!("{line}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = tcp.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}
