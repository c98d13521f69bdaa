//! `ferry serve`: resolves flags over the config file and runs the server until Ctrl-C/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use ferry::config::ServerConfig;
use ferry::legacy::{LegacyContext, LegacyListeners, LegacySpec};
use ferry::server::{Server, ServerOptions, reload};

/// The listen address when neither flag nor config names one: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9999";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9999].
    #[arg(long, value_name = "HOST:PORT", value_parser = super::listen_address)]
    pub listen: Option<SocketAddr>,
    /// Directory served to clients [default: .].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// State directory: TLS identity and default config [default: FERRY_HOME/server].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Config file [default: STATE/config.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve plaintext instead of TLS (clients must pass --plaintext too).
    #[arg(long)]
    pub plaintext: bool,
    /// Also speak one of the seed's protocols on its own listener: chatbot, upper, shell (no
    /// auth: loopback only) or ftp, e.g. --legacy chatbot=127.0.0.1:9001. Repeatable.
    #[arg(long, value_name = "NAME=ADDR")]
    pub legacy: Vec<LegacySpec>,
    /// Also serve the web page here (chat, files and a terminal in a browser): HTTPS with the
    /// server's identity (HTTP with --plaintext, loopback only); its WebSocket /ws carries
    /// ferry sessions.
    #[arg(long, value_name = "HOST:PORT", value_parser = super::listen_address)]
    pub web: Option<SocketAddr>,
    /// Also open the IRC door here: IRC over TLS with the server's identity (plain IRC with
    /// --plaintext, loopback only), onto the same rooms.
    #[arg(long, value_name = "HOST:PORT", value_parser = super::listen_address)]
    pub irc: Option<SocketAddr>,
    /// Chat across several servers sharing this Redis (redis://HOST:PORT): rooms, nicks,
    /// direct messages and the bot span them all. Files and exec stay per server.
    #[arg(long, value_name = "redis://HOST:PORT")]
    pub cluster: Option<String>,
    /// Also serve Prometheus metrics at http://HOST:PORT/metrics (no authentication, so
    /// loopback only unless the config sets public = true under [metrics]).
    #[arg(long, value_name = "HOST:PORT", value_parser = super::listen_address)]
    pub metrics: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match args.state {
        Some(dir) => dir,
        None => super::default_state_dir()?,
    };
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| state_dir.join("config.toml"));
    // Stamped before it is read: a change from now on is one the running server must pick up.
    let config_stamp = reload::stamp(&config_path);
    let mut config = ServerConfig::load(&config_path, args.config.is_some())?;
    if let Some(url) = args.cluster {
        config.cluster.redis = Some(url);
    }
    let listen = match (args.listen, &config.listen) {
        (Some(addr), _) => addr,
        (None, Some(text)) => text.parse().context("invalid 'listen' in config")?,
        (None, None) => DEFAULT_LISTEN.parse().expect("valid default address"),
    };
    let root = args
        .root
        .or_else(|| config.root.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let plaintext = args.plaintext || config.plaintext;
    let web = match (args.web, &config.web.listen) {
        (Some(addr), _) => Some(addr),
        (None, Some(text)) => Some(text.parse().context("invalid [web] listen in config")?),
        (None, None) => None,
    };
    let irc = match (args.irc, &config.irc.listen) {
        (Some(addr), _) => Some(addr),
        (None, Some(text)) => Some(text.parse().context("invalid [irc] listen in config")?),
        (None, None) => None,
    };
    let metrics = match (args.metrics, &config.metrics.listen) {
        (Some(addr), _) => Some(addr),
        (None, Some(text)) => Some(text.parse().context("invalid [metrics] listen in config")?),
        (None, None) => None,
    };
    let audit_path = config
        .audit
        .enabled
        .then(|| config.audit.path_in(&state_dir));
    ferry::fd_limit::raise_to_hard_limit();

    let mut signals = ferry::shutdown::StopSignals::install()
        .context("cannot install the Ctrl-C/SIGTERM handlers")?;
    let hangup = reload::install_hangup().context("cannot install the SIGHUP handler")?;
    let users = config.users.len();
    let server = Server::bind(ServerOptions {
        config,
        listen,
        root,
        state_dir,
        plaintext,
        web,
        irc,
        metrics,
    })
    .await?;
    if let Some(addr) = server.metrics_addr()? {
        eprintln!("ferry: metrics at http://{addr}/metrics (Prometheus text, no authentication)");
    }
    match &audit_path {
        Some(path) => eprintln!(
            "ferry: audit log in {} ('ferry audit' reads it)",
            path.display()
        ),
        None => eprintln!("ferry: audit log off ([audit] enabled = false)"),
    }
    if let Some(addr) = server.web_addr()? {
        match server.fingerprint() {
            Some(fp) => eprintln!(
                "ferry: web page at https://{addr}/ (identity {fp}: compare it with the browser's certificate viewer)"
            ),
            None => eprintln!("ferry: web page at http://{addr}/ (PLAINTEXT, loopback only)"),
        }
    }
    if let Some(addr) = server.irc_addr()? {
        match server.fingerprint() {
            Some(fp) => eprintln!(
                "ferry: IRC door on {addr} (IRC over TLS, identity {fp}; sign in with SASL PLAIN or PASS NAME:SECRET)"
            ),
            None => eprintln!("ferry: IRC door on {addr} (PLAINTEXT IRC, loopback only)"),
        }
    }
    // The seed's protocols run beside the server, on listeners of their own.
    let legacy = LegacyListeners::bind(&args.legacy).await?;
    let addr = server.local_addr()?;
    let state = server.state();
    match server.fingerprint() {
        Some(fp) => eprintln!("ferry: listening on {addr} (TLS, identity {fp})"),
        None => {
            eprintln!("ferry: listening on {addr} (PLAINTEXT: traffic is not encrypted)");
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "plaintext on a non-loopback address: anyone on the network can read the traffic");
            }
        }
    }
    for (spec, bound) in legacy.addrs()? {
        eprintln!(
            "ferry: legacy {spec}: listening on {bound} (the seed's protocol: no TLS, no auth)"
        );
    }
    eprintln!("ferry: chat engine: {}", state.chat.engine_description());
    eprintln!(
        "ferry: root {}, {users} user(s), anonymous may {}",
        state.root.display(),
        state.auth.anonymous_permissions()
    );

    let stop = CancellationToken::new();
    eprintln!(
        "ferry: users and permissions are re-read from {} when it changes or on SIGHUP",
        config_path.display()
    );
    eprintln!(
        "ferry: commands are contained by {}",
        ferry::services::exec::containment::Containment::get().describe()
    );
    tokio::spawn(reload::watch_config(
        config_path,
        config_stamp,
        std::sync::Arc::clone(&state),
        hangup,
        stop.clone(),
    ));
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        eprintln!("ferry: shutting down");
        signal_stop.cancel();
    });
    let legacy = tokio::spawn(legacy.run(
        LegacyContext::beside(&state),
        stop.clone(),
        state.limits.shutdown_grace(),
    ));
    server.run(stop).await;
    let _ = legacy.await;
    // Every command has ended: the process's own cgroup directory goes with it.
    if let Some(containment) = ferry::services::exec::containment::Containment::started() {
        tokio::task::spawn_blocking(|| containment.remove_own())
            .await
            .ok();
    }
    Ok(ExitCode::SUCCESS)
}
