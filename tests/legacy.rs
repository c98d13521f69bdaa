//! The seed's own Python clients against ferry's legacy listeners: unchanged but for the port.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{TestServer, ferry_bin, output, output_with_stdin, read_to_close};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Runs a seed client (port substituted) with `input` on stdin, in `cwd`. Its endless input
/// loop ends with an EOFError at the end of stdin, which is the end of the session, not a fault.
async fn seed_client(name: &str, addr: SocketAddr, input: &str, cwd: &Path) -> (String, String) {
    let source = std::fs::read_to_string(format!(
        "{}/tests/seed_clients/{name}.py",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let port = addr.port().to_string();
    let source = source
        .replace(",9999)", &format!(",{port})"))
        .replace(", 9999)", &format!(", {port})"))
        .replace(",6969)", &format!(",{port})"));
    assert!(source.contains(&port), "{name}: port substituted");
    let script = cwd.join(format!("{name}.py"));
    std::fs::write(&script, source).unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.current_dir(cwd).arg("-c").arg(format!(
        "import runpy\ntry:\n    runpy.run_path({:?}, run_name='__main__')\nexcept EOFError:\n    pass\n",
        script.to_str().unwrap()
    ));
    let out = output_with_stdin(cmd, input).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_chatbot_client_gets_the_greeting_and_its_replies() {
    let (server, addrs) = TestServer::start_with_legacy(&["chatbot"]).await;
    let (stdout, _) = seed_client(
        "chatbot_client",
        addrs[0],
        "我\n你\n他\nq\n",
        server.dir.path(),
    )
    .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "欢迎致电babyshen");
    for reply in ["我好", "你好", "他好"] {
        assert!(stdout.contains(reply), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seed_upper_clients_at_once_with_chinese_text() {
    let (server, addrs) = TestServer::start_with_legacy(&["upper"]).await;
    // A first caller stays connected: the seed's server would serve no one else meanwhile.
    let mut first = TcpStream::connect(addrs[0]).await.unwrap();
    first.write_all(b"first").await.unwrap();
    let second_cwd = server.dir.path().join("root");
    let (a, b) = tokio::join!(
        seed_client(
            "upper_client",
            addrs[0],
            "haha\n世界你好\n",
            server.dir.path()
        ),
        seed_client("upper_client", addrs[0], "hehe\nMy Name\n", &second_cwd)
    );
    assert!(
        a.0.contains("recv: HAHA") && a.0.contains("recv: 世界你好"),
        "{}",
        a.0
    );
    assert!(
        b.0.contains("recv: HEHE") && b.0.contains("recv: MY NAME"),
        "{}",
        b.0
    );
    first.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut first).await, b"FIRST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_shell_client_runs_a_long_output_and_an_empty_one() {
    let (server, addrs) = TestServer::start_with_legacy(&["shell"]).await;
    let (stdout, _) = seed_client(
        "shell_client",
        addrs[0],
        "seq 1 3000\ntrue\n",
        server.dir.path(),
    )
    .await;
    let expected: usize = (1..=3000).map(|i: u32| i.to_string().len() + 1).sum();
    assert!(
        stdout.contains(&format!("cmd res receive done.... {expected}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n2999\n3000\n"),
        "the whole output arrived"
    );
    assert!(stdout.contains("cmd has no output..."), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_ftp_client_gets_a_multi_mib_file_and_its_md5_matches() {
    let (server, addrs) = TestServer::start_with_legacy(&["ftp"]).await;
    let data: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(server.dir.path().join("root/data.bin"), &data).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let (stdout, _) = seed_client("ftp_client", addrs[0], "get data.bin\n", cwd.path()).await;
    let server_md5 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("server file md5: b'"))
        .unwrap()
        .trim_end_matches('\'');
    let client_md5 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client file md5: "))
        .unwrap();
    assert_eq!(server_md5, client_md5, "{stdout}");
    assert_eq!(server_md5.len(), 32);
    assert_eq!(
        std::fs::read(cwd.path().join("data.bin.new")).unwrap(),
        data
    );
}

#[tokio::test]
async fn the_ftp_listener_refuses_bad_requests_and_paths_and_survives_vanishing_callers() {
    let (server, addrs) = TestServer::start_with_legacy(&["ftp"]).await;
    std::fs::write(server.dir.path().join("root/ok.txt"), "ok").unwrap();
    std::fs::write(server.dir.path().join("secret"), "s").unwrap();
    for (request, expected) in [
        (&b"put x"[..], "error: expected 'get FILENAME'"),
        (b"get nope", "error: 'nope' does not exist"),
        (b"get ../secret", "error: '../secret' contains '..'"),
        (b"get /etc/passwd", "is absolute"),
    ] {
        let mut tcp = TcpStream::connect(addrs[0]).await.unwrap();
        tcp.write_all(request).await.unwrap();
        tcp.shutdown().await.unwrap();
        let reply = String::from_utf8(read_to_close(&mut tcp).await).unwrap();
        assert!(reply.contains(expected), "{reply}");
    }
    // A caller that asks and vanishes before its ack.
    let mut gone = TcpStream::connect(addrs[0]).await.unwrap();
    gone.write_all(b"get ok.txt").await.unwrap();
    drop(gone);
    let cwd = tempfile::tempdir().unwrap();
    let (stdout, _) = seed_client("ftp_client", addrs[0], "get ok.txt\n", cwd.path()).await;
    assert!(stdout.contains("file recv done 2 2"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_listener_refuses_a_non_loopback_address_at_start() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--legacy",
        "shell=0.0.0.0:0",
    ]);
    let out = output(cmd).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only listen on loopback"), "{stderr}");
}
