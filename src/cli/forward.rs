//! `ferry forward -L/-R/-D [HOST-OR-ALIAS]`: ssh's port forwarding over a ferry session. It
//! stays up until Ctrl-C (as `ssh -N`) and, when the server goes away, connects again with
//! backoff and says so; the local listeners stay bound meanwhile, and `-R` listeners are asked
//! for again.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;

use super::ClientArgs;
use ferry::client::ClientError;
use ferry::client::forward::{ForwardNews, LocalForward, LocalKind, RemoteForward, run_session};
use ferry::protocol::ErrorCode;
use ferry::safe_text::escape;

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// [BIND:]PORT:HOST:HOSTPORT — connections to the local PORT (on BIND, 127.0.0.1 by
    /// default) are carried to HOST:HOSTPORT as the server sees it. Repeatable.
    #[arg(short = 'L', value_name = "[BIND:]PORT:HOST:HOSTPORT")]
    pub local: Vec<String>,
    /// [BIND:]PORT:HOST:HOSTPORT — the server listens on PORT (on BIND, 127.0.0.1 by default;
    /// where its [forward] listen rules allow) and its connections are carried back to
    /// HOST:HOSTPORT as this machine sees it. Repeatable.
    #[arg(short = 'R', value_name = "[BIND:]PORT:HOST:HOSTPORT")]
    pub remote: Vec<String>,
    /// [BIND:]PORT — a local SOCKS5 proxy (CONNECT; names resolved on the server).
    /// Repeatable.
    #[arg(short = 'D', value_name = "[BIND:]PORT")]
    pub dynamic: Vec<String>,
    /// The server or host alias (instead of --server).
    #[arg(value_name = "HOST-OR-ALIAS")]
    pub host: Option<String>,
}

/// Splits `a:b:[c]:d` at colons outside brackets.
fn fields(spec: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    for c in spec.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn port(text: &str, spec: &str) -> anyhow::Result<u16> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("'{text}' in '{spec}' is not a port"))
}

fn unbracket(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// `[BIND:]PORT:HOST:HOSTPORT` as (bind, port, host, host port).
fn four(spec: &str) -> anyhow::Result<(String, u16, String, u16)> {
    let f = fields(spec);
    let (bind, rest) = match f.len() {
        3 => ("127.0.0.1".to_string(), &f[..]),
        4 => (unbracket(&f[0]), &f[1..]),
        _ => anyhow::bail!("'{spec}' is not [BIND:]PORT:HOST:HOSTPORT"),
    };
    Ok((
        bind,
        port(&rest[0], spec)?,
        unbracket(&rest[1]),
        port(&rest[2], spec)?,
    ))
}

/// `[BIND:]PORT` as a local address.
fn two(spec: &str) -> anyhow::Result<SocketAddr> {
    let f = fields(spec);
    let (bind, p) = match f.as_slice() {
        [p] => ("127.0.0.1".to_string(), p),
        [bind, p] => (unbracket(bind), p),
        _ => anyhow::bail!("'{spec}' is not [BIND:]PORT"),
    };
    let ip = bind
        .parse()
        .map_err(|_| anyhow::anyhow!("'{bind}' in '{spec}' is not an IP address to listen on"))?;
    Ok(SocketAddr::new(ip, port(p, spec)?))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<Arc<TcpListener>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for {what}: {e}"))?;
    Ok(Arc::new(listener))
}

pub async fn run(mut args: ForwardArgs) -> anyhow::Result<ExitCode> {
    if args.local.is_empty() && args.remote.is_empty() && args.dynamic.is_empty() {
        anyhow::bail!("nothing to forward: give -L, -R or -D");
    }
    if let Some(host) = args.host.take() {
        args.client.server = vec![host];
    }
    let mut locals = Vec::new();
    for spec in &args.local {
        let (bind_ip, local_port, host, host_port) = four(spec)?;
        let ip = bind_ip.parse().map_err(|_| {
            anyhow::anyhow!("'{bind_ip}' in '{spec}' is not an IP address to listen on")
        })?;
        let listener = bind(SocketAddr::new(ip, local_port), &format!("-L {spec}")).await?;
        eprintln!(
            "ferry: {} -> {}:{host_port} (as the server sees it)",
            listener.local_addr()?,
            escape(&host)
        );
        locals.push(LocalForward {
            listener,
            kind: LocalKind::To {
                host,
                port: host_port,
            },
        });
    }
    for spec in &args.dynamic {
        let listener = bind(two(spec)?, &format!("-D {spec}")).await?;
        eprintln!("ferry: SOCKS5 proxy on {}", listener.local_addr()?);
        locals.push(LocalForward {
            listener,
            kind: LocalKind::Socks,
        });
    }
    let remotes = args
        .remote
        .iter()
        .map(|spec| {
            four(spec).map(|(bind, port, host, host_port)| RemoteForward {
                bind,
                port,
                host,
                host_port,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (news_tx, mut news) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = news.recv().await {
            report(&item);
        }
    });
    let forwarding = async {
        let mut backoff = Duration::from_secs(1);
        let mut first = true;
        loop {
            let ended = match args.client.connect().await {
                Ok(client) => {
                    if !first {
                        eprintln!("ferry: connected again; forwarding");
                    }
                    backoff = Duration::from_secs(1);
                    run_session(client, &locals, &remotes, news_tx.clone()).await
                }
                Err(e) => Err(ClientError::Protocol(format!("{e:#}"))),
            };
            match ended {
                // Refused outright (no permission, nothing allowed): trying again will not help.
                Err(ClientError::Server(refusal)) if refusal.code != ErrorCode::ShuttingDown => {
                    return Err(anyhow::anyhow!("{refusal}"));
                }
                Err(e) => eprintln!(
                    "ferry: the server went away ({}); connecting again in {} s",
                    escape(&e.to_string()),
                    backoff.as_secs()
                ),
                Ok(()) => eprintln!(
                    "ferry: the session ended; connecting again in {} s",
                    backoff.as_secs()
                ),
            }
            first = false;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    };
    tokio::select! {
        failed = forwarding => failed,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("ferry: forwarding stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(news: &ForwardNews) {
    match news {
        ForwardNews::Listening { forward, port } => eprintln!(
            "ferry: the server listens on {}:{port} -> {}:{} (from here)",
            escape(&forward.bind),
            escape(&forward.host),
            forward.host_port
        ),
        ForwardNews::ListenRefused { forward, refusal } => eprintln!(
            "ferry: -R {}:{} refused: {}",
            escape(&forward.bind),
            forward.port,
            escape(&refusal.to_string())
        ),
        ForwardNews::StreamRefused { target, refusal } => eprintln!(
            "ferry: a connection to {} refused: {}",
            escape(target),
            escape(&refusal.to_string())
        ),
    }
}
