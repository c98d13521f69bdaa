//! The seed's toy SSH: every chunk is a shell command; the answer is the byte length of its
//! output as ASCII digits, then (after the client's ack) the output itself; no output becomes
//! `cmd has no output...`. Like the seed it runs commands WITHOUT authentication, so it only
//! ever listens on loopback (checked at start). Unlike the seed, a command cannot hang the
//! listener or fill its memory: it gets no stdin, at most [`COMMAND_TIMEOUT`], at most
//! [`MAX_OUTPUT`] bytes, which are spooled to an unlinked temporary file (the size header needs
//! the whole output before any of it is sent) and streamed from there; and it gets the same
//! minimal environment as `exec`, nothing of the server's own.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::LegacyContext;
use rustix::process::Pid;

use crate::services::exec::containment::{Containment, EndOnDrop};
use crate::services::exec::terminate::GroupGuard;

/// What the seed sends for a command without output.
pub const NO_OUTPUT: &str = "cmd has no output...";
/// A command running longer is killed and its output so far is sent.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Output beyond this is cut.
pub const MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// A command's output, spooled: its size and the file holding it (positioned at its start).
pub struct Output {
    /// Bytes of output.
    pub len: u64,
    /// The unlinked spool file holding them.
    pub file: tokio::fs::File,
}

/// Runs `command` with `sh -c`, as the seed's `os.popen` did: stdout is the output, spooled to
/// a temporary file that no name refers to (it vanishes when closed).
///
/// # Errors
/// The spool file cannot be made or written.
pub async fn run(command: &str, ctx: &LegacyContext) -> std::io::Result<Output> {
    let spool = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(std::io::Error::other)??;
    let mut spool = tokio::fs::File::from_std(spool);
    let account = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    let mut env = crate::services::exec::spawn::environment(
        &ctx.exec,
        account.as_ref(),
        None,
        "legacy-shell",
    );
    let contained = Containment::get().prepare();
    env.push(contained.env());
    let root = Arc::clone(&ctx.root);
    let text = command.to_string();
    let make = move || {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(&text)
            .current_dir(&*root)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        sh
    };
    // The command joins its cgroup before it runs (off the runtime: a migration may wait for
    // an RCU grace period); where it cannot, it runs without one and the tag contains it.
    // The guards are made on the blocking thread, with the child: a caller cancelled while it
    // runs (shutdown) drops this result and the guards with it, which then kill the group and
    // end the containment; made after the await, they would not exist yet, and `kill_on_drop`
    // alone reaches only `sh` (a background child outlived a shutdown under load).
    let (child, group, ending, unused) = tokio::task::spawn_blocking(move || {
        let child = contained.start(|join| {
            let mut sh = make();
            if let Some(join) = join {
                join.apply(&mut sh);
            }
            sh.spawn()
        });
        match child {
            Ok(child) => {
                let group = child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(Pid::from_raw)
                    .map(GroupGuard::new);
                (Ok(child), group, Some(EndOnDrop::new(contained)), None)
            }
            Err(e) => (Err(e), None, None, Some(contained)),
        }
    })
    .await
    .map_err(std::io::Error::other)?;
    let mut len = 0u64;
    if let Ok(mut child) = child {
        if let Some(stdout) = child.stdout.take() {
            let mut limited = stdout.take(MAX_OUTPUT);
            let copied =
                tokio::time::timeout(COMMAND_TIMEOUT, tokio::io::copy(&mut limited, &mut spool))
                    .await;
            if let Ok(Ok(n)) = copied {
                len = n;
            } else {
                len = spool.metadata().await?.len();
            }
        }
        // Done or timed out: the group is killed before the wait, so nothing holds it up.
        drop(group);
        let _ = child.wait().await;
    }
    match (ending, unused) {
        (Some(ending), _) => ending.end_now().await,
        (None, Some(unused)) => {
            let _ = tokio::task::spawn_blocking(move || unused.end()).await;
        }
        (None, None) => {}
    }
    spool.flush().await?;
    spool.seek(std::io::SeekFrom::Start(0)).await?;
    Ok(Output { len, file: spool })
}

/// The size header for a command's output (the seed's framing): the empty output is sent as
/// [`NO_OUTPUT`].
pub fn size_header(len: u64) -> Vec<u8> {
    let len = if len == 0 {
        NO_OUTPUT.len() as u64
    } else {
        len
    };
    len.to_string().into_bytes()
}

/// Serves one caller until it leaves.
///
/// # Errors
/// Socket errors.
pub async fn serve(mut tcp: TcpStream, ctx: &LegacyContext) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = super::read_chunk(&mut tcp, &mut buf, ctx.idle).await?;
        if n == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Ok(peer) = tcp.peer_addr() {
            ctx.audit(peer.ip(), "shell", "command", Some(command.clone()));
        }
        let mut output = run(&command, ctx).await?;
        tcp.write_all(&size_header(output.len)).await?;
        // The seed's fix for its sticky packets: wait for the client's ack between the two.
        if super::read_chunk(&mut tcp, &mut buf, ctx.idle).await? == 0 {
            return Ok(());
        }
        if output.len == 0 {
            tcp.write_all(NO_OUTPUT.as_bytes()).await?;
        } else {
            tokio::io::copy(&mut (&mut output.file).take(output.len), &mut tcp).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_output_is_announced_as_the_seed_s_sentence() {
        assert_eq!(size_header(3), b"3");
        assert_eq!(size_header(0), NO_OUTPUT.len().to_string().into_bytes());
    }
}
