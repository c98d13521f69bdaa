//! Remote execution: `ferry exec` and `ferry shell`.
//!
//! The seed's toy SSH ran any string through a shell for anyone, returned output only when the
//! command ended, and hung on `top`. Here a command runs as an argv (no shell unless asked),
//! streams its output as it is produced, takes stdin, signals and terminal resizes, and never
//! outlives its client: its whole process group is ended when it exits, times out, the client
//! goes, or the server stops, and whatever it started outside the group with it
//! ([`containment`]).

pub mod cgroup_join;
pub mod containment;
pub mod relay;
pub mod spawn;
pub mod terminate;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{RequestError, SessionContext, off_runtime};
use crate::audit::AuditEvent;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Exec, ExecStarted, Message, Permission, Refusal};
use relay::{RelayEnd, RelayLimits};
use spawn::Program;

/// Serves one `exec` request: checks, starts, relays, reports the exit.
///
/// # Errors
/// The refusal to answer with; or the session must end: the client went away (the command was
/// ended) or the connection broke.
pub async fn serve_exec<S>(
    conn: &mut Connection<S>,
    request: Exec,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !ctx.exec.enabled {
        return Err(Refusal::new(
            ErrorCode::ExecFailed,
            "remote execution is switched off on this server",
        )
        .into());
    }
    ctx.need(Permission::Exec, "exec")?;
    let program = match request.shell {
        false => Program::Argv(request.argv.clone()),
        // Without a tty the login shell runs on pipes and reads its commands from the
        // client's stdin, as `ssh host < script` does.
        true if request.argv.is_empty() => Program::LoginShell,
        true => {
            return Err(
                Refusal::new(ErrorCode::BadMessage, "'shell' needs an empty 'argv'").into(),
            );
        }
    };
    let user = ctx.identity.user.as_deref().unwrap_or("anonymous");
    let started = std::time::Instant::now();
    let argv = match request.shell {
        true => vec!["(login shell)".to_string()],
        false => request.argv.clone(),
    };
    let pty = request.tty.is_some();
    let audit = |status: Option<std::process::ExitStatus>, error: Option<String>| {
        use std::os::unix::process::ExitStatusExt;
        ctx.audit.record(AuditEvent::Exec {
            actor: ctx.actor(),
            argv: argv.clone(),
            pty,
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    };
    let contained = containment::Containment::get().prepare();
    // Off the runtime: the command joins its cgroup before it runs, and a migration may wait
    // for an RCU grace period.
    let (spawned, _ending) = {
        let (tty, root, exec, user) = (
            request.tty.clone(),
            Arc::clone(&ctx.root),
            Arc::clone(&ctx.exec),
            user.to_string(),
        );
        // The guard is made here, with the process: a request cancelled while this runs
        // (shutdown, a revoked user) drops the result, and the guard then ends everything the
        // command started; made after the await, it would not exist yet.
        off_runtime(move || {
            let spawned = spawn::spawn(program, tty.as_ref(), &root, &exec, &user, &contained);
            (spawned, containment::EndOnDrop::new(contained))
        })
        .await?
    };
    let process = match spawned {
        Ok(process) => process,
        Err(refusal) => {
            audit(None, Some(refusal.message.clone()));
            // Nothing ran, but the prepared cgroup goes (as `_ending` drops).
            return Err(refusal.into());
        }
    };
    let _running = ctx.metrics.exec_started();
    // Whatever happens next, everything the command started ends with it (`_ending`).
    let pid = process.child.id().unwrap_or_default();
    tracing::info!(user, pid, argv = ?request.argv, tty = request.tty.is_some(), "exec");
    conn.write_message(&Message::ExecStarted(ExecStarted { pid }))
        .await?;
    let limits = RelayLimits {
        grace: ctx.exec.kill_grace(),
        timeout: request.timeout_ms.map(std::time::Duration::from_millis),
        shutdown: &ctx.shutdown,
    };
    let relayed = relay::relay(conn, process, limits).await;
    let status = relayed.as_ref().ok().and_then(|r| r.status);
    let error = match &relayed {
        Err(e) => Some(e.to_string()),
        Ok(r) if r.status.is_none() => {
            Some("the client went away; the command was ended".to_string())
        }
        Ok(_) => None,
    };
    audit(status, error);
    match relayed?.end {
        RelayEnd::Finished => Ok(()),
        RelayEnd::ClientGone => Err(RequestError::ClientLeft),
    }
}
