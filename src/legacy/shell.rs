//! The seed's toy SSH: every chunk is a shell command; the answer is the byte length of its
//! output as ASCII digits, then (after the client's ack) the output itself; no output becomes
//! `cmd has no output...`. Like the seed it runs commands WITHOUT authentication, so it only
//! ever listens on loopback (checked at start). Unlike the seed, a command cannot hang the
//! listener: it gets no stdin, at most [`COMMAND_TIMEOUT`], and at most [`MAX_OUTPUT`] bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// What the seed sends for a command without output.
pub const NO_OUTPUT: &str = "cmd has no output...";
/// A command running longer is killed and its output so far is sent.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Output beyond this is cut.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// The size header and body for a command's output (the seed's framing).
pub fn frame_output(output: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let body = if output.is_empty() {
        NO_OUTPUT.as_bytes().to_vec()
    } else {
        output.to_vec()
    };
    (body.len().to_string().into_bytes(), body)
}

/// Runs `command` with `sh -c`, as the seed's `os.popen` did: stdout is the output.
pub async fn run(command: &str, cwd: &std::path::Path) -> Vec<u8> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    let mut output = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let mut limited = stdout.take(MAX_OUTPUT as u64);
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, limited.read_to_end(&mut output)).await;
    }
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait().await;
    output
}

/// Serves one caller until it leaves.
///
/// # Errors
/// Socket errors.
pub async fn serve(mut tcp: TcpStream, cwd: &std::path::Path) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (size, body) = frame_output(&run(&command, cwd).await);
        tcp.write_all(&size).await?;
        // The seed's fix for its sticky packets: wait for the client's ack between the two.
        if tcp.read(&mut buf).await? == 0 {
            return Ok(());
        }
        tcp.write_all(&body).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_output_and_the_empty_case() {
        assert_eq!(frame_output(b"hi\n"), (b"3".to_vec(), b"hi\n".to_vec()));
        let (size, body) = frame_output(b"");
        assert_eq!(body, NO_OUTPUT.as_bytes());
        assert_eq!(size, NO_OUTPUT.len().to_string().into_bytes());
    }
}
