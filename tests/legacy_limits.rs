//! The seed's listeners with the server's limits: bounded memory for big outputs, the minimal
//! environment, idle callers timed out, and ftp obeying what anonymous callers may do.

mod common;

use std::net::SocketAddr;

use common::{ServerProcess, TestServer, WAIT, read_to_close};
use ferry::config::ServerConfig;
use ferry::protocol::Permission;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `command` to a legacy shell listener and returns the announced size and the body.
async fn shell(addr: SocketAddr, command: String) -> (u64, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(command.as_bytes()).await.unwrap();
    let mut size = vec![0u8; 32];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut size))
        .await
        .unwrap()
        .unwrap();
    let size: u64 = std::str::from_utf8(&size[..n]).unwrap().parse().unwrap();
    tcp.write_all(b"ok").await.unwrap();
    let mut body = vec![0u8; usize::try_from(size).unwrap()];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    (size, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_outputs_are_spooled_not_held_in_memory() {
    const OUTPUT: u64 = 48 << 20;
    let server = ServerProcess::start(&["--plaintext", "--legacy", "shell=127.0.0.1:0"]);
    let addr = legacy_addr(&server);
    let idle_kib = server.status_kib("VmRSS");
    let mut callers = Vec::new();
    for _ in 0..4 {
        callers.push(tokio::spawn(shell(
            addr,
            format!("head -c {OUTPUT} /dev/zero"),
        )));
    }
    for caller in callers {
        let (size, body) = caller.await.unwrap();
        assert_eq!(size, OUTPUT);
        assert!(body.iter().all(|b| *b == 0));
    }
    // Held in memory, four outputs of 48 MiB would have raised the peak by 192 MiB.
    let peak_kib = server.status_kib("VmHWM");
    assert!(
        peak_kib < idle_kib + 64 * 1024,
        "the server's peak memory grew from {idle_kib} KiB to {peak_kib} KiB"
    );
}

/// The legacy listener's address, from the server's startup lines.
fn legacy_addr(server: &ServerProcess) -> SocketAddr {
    loop {
        let line = server.stderr.recv_timeout(WAIT).expect("a legacy line");
        if let Some(rest) = line.split("legacy shell=").nth(1) {
            let bound = rest.split("listening on ").nth(1).unwrap();
            return bound.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_the_minimal_environment_not_the_servers() {
    let server = ServerProcess::start_with_env(
        &["--plaintext", "--legacy", "shell=127.0.0.1:0"],
        &[("FERRY_TEST_SERVER_SECRET", "do-not-leak")],
    );
    let addr = legacy_addr(&server);
    let (_, body) = shell(addr, "env".into()).await;
    let env = String::from_utf8_lossy(&body);
    assert!(!env.contains("do-not-leak"), "{env}");
    assert!(
        env.contains("PATH=") && env.contains("FERRY_USER=legacy-shell"),
        "{env}"
    );
}

#[tokio::test]
async fn idle_callers_are_disconnected() {
    let mut config = ServerConfig::default();
    config.limits.idle_timeout_ms = 300;
    let (server, addrs) = TestServer::start_with_legacy_config(config, &["upper", "ftp"]).await;
    for addr in addrs {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Says nothing: the listener must close the connection, not keep it forever.
        let rest = read_to_close(&mut tcp).await;
        assert!(rest.is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn ftp_serves_files_only_where_anonymous_callers_may_read() {
    let mut config = ServerConfig::default();
    config.anonymous.allow = vec![Permission::Chat];
    let (server, addrs) = TestServer::start_with_legacy_config(config, &["ftp"]).await;
    std::fs::write(server.dir.path().join("root/f"), b"data").unwrap();
    let mut tcp = TcpStream::connect(addrs[0]).await.unwrap();
    tcp.write_all(b"get f").await.unwrap();
    let mut line = vec![0u8; 256];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut line))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&line[..n]);
    assert!(
        line.starts_with("error:") && line.contains("without a token"),
        "{line}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_command_cut_off_by_shutdown_takes_everything_it_started_with_it() {
    let (server, addrs) = TestServer::start_with_legacy(&["shell"]).await;
    let root = server.dir.path().join("root");
    let mut tcp = TcpStream::connect(addrs[0]).await.unwrap();
    // A background child in the command's group, and the command waiting for it.
    tcp.write_all(b"sleep 300 & echo $! > bg.pid; wait")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(root.join("bg.pid"))
            && let Ok(pid) = text.trim().parse::<i32>()
        {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    server.stop().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    // Gone, or a zombie: it has ended and waits only for whoever adopted it to collect its
    // status (in a container, PID 1 may be slow to, or never do it).
    let ended = || {
        rustix::process::test_kill_process(pid).is_err()
            || std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
    };
    while !ended() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command's background child outlived the server's shutdown"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
