//! The command line: clap definitions for every verb, and the runner of each. No protocol
//! logic lives here; verbs call the library and print.

mod address;
mod audit;
mod bench;
mod chat;
mod client_args;
mod copy;
mod exec;
mod files;
mod forget;
mod forward;
mod hosts;
mod ping;
mod progress;
mod serve;
mod terminal;
mod trust;
mod units;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

pub use client_args::ClientArgs;

/// ferry: chat, remote commands and files over TCP, safely and fast.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// More output on stderr: -v ferry's debug logs (and transfer hashes), -vv everyone's;
    /// RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Manage the users of a server's config.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Measure round trips to a server, like ping.
    Ping(ping::PingArgs),
    /// Chat in a room or directly with one nick (try --with babyshen).
    Chat(chat::ChatArgs),
    /// Run a command on the server; exits with its status.
    Exec(exec::ExecArgs),
    /// An interactive login shell on the server, on a pseudo-terminal.
    Shell(exec::ShellArgs),
    /// List files under the server's root.
    Ls(files::LsArgs),
    /// Download files (trees with -r), verified and resumable: get [HOST:]REMOTE... [LOCAL].
    Get(copy::GetArgs),
    /// Upload files (trees with -r), verified and resumable: put LOCAL... [[HOST:]REMOTE].
    Put(copy::PutArgs),
    /// Mirror a local directory's contents into a remote one (put -r --delete DIR/), and with
    /// --watch keep it mirrored as it changes.
    Sync(copy::SyncArgs),
    /// Create a directory under the server's root.
    Mkdir(files::PathArgs),
    /// Remove a file or an empty directory under the server's root (a tree with -r).
    Rm(files::RmArgs),
    /// Move or rename a file or directory under the server's root.
    Mv(files::MvArgs),
    /// Measure a server: throughput, latency, chat fan-out, connections (--json for scripts).
    Bench(bench::BenchArgs),
    /// Forget the pinned identity of a server (after it was changed on purpose).
    Forget(forget::ForgetArgs),
    /// Forward ports through the server, as ssh -L/-R/-D do; stays up until Ctrl-C
    Forward(forward::ForwardArgs),
    /// List the host aliases of FERRY_HOME/config.toml ([hosts.NAME] blocks: server, user,
    /// identity, token or token_file, plaintext)
    Hosts,
    /// Read the server's audit log: sign-ins, commands, file changes, user changes.
    Audit(audit::AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether this verb is the long-running server (logs at info by default).
    pub fn is_server(&self) -> bool {
        matches!(self, Command::Serve(_))
    }

    /// Whether the command runs on one thread. `forward` is a relay: on the multi-thread
    /// runtime each piece hopped between workers (a socket task woke the writer on another
    /// thread), which cost the client 1.17 s of CPU per GiB against 0.80 s on one thread. One
    /// thread is also what `ssh -L` uses.
    pub fn runs_on_one_thread(&self) -> bool {
        matches!(self, Command::Forward(_))
    }
}

/// `--timeout`-style seconds: positive, at most a year.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 31_536_000.0 => Ok(secs),
        _ => Err("must be a positive number of seconds (at most a year)".into()),
    }
}

/// A count of at least one.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

/// `HOST:PORT` to listen on; a bare port is told how to say it.
fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if text.parse::<u16>().is_ok() {
        return Err(format!(
            "'{text}' is only a port; give HOST:PORT, e.g. 127.0.0.1:{text} (this machine only) or 0.0.0.0:{text} (every interface)"
        ));
    }
    Err(format!("'{text}' is not HOST:PORT (e.g. 127.0.0.1:9999)"))
}

/// FERRY_HOME, or the platform's config directory for ferry (e.g. `~/.config/ferry`).
///
/// # Errors
/// Neither FERRY_HOME nor a home directory is known.
pub fn ferry_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("FERRY_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("", "", "ferry")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .context("cannot find a home directory; set FERRY_HOME")
}

/// The server's default state directory: `FERRY_HOME/server`.
///
/// # Errors
/// See [`ferry_home`].
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    Ok(ferry_home()?.join("server"))
}

/// Tells the user, once, that a server's identity was pinned on first use.
pub fn report_new_pin(info: &ferry::client::SessionInfo) {
    if let Some((fingerprint, ferry::tls::PinStatus::NewlyPinned)) = &info.tls {
        eprintln!(
            "ferry: pinned the identity of {} on first use: {fingerprint}",
            info.server
        );
    }
}

/// Runs the parsed command line; errors are printed by `main` as one line.
///
/// # Errors
/// Whatever the verb failed with, with context.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::User(cmd) => user::run(cmd),
        Command::Ping(args) => ping::run(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Exec(args) => exec::run(args).await,
        Command::Shell(args) => exec::shell(args).await,
        Command::Ls(args) => files::ls(args).await,
        Command::Get(args) => copy::get(args, cli.verbose).await,
        Command::Put(args) => copy::put(args, cli.verbose).await,
        Command::Sync(args) => copy::sync(args, cli.verbose).await,
        Command::Mkdir(args) => files::mkdir(args).await,
        Command::Rm(args) => files::rm(args).await,
        Command::Mv(args) => files::mv(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Forget(args) => forget::run(args),
        Command::Forward(args) => forward::run(args).await,
        Command::Hosts => hosts::run(),
        Command::Audit(args) => audit::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "ferry", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
