//! Remote execution: `ferry exec` and `ferry shell`.
//!
//! The seed's toy SSH ran any string through a shell for anyone, returned output only when the
//! command ended, and hung on `top`. Here a command runs as an argv (no shell unless asked),
//! streams its output as it is produced, takes stdin, signals and terminal resizes, and never
//! outlives its client: its whole process group is ended when it exits, times out, the client
//! goes, or the server stops, and whatever it started outside the group with it
//! ([`containment`]).

pub mod client;
pub mod containment;
pub mod relay;
pub mod spawn;
pub mod terminate;

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::SessionContext;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Message, Permission, TtySize};
use relay::{RelayEnd, RelayLimits};
use spawn::Program;

/// Ends a command's containment when dropped (on every path out of `serve_exec`), off the
/// async runtime.
struct EndOnDrop(Option<containment::Contained>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(contained) = self.0.take() {
            tokio::task::spawn_blocking(move || contained.end());
        }
    }
}

/// What an `exec` request asked for.
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub shell: bool,
    pub tty: Option<TtySize>,
    pub timeout_ms: Option<u64>,
}

/// Serves one `exec` request: checks, starts, relays, reports the exit.
///
/// # Errors
/// The client went away (the command was ended) or the connection broke.
pub async fn serve_exec<S>(
    conn: &mut Connection<S>,
    request: ExecRequest,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let refuse = |code, message: &str| Message::error(code, message);
    if !ctx.exec.enabled {
        let message = "remote execution is switched off on this server";
        return conn
            .write_message(&refuse(ErrorCode::ExecFailed, message))
            .await;
    }
    if !ctx.identity.permissions.contains(Permission::Exec) {
        let message = "exec needs the 'exec' permission; connect with a token that has it";
        return conn
            .write_message(&refuse(ErrorCode::PermissionDenied, message))
            .await;
    }
    let program = match request.shell {
        false => Program::Argv(&request.argv),
        // Without a tty the login shell runs on pipes and reads its commands from the
        // client's stdin, as `ssh host < script` does.
        true if request.argv.is_empty() => Program::LoginShell,
        true => {
            let message = "'shell' needs an empty 'argv'";
            return conn
                .write_message(&refuse(ErrorCode::BadMessage, message))
                .await;
        }
    };
    let user = ctx.identity.user.as_deref().unwrap_or("anonymous");
    let contained = containment::Containment::get().prepare();
    let spawned = spawn::spawn(
        program,
        request.tty.as_ref(),
        &ctx.root,
        &ctx.exec,
        user,
        &contained,
    );
    let process = match spawned {
        Ok(process) => process,
        Err(e) => {
            // Nothing ran, but the prepared cgroup goes.
            tokio::task::spawn_blocking(move || contained.end());
            return conn.write_message(&refuse(e.code, &e.message)).await;
        }
    };
    // Into its cgroup, off the runtime (a migration may wait for an RCU grace period).
    let contained = match process.child.id() {
        Some(pid) => tokio::task::spawn_blocking(move || {
            contained.enter(pid);
            contained
        })
        .await
        .map_err(io::Error::other)?,
        None => contained,
    };
    // Whatever happens next, everything the command started ends with it.
    let _ending = EndOnDrop(Some(contained));
    let pid = process.child.id().unwrap_or_default();
    tracing::info!(user, pid, argv = ?request.argv, tty = request.tty.is_some(), "exec");
    conn.write_message(&Message::ExecStarted { pid }).await?;
    let limits = RelayLimits {
        grace: ctx.exec.kill_grace(),
        timeout: request.timeout_ms.map(std::time::Duration::from_millis),
        shutdown: &ctx.shutdown,
    };
    match relay::relay(conn, process, limits).await? {
        RelayEnd::Finished => Ok(()),
        RelayEnd::ClientGone => Err(io::Error::other("the client left while its command ran")),
    }
}
