//! The client library: connect (TCP, preamble, TLS with pinning, handshake), then use each
//! service through its peer here: [`chat`], [`exec`], [`files`] (and [`tree`] for whole
//! directories), and [`Client::ping`]. The CLI, the bench and the tests all use this API.

pub mod agent;
pub mod chat;
mod connect;
mod crowd;
mod error;
pub mod exec;
pub mod files;
pub mod forward;
mod handles;
pub mod handshake;
pub mod hosts;
pub mod keys;
mod preamble_answer;
pub mod tree;
pub mod watch;
mod websocket;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;

pub use crowd::connect_many;
pub use error::ClientError;
pub use handles::Files;
pub use handshake::Granted;

use crate::auth::token::Token;
use crate::config::MAX_MAX_FRAME;
use crate::connection::{BoxedStream, Connection};
use crate::protocol::frame::MIN_MAX_FRAME;
use crate::protocol::{Message, Ping, Pong};
use crate::tls::PinStatus;
use crate::transfer::hash_cache::HashCache;
use error::unexpected;

/// The server address used when none is given.
pub const DEFAULT_SERVER: &str = "127.0.0.1:9999";

/// How to reach and authenticate to a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `HOST:PORT`, also the key of the pin store; or `wss://HOST:PORT[/PATH]` (`ws://` in
    /// plaintext) for a server's web door.
    pub server: String,
    /// The user's token; `None` for an anonymous session (or one signed in with a key).
    pub token: Option<Token>,
    /// Sign in with an SSH key as this user, when there is no token.
    pub keys: Option<keys::KeyLogin>,
    /// Ask for a plaintext connection instead of TLS.
    pub plaintext: bool,
    /// FERRY_HOME: holds the pin store.
    pub home: PathBuf,
    /// Bound on connecting plus the whole handshake.
    pub connect_timeout: Duration,
    /// Pin a server met for the first time without asking (trust on first use). When false,
    /// an unknown server is [`ClientError::UnknownServer`] and nothing is pinned: the caller
    /// asks the user, as ssh does, and pins with `tls::KnownServers` if they agree.
    pub accept_new: bool,
}

impl ClientOptions {
    /// How these options sign in: a token wins over a key.
    pub fn sign_in(&self) -> handshake::SignIn<'_> {
        match (&self.token, &self.keys) {
            (Some(token), _) => handshake::SignIn::Token(token),
            (None, Some(keys)) => handshake::SignIn::Key(keys),
            (None, None) => handshake::SignIn::Anonymous,
        }
    }
}

/// What the client learnt while connecting.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The `HOST:PORT` connected to.
    pub server: String,
    /// What the server granted.
    pub granted: Granted,
    /// The server's TLS fingerprint and the pin store's verdict; `None` in plaintext.
    pub tls: Option<(String, PinStatus)>,
}

/// An open session with a server.
pub struct Client {
    conn: Connection<BoxedStream>,
    info: SessionInfo,
    /// FERRY_HOME, where the hash cache is kept.
    home: PathBuf,
    /// Hashes of files this user sent before: loaded at the first file request, since chat
    /// and exec sessions never need it.
    hashes: OnceLock<Arc<HashCache>>,
}

impl Client {
    /// Connects, sets up the transport, checks the pin, and runs the handshake.
    ///
    /// # Errors
    /// [`ClientError`] with a sentence a user can act on.
    pub async fn connect(options: &ClientOptions) -> Result<Client, ClientError> {
        let server = options.server.clone();
        let secs = options.connect_timeout.as_secs().max(1);
        tokio::time::timeout(options.connect_timeout, Self::connect_inner(options))
            .await
            .map_err(|_| ClientError::Timeout { server, secs })?
    }

    async fn connect_inner(options: &ClientOptions) -> Result<Client, ClientError> {
        let server = &options.server;
        let transport = match websocket::WebAddress::parse(server) {
            Some(web) => websocket::connect_websocket(&web, options).await?,
            None => {
                if !server.contains(':') {
                    return Err(ClientError::BadAddress(server.clone()));
                }
                let tcp = TcpStream::connect(server.as_str())
                    .await
                    .map_err(|source| ClientError::Connect {
                        server: server.clone(),
                        source,
                    })?;
                let _ = tcp.set_nodelay(true);
                connect::connect_transport(tcp, server, options).await?
            }
        };
        let binding = transport
            .tls
            .as_ref()
            .map_or_else(|| "plaintext".to_string(), |(fp, _)| fp.clone());
        let mut conn = Connection::new(transport.stream);
        let granted =
            handshake::client_handshake_as(&mut conn, options.sign_in(), &binding).await?;
        let max_frame = granted.max_frame.clamp(MIN_MAX_FRAME, MAX_MAX_FRAME);
        conn.set_max_frame(max_frame);
        conn.set_peer_max_frame(max_frame);
        Ok(Client {
            conn,
            info: SessionInfo {
                server: server.clone(),
                granted,
                tls: transport.tls,
            },
            home: options.home.clone(),
            hashes: OnceLock::new(),
        })
    }

    /// What the client learnt while connecting.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The hash cache (`FERRY_HOME/hash-cache`), loaded on first use.
    pub fn hashes(&self) -> Arc<HashCache> {
        Arc::clone(
            self.hashes
                .get_or_init(|| Arc::new(HashCache::open(&self.home.join("hash-cache")))),
        )
    }

    /// The framed connection, for service peers.
    pub fn connection(&mut self) -> &mut Connection<BoxedStream> {
        &mut self.conn
    }

    /// Holds the session to `rate` bytes a second each way from now on (`--bwlimit`): every
    /// byte of it, below TLS and framing, goes through a [`Throttled`](crate::throttle::Throttled)
    /// stream.
    pub fn limit_bandwidth(&mut self, rate: u64) {
        let stream = self.conn.get_mut();
        let (placeholder, _) = tokio::io::duplex(1);
        let inner = std::mem::replace(stream, Box::new(placeholder));
        *stream = Box::new(crate::throttle::Throttled::new(inner, rate));
    }

    /// Hands the session's connection to a service peer that needs it whole (chat).
    pub fn into_connection(self) -> Connection<BoxedStream> {
        self.conn
    }

    /// One ping round trip.
    ///
    /// # Errors
    /// The connection failed or the server answered something other than the pong.
    pub async fn ping(&mut self, seq: u64) -> Result<Duration, ClientError> {
        let start = std::time::Instant::now();
        self.conn
            .write_message(&Message::Ping(Ping { seq }))
            .await?;
        match self.conn.read_message().await? {
            Message::Pong(Pong { seq: got }) if got == seq => Ok(start.elapsed()),
            other => Err(unexpected(other)),
        }
    }

    /// Closes the session cleanly.
    ///
    /// # Errors
    /// The close could not be sent.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.conn.shutdown().await?;
        Ok(())
    }
}
