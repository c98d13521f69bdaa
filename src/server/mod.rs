//! The server: binds, accepts, applies the connection limit, and hands each connection to its
//! own task (`session`). The accept loop only accepts, takes a permit and spawns; TLS and the
//! handshake run inside the spawned task, so a slow client never stalls an accept.

mod accept;
mod chat_engine;
mod door;
pub mod handshake;
mod irc;
mod metrics_door;
pub mod reload;
mod session;
mod state;
mod web;

pub use state::{ServerState, ServerStats};

/// Entry points for the fuzz targets (`fuzz/`): the IRC door's reader and parser.
#[doc(hidden)]
pub mod irc_fuzz {
    pub use super::irc::fuzz::lines;
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::config::{Limits, ServerConfig};
use crate::metrics::Metrics;
use crate::per_address::{PerAddress, PerAddressQueue};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::{self, hub::ChatHub};
use crate::services::files::held_budget::HeldBudget;
use crate::services::files::sandbox::Sandbox;
use crate::shutdown::Shutdown;
use crate::tls::{ServerIdentity, rustls_config};
use crate::transfer::hash_cache::HashCache;

/// Refusals (`server_busy`) being written at once; beyond this, excess connections are dropped
/// without a word rather than letting refusals themselves exhaust the server.
const MAX_CONCURRENT_REFUSALS: usize = 64;

/// How long a stopping server waits for its audit log's last entries.
const AUDIT_FLUSH: Duration = Duration::from_secs(5);

/// Everything needed to start a server; the CLI fills it from flags and the config file.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The validated configuration.
    pub config: ServerConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The directory served.
    pub root: PathBuf,
    /// Holds the TLS identity.
    pub state_dir: PathBuf,
    /// Serve without TLS.
    pub plaintext: bool,
    /// Also open the web door (HTTP(S) and its WebSocket endpoint `/ws`) here.
    pub web: Option<SocketAddr>,
    /// Also open the IRC door (IRC over TLS; plaintext IRC on loopback only) here.
    pub irc: Option<SocketAddr>,
    /// Also serve Prometheus metrics at `/metrics` here (loopback unless
    /// `config.metrics.public`).
    pub metrics: Option<SocketAddr>,
}

/// Why a server could not start.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("root {} is not a readable directory", .0.display())]
    BadRoot(PathBuf),
    #[error(transparent)]
    Identity(#[from] crate::tls::identity::IdentityError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("invalid user credential in config: {0}")]
    Credential(#[from] crate::auth::scram::BadCredential),
    #[error("{0}")]
    MetricsExposed(String),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    #[error(transparent)]
    Cluster(#[from] crate::services::chat::cluster::ClusterError),
    #[error(transparent)]
    ChatStore(#[from] crate::services::chat::engine::disk::OpenError),
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    /// The web door, when asked for.
    web: Option<door::DoorListener>,
    /// The names the web door answers to besides its own address (`[web] hosts`).
    web_hosts: Vec<String>,
    /// The IRC door, when asked for.
    irc: Option<door::DoorListener>,
    /// The metrics door, when asked for.
    metrics: Option<door::DoorListener>,
    state: Arc<ServerState>,
    fingerprint: Option<String>,
}

impl Server {
    /// Loads (or creates) the identity, binds the listener, and prepares the shared state.
    ///
    /// # Errors
    /// [`ServerError`] naming what failed.
    pub async fn bind(options: ServerOptions) -> Result<Server, ServerError> {
        let root = options
            .root
            .canonicalize()
            .ok()
            .filter(|r| r.is_dir())
            .ok_or_else(|| ServerError::BadRoot(options.root.clone()))?;
        let (tls, fingerprint) = if options.plaintext {
            (None, None)
        } else {
            let identity = match (&options.config.tls.cert, &options.config.tls.key) {
                (Some(cert), Some(key)) => ServerIdentity::load(cert, key)?,
                _ => {
                    let (identity, created) = ServerIdentity::load_or_create(&options.state_dir)?;
                    if created {
                        info!(state = %options.state_dir.display(), "created a new server identity");
                    }
                    identity
                }
            };
            let config = rustls_config::server_config(&identity)?;
            (
                Some(TlsAcceptor::from(config)),
                Some(identity.fingerprint()),
            )
        };
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let sandbox = Sandbox::at(&root).map_err(|_| ServerError::BadRoot(root.clone()))?;
        let limits = &options.config.limits;
        warn_if_descriptors_are_short(limits, crate::fd_limit::soft());
        let (engine, cluster) = chat_engine::open(
            &options.config,
            &options.state_dir,
            listener.local_addr().ok(),
        )
        .await?;
        let chat = ChatHub::new(options.config.chat.clone(), engine);
        let mut metrics = Metrics::new(chat.counters.clone());
        if options.config.cluster.redis.is_some() {
            metrics.clustered();
        }
        let audit = AuditLog::start(&options.config.audit, &options.state_dir)
            .map_err(ServerError::Audit)?;
        let state = ServerState {
            limits: options.config.limits.clone(),
            auth: Arc::new(Authenticator::new(
                options.config.accounts()?,
                options.config.failure_policy(),
            )),
            tls,
            binding: fingerprint.clone().unwrap_or_else(|| "plaintext".into()),
            root: Arc::from(root),
            sandbox,
            hashes: Arc::new(hash_cache_in(&options.state_dir)),
            stats: ServerStats::new(),
            chat,
            exec: Arc::new(options.config.exec.clone()),
            forward: Arc::new(crate::services::forward::Forwarding::new(
                &options.config.forward,
            )),
            connections_per_address: PerAddress::new(limits.max_connections_per_address),
            handshakes_per_address: PerAddressQueue::new(limits.max_handshakes_per_address),
            file_requests_per_address: PerAddress::new(limits.max_file_requests_per_address),
            file_requests: Arc::new(Semaphore::new(limits.max_file_requests)),
            held_budget: HeldBudget::new(crate::fd_limit::soft()),
            anonymous_slots: Arc::new(Semaphore::new(limits.anonymous_connections())),
            connection_permits: Arc::new(Semaphore::new(limits.max_connections)),
            audit,
            metrics: Arc::new(metrics),
            resume_budget: Arc::default(),
        };
        state
            .chat
            .reserve_user_names(options.config.users.keys().map(String::as_str));
        if let Some(cluster) = &cluster {
            cluster.serve(state.chat.clone()).await?;
        }
        chat::bot::start(&state.chat).await;
        let web = match options.web {
            Some(addr) => Some(
                web::bind(addr, options.plaintext)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let irc = match options.irc {
            Some(addr) => Some(
                irc::bind(addr, options.plaintext)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let metrics = match options.metrics {
            Some(addr) => {
                crate::config::check_metrics_address(addr, options.config.metrics.public)
                    .map_err(ServerError::MetricsExposed)?;
                Some(
                    metrics_door::bind(addr)
                        .await
                        .map_err(|source| ServerError::Bind { addr, source })?,
                )
            }
            None => None,
        };
        Ok(Server {
            listener,
            web,
            web_hosts: options.config.web.hosts.clone(),
            irc,
            metrics,
            state: Arc::new(state),
            fingerprint,
        })
    }

    /// The address actually bound (tests bind port 0).
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The web door's address, when it is open.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn web_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.web
            .as_ref()
            .map(door::DoorListener::local_addr)
            .transpose()
    }

    /// The IRC door's address, when it is open.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn irc_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.irc
            .as_ref()
            .map(door::DoorListener::local_addr)
            .transpose()
    }

    /// The metrics door's address, when it is open.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn metrics_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(door::DoorListener::local_addr)
            .transpose()
    }

    /// The TLS identity's fingerprint; `None` in plaintext mode.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The shared state, for stats.
    pub fn state(&self) -> Arc<ServerState> {
        Arc::clone(&self.state)
    }

    /// Accepts connections until `stop` is cancelled, then tells every client goodbye and waits
    /// for them up to the configured grace period. Returns whether all closed within it.
    pub async fn run(self, stop: CancellationToken) -> bool {
        let shutdown = Shutdown::new(stop);
        self.state
            .audit
            .record(crate::audit::AuditEvent::ServerStart {
                listen: self
                    .local_addr()
                    .map_or_else(|_| "?".into(), |addr| addr.to_string()),
                version: env!("CARGO_PKG_VERSION").to_string(),
            });
        if let Some(max_age) = self.state.limits.partial_max_age() {
            shutdown.tracker.spawn(sweep_partials_until(
                self.state.sandbox.clone(),
                max_age,
                shutdown.begin.clone(),
            ));
        }
        let permits = Arc::clone(&self.state.connection_permits);
        if let Some(web) = self.web {
            shutdown.tracker.spawn(web::run(
                web,
                Arc::clone(&self.state),
                shutdown.clone(),
                self.web_hosts.clone(),
            ));
        }
        if let Some(metrics) = self.metrics {
            shutdown.tracker.spawn(metrics_door::run(
                metrics,
                Arc::clone(&self.state),
                shutdown.clone(),
            ));
        }
        if let Some(irc) = self.irc {
            shutdown
                .tracker
                .spawn(irc::run(irc, Arc::clone(&self.state), shutdown.clone()));
        }
        let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
        loop {
            let Some((tcp, peer)) =
                crate::shutdown::next_connection(&self.listener, &shutdown.begin, "ferry").await
            else {
                break;
            };
            let _ = tcp.set_nodelay(true);
            let slot = self.state.connections_per_address.try_take(peer.ip());
            match (Arc::clone(&permits).try_acquire_owned(), slot) {
                (Ok(permit), Some(slot)) => {
                    let state = Arc::clone(&self.state);
                    let session_shutdown = shutdown.clone();
                    shutdown.tracker.spawn(async move {
                        session::serve_connection(tcp, peer, state, session_shutdown).await;
                        drop((permit, slot));
                    });
                }
                (permit, slot) => {
                    let message = if permit.is_err() {
                        warn!(%peer, "connection limit reached; refusing");
                        "server is at its connection limit; try again later".to_string()
                    } else {
                        warn!(%peer, "per-address connection limit reached; refusing");
                        format!(
                            "this address already holds {} connections, the most one address may hold; close some and try again",
                            self.state.connections_per_address.limit()
                        )
                    };
                    drop((permit, slot));
                    if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                        shutdown.tracker.spawn(async move {
                            accept::refuse(tcp, &Refusal::new(ErrorCode::ServerBusy, message))
                                .await;
                            drop(refusal);
                        });
                    }
                }
            }
        }
        drop(self.listener);
        let active = self.state.stats.active_connections();
        info!(active, "shutting down: no longer accepting");
        let polite = shutdown.drain(self.state.limits.shutdown_grace()).await;
        self.state.chat.close().await;
        if !self.state.audit.flush(AUDIT_FLUSH).await {
            warn!("the audit log's last entries could not be written within {AUDIT_FLUSH:?}");
        }
        if !polite {
            warn!("some sessions did not finish within the grace period and were closed");
        }
        polite
    }
}

/// The server's hash cache, kept in its state folder (created if needed; in plaintext mode
/// nothing else may have created it). Without a writable folder it lives in memory.
fn hash_cache_in(state_dir: &Path) -> HashCache {
    match std::fs::create_dir_all(state_dir) {
        Ok(()) => HashCache::open(&state_dir.join("hash-cache")),
        Err(_) => HashCache::in_memory(),
    }
}

/// Removes abandoned partial files now and then (at start, then every hour or every
/// `max_age`, whichever is sooner) until `stop`.
async fn sweep_partials_until(sandbox: Sandbox, max_age: Duration, stop: CancellationToken) {
    let every = max_age.clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        let sandbox = sandbox.clone();
        let removed = tokio::task::spawn_blocking(move || {
            crate::services::files::sweep::sweep_partials(&sandbox, max_age)
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            info!(removed, "abandoned partial files removed");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Descriptors the server needs beside one per connection: its listeners, state, logs, and
/// the files requests and commits have open.
const SPARE_DESCRIPTORS: u64 = 256;

/// Tells the operator at start when the open-file limit (after raising it to the hard one)
/// cannot hold `limits.max_connections`: past it, accepts pause and file requests fail with
/// "Too many open files" long before the configured limit, which no client can tell apart
/// from an overloaded server.
fn warn_if_descriptors_are_short(limits: &Limits, open_file_limit: Option<u64>) {
    let Some(limit) = open_file_limit else {
        return;
    };
    let wanted = u64::try_from(limits.max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(SPARE_DESCRIPTORS);
    if limit < wanted {
        warn!(
            "the open-file limit is {limit}, short of the {wanted} that limits.max_connections \
             ({}) needs with room for files: raise it (ulimit -n, systemd's LimitNOFILE) or \
             lower limits.max_connections",
            limits.max_connections
        );
    }
}
