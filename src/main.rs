//! The ferry binary: parse, set up logging, run, and turn errors into one line and an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;

mod bench;
mod cli;

use cli::Cli;

/// jemalloc with background decay: freed memory goes back to the OS within seconds, so a server
/// that held 10,000 connections shrinks again when they leave (see Cargo.toml).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.command.is_server());
    let runtime = if cli.command.runs_on_one_thread() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        // The reader of our output went away (`ferry ls | head -1`): quiet, and the status a
        // shell gives a program SIGPIPE ended (128 + 13), as `ferry exec` does.
        Err(e) if output_closed(&e) => ExitCode::from(141),
        Err(e) => {
            // Errors may carry a server's words: printed escaped, never raw.
            eprintln!("ferry: {}", ferry::safe_text::escape(&one_line(&e)));
            ExitCode::from(1)
        }
    };
    // A read of stdin may still be pending on a blocking thread (exec forwards stdin); waiting
    // for it would hang until the user typed something.
    runtime.shutdown_background();
    code
}

/// Whether `error` is a broken pipe on stdout (not a connection's): some cause is `BrokenPipe`
/// and stdout is a pipe whose reader has gone (poll reports an error on it).
fn output_closed(error: &anyhow::Error) -> bool {
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe && stdout_reader_gone()
}

/// Whether stdout is a pipe or socket whose reading end is closed.
fn stdout_reader_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// The error and its causes as one line, skipping a cause whose text the line already holds
/// (many errors name their source in their own message).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr: `RUST_LOG` wins, else `-v` (ferry's debug logs) or `-vv` (everyone's),
/// else info for the server (warnings from the chat store) and warnings for clients. Colour only on a terminal and never with `NO_COLOR`.
fn init_logging(verbose: u8, server: bool) {
    let default = match (verbose, server) {
        (0, false) => "warn",
        // The chat store's own progress (opening, flushing) is not the operator's news.
        (0, true) => "info,fjall=warn,lsm_tree=warn",
        (1, _) => "warn,ferry=debug",
        _ => "debug,ferry=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Every field and message is escaped (`safe_text`): a client chooses names, nicks and paths,
    // and one holding CR-LF would forge a log line, one holding ESC would reach the operator's
    // terminal.
    let fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        let text = ferry::safe_text::escape(&text);
        match field.name() {
            "message" => write!(writer, "{text}"),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .fmt_fields(fields)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .init();
}
