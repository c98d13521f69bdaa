//! The cluster engine: several ferry servers on one Redis behave as one chat server.
//!
//! Anchored on Centrifugo's Redis engine. Each room is a Redis Stream: every line and every
//! change (join, leave, nick, topic) is appended to it and published on the room's channel in
//! the same atomic step (`engine.lua`), so the stream's order is the one order every server
//! delivers in, a line is acknowledged only once Redis holds it, history comes from the stream,
//! and a server (or a client, with `since`) that missed records reads them back by ID. Redis
//! traffic grows with servers × records (each server subscribes to a room once, however many
//! of its members are in it), never with members. Nicks are claimed in one hash, so they are
//! unique across servers; each server keeps a heartbeat, and the others reap a silent one's
//! members. Direct messages go to the recipient's server's channel. The single-server hub's
//! rooms stay the local fan-out: this module only decides what enters them.
//!
//! Files: [`link`] (the ordered queue of changes), [`subscriber`] (what comes back),
//! [`presence`] (heartbeat, reaping, the bot's lease), `rooms` (joins, read-backs, the room
//! list), `nicks` (claims and routing), [`record`] (the JSON), [`keys`],
//! [`script`], [`engine`] (the engine behind the hub's interface); what the engine needs of the
//! chat it serves is `engine::host::Host`, which the hub implements, so no file here names the
//! hub.

pub mod engine;
pub mod keys;
pub mod link;
mod nicks;
pub mod presence;
pub mod record;
mod rooms;
pub mod script;
pub mod scrollback;
pub mod subscriber;

pub use rooms::ClusterJoin;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::engine::host::Host;
use super::{lock, names};
use crate::config::ClusterConfig;
use crate::protocol::{ErrorCode, Refusal};
use link::Link;
use script::Retention;
use subscriber::Control;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("invalid [cluster] redis URL '{url}': {reason}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Redis did not answer.
    #[error("cannot reach the chat engine's Redis at {url}: {reason}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// The engine of one server.
pub struct Cluster {
    /// The queue of changes to Redis.
    pub link: Arc<Link>,
    /// This server's name, for people.
    pub name: String,
    epoch: RwLock<String>,
    control: mpsc::UnboundedSender<Control>,
    /// What the subscriber starts with, until [`Cluster::serve`] starts it.
    starting: Mutex<Option<Starting>>,
    /// Rooms whose channel this server listens to.
    subscribed: Mutex<HashSet<String>>,
    config: ClusterConfig,
    /// Cancelled when the server stops: the engine's tasks end.
    stopped: CancellationToken,
}

/// What [`Cluster::serve`] starts the subscriber with.
struct Starting {
    client: redis::Client,
    control: mpsc::UnboundedReceiver<Control>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.link.node)
            .field("name", &self.name)
            .finish()
    }
}

/// `url` with any password replaced, for messages and logs.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Cluster {
    /// Connects to Redis as this server (`name`), whose rooms keep at most `room_bytes` each
    /// and `total_bytes` together; [`Cluster::serve`] then starts its tasks for the hub.
    ///
    /// # Errors
    /// A bad URL, or Redis not answering.
    pub async fn connect(
        config: &ClusterConfig,
        (room_bytes, total_bytes): (usize, usize),
        name: String,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let url = config.redis.clone().unwrap_or_default();
        let shown = without_password(&url);
        let client = redis::Client::open(url.as_str()).map_err(|e| ClusterError::BadUrl {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let unreachable = |reason: String| ClusterError::Unreachable {
            url: shown.clone(),
            reason,
        };
        let timeout = config.request_timeout();
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = tokio::time::timeout(
            timeout * 2,
            redis::aio::ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| unreachable("no answer".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _: String = script::load()
            .query_async(&mut conn)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let node = crate::protocol::hex::encode(&crate::random::random_bytes::<8>());
        let retention = Retention {
            entries: config.history_entries,
            age_ms: config.history_age_secs.saturating_mul(1000),
            room_bytes,
            total_bytes,
        };
        let stopped = CancellationToken::new();
        let link = Link::start(
            conn,
            node,
            shown.clone(),
            retention,
            timeout,
            stopped.clone(),
        );
        let (control, control_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Cluster {
            link,
            name,
            epoch: RwLock::default(),
            control,
            starting: Mutex::new(Some(Starting {
                client,
                control: control_rx,
            })),
            subscribed: Mutex::default(),
            config: config.clone(),
            stopped,
        }))
    }

    /// Starts the engine's tasks (the subscriber, presence) for `host`, the hub this engine
    /// serves, once the subscriber is connected.
    ///
    /// # Errors
    /// Redis not answering the subscriber.
    pub async fn serve(self: &Arc<Self>, host: Arc<dyn Host>) -> Result<(), ClusterError> {
        let unreachable = |reason: String| ClusterError::Unreachable {
            url: self.link.redis().to_string(),
            reason,
        };
        let Some(starting) = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(subscriber::run(
            starting.client,
            Arc::downgrade(self),
            Arc::downgrade(&host),
            starting.control,
            self.config.request_timeout(),
            self.stopped.clone(),
            Some(first_tx),
        ));
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(unreachable(reason)),
            Err(_) => return Err(unreachable("the engine stopped".into())),
        }
        tokio::spawn(presence::run(
            Arc::downgrade(self),
            self.config.clone(),
            self.stopped.clone(),
        ));
        Ok(())
    }

    /// What carries deliveries to participants on other servers.
    pub fn relay(&self) -> Arc<dyn crate::services::chat::participant::Relay> {
        Arc::clone(&self.link) as Arc<dyn crate::services::chat::participant::Relay>
    }

    /// The data's epoch (see [`record::Offset`]).
    pub fn epoch(&self) -> String {
        self.epoch.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the epoch, making one if Redis has none (first start, or it lost its data).
    pub(super) async fn refresh_epoch(&self) -> Result<(), Refusal> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(keys::EPOCH)
            .arg(crate::protocol::hex::encode(
                &crate::random::random_bytes::<6>(),
            ))
            .arg("NX")
            .arg("GET");
        let epoch = match self.link.ask_while_down(cmd).await? {
            Value::BulkString(old) => String::from_utf8_lossy(&old).into_owned(),
            _ => {
                let answer = self.link.ask_while_down(get(keys::EPOCH)).await?;
                text(&answer).unwrap_or_default()
            }
        };
        *self.epoch.write().unwrap_or_else(|e| e.into_inner()) = epoch;
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Asks the subscriber to listen to room `room`, unless it already does (the room has
    /// members here).
    ///
    /// # Errors
    /// Redis is unreachable.
    pub(super) async fn subscribe(&self, room: &str) -> Result<(), Refusal> {
        if lock(&self.subscribed).contains(room) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .send(Control::Subscribe(room.to_string(), tx))
            .is_err()
            || !rx.await.unwrap_or(false)
        {
            return Err(self.link.unreachable());
        }
        lock(&self.subscribed).insert(room.to_string());
        Ok(())
    }

    /// Tells the subscriber the room has no member here any more. Under the set's lock, so a
    /// join that follows (the hub makes the room anew only after this) subscribes again.
    pub(super) fn unsubscribe(&self, room: &str) {
        let mut subscribed = lock(&self.subscribed);
        subscribed.remove(room);
        let _ = self.control.send(Control::Unsubscribe(room.to_string()));
    }

    /// Tells the subscriber Redis stopped answering.
    pub(super) fn reset(&self) {
        self.link.lost.notify_waiters();
    }

    /// Makes Redis hold what this server holds: its nicks and room members (after an outage,
    /// or after others reaped it). Returns nicks someone else took meanwhile.
    pub(super) async fn reconcile(&self, host: &dyn Host) -> Result<Vec<String>, Refusal> {
        let state = host.local_state();
        let answer = self
            .link
            .ask_while_down(self.link.op(
                "reconcile",
                &[
                    &self.link.node,
                    &self.name,
                    &self.config.node_timeout_ms.to_string(),
                    &state.to_string(),
                ],
            ))
            .await?;
        Ok(match answer {
            Value::Array(lost) => lost.iter().filter_map(text).collect(),
            _ => Vec::new(),
        })
    }
}

fn internal(what: &str) -> Refusal {
    Refusal::new(
        ErrorCode::Internal,
        format!("the chat engine's Redis gave an unexpected answer to '{what}'"),
    )
}

fn get(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

/// A string reply as text; `None` for nil (and `false`, which Lua's nil becomes).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
