//! `ferry exec` and `ferry shell`: run a command remotely, wired to the local terminal or
//! pipes. The exit status is the remote one (128+N for signal N); ferry's own failures exit
//! 255, as ssh does; a command that does not exist exits 127, one that cannot run 126.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ClientArgs;
use super::terminal::{self, TerminalMode};
use ferry::client::ClientError;
use ferry::client::exec::{self as client_exec, ExecEvent, ExecOutcome};
use ferry::protocol::{ErrorCode, Exec, Refusal, TtySize};

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Run on a pseudo-terminal (for interactive programs: top, less, vim).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// End the command after this many seconds (exit status 124).
    #[arg(long, value_name = "SECS", value_parser = super::positive_seconds)]
    pub timeout: Option<f64>,
    /// The program and its arguments, run directly (no shell: use `sh -c '...'` for one).
    /// Options before it are ferry's (an unknown one is an error); everything from the program
    /// on, or after `--`, is the command's.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ferry exec`.
pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let timeout = args.timeout.map(Duration::from_secs_f64);
    // As ssh -t: without a terminal on stdin there is nothing to be raw, and a pty would echo
    // piped input back (`echo hi | ferry exec --tty -- cat` printed `hi` twice).
    let tty = args.tty && std::io::stdin().is_terminal();
    if args.tty && !tty {
        eprintln!("ferry: pseudo-terminal will not be allocated because stdin is not a terminal");
    }
    let spec = Exec {
        argv: args.command,
        shell: false,
        tty: tty.then(local_tty),
        timeout_ms: timeout.map(client_exec::timeout_ms),
    };
    Ok(exit(execute(&args.client, spec).await))
}

/// `ferry shell`: the server account's login shell on a pseudo-terminal — or, when stdin is
/// not a terminal, on pipes reading stdin to its end, as ssh does.
pub async fn shell(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    if !interactive {
        eprintln!("ferry: no pseudo-terminal: stdin is not a terminal; the shell reads it");
    }
    let spec = Exec {
        argv: Vec::new(),
        shell: true,
        tty: interactive.then(local_tty),
        timeout_ms: None,
    };
    Ok(exit(execute(&args.client, spec).await))
}

fn local_tty() -> TtySize {
    let (rows, cols) = terminal::size();
    TtySize {
        term: std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        rows,
        cols,
    }
}

async fn execute(client_args: &ClientArgs, spec: Exec) -> Result<ExecOutcome, ClientError> {
    let client = client_args
        .connect()
        .await
        .map_err(|e| match e.downcast::<ClientError>() {
            Ok(e) => e,
            Err(e) => ClientError::Protocol(format!("{e:#}")),
        })?;
    let tty = spec.tty.is_some();
    let (events_tx, events) = mpsc::channel(16);
    let give_up = CancellationToken::new();
    tokio::spawn(watch_local_events(events_tx, tty, give_up.clone()));
    // Raw mode only when a person is typing; restored when this guard drops, on every path.
    let _mode = (tty && std::io::stdin().is_terminal()).then(TerminalMode::raw);
    let running = client.exec(
        spec,
        tokio::io::stdin(),
        tokio::io::stdout(),
        tokio::io::stderr(),
        events,
    );
    tokio::select! {
        outcome = running => outcome,
        // The remote command ignored the SIGTERM/SIGHUP passed on (an interactive shell does):
        // closing the session makes the server end its whole process group.
        _ = give_up.cancelled() => {
            eprintln!("ferry: the remote command did not end; the session was closed");
            Ok(ExecOutcome::Signaled(15))
        }
    }
}

/// How long a command gets to end after the SIGTERM or SIGHUP the client received is passed
/// on, before the client closes the session (a second signal closes it at once).
const GIVE_UP_AFTER: Duration = Duration::from_secs(2);

/// Forwards terminal resizes (with a tty) and Ctrl-C (without one: with a tty, Ctrl-C is a
/// key the remote terminal turns into SIGINT itself); SIGTERM and SIGHUP are passed on so the
/// remote command ends first and its status is still reported.
async fn watch_local_events(
    events: mpsc::Sender<ExecEvent>,
    tty: bool,
    give_up: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut winch), Ok(mut term), Ok(mut hup), Ok(mut int)) = (
        signal(SignalKind::window_change()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let mut ending = false;
    loop {
        let event = tokio::select! {
            Some(()) = winch.recv(), if tty => {
                let (rows, cols) = terminal::size();
                ExecEvent::Resize { rows, cols }
            }
            Some(()) = int.recv() => ExecEvent::Signal("INT".into()),
            Some(()) = term.recv() => ExecEvent::Signal("TERM".into()),
            Some(()) = hup.recv() => ExecEvent::Signal("HUP".into()),
            else => return,
        };
        if let ExecEvent::Signal(name) = &event
            && name != "INT"
        {
            if ending {
                give_up.cancel();
            }
            ending = true;
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(GIVE_UP_AFTER).await;
                give_up.cancel();
            });
        }
        if events.send(event).await.is_err() {
            return;
        }
    }
}

fn exit(outcome: Result<ExecOutcome, ClientError>) -> ExitCode {
    match outcome {
        Ok(ExecOutcome::TimedOut) => {
            eprintln!("ferry: the command timed out and was ended");
            ExitCode::from(ExecOutcome::TimedOut.exit_code())
        }
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::from(match &e {
                ClientError::Server(Refusal {
                    code: ErrorCode::NotFound,
                    ..
                }) => 127,
                ClientError::Server(Refusal {
                    code: ErrorCode::ExecFailed,
                    ..
                }) => 126,
                _ => 255,
            })
        }
    }
}
