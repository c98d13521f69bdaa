//! The cluster engine, under `[cluster]`: several ferry servers sharing one Redis behave as one
//! chat server. Absent `redis`, chat is the single server's in-memory hub (the default).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the Redis cluster engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]`; `--cluster` overrides it. Default: no cluster.
    pub redis: Option<String>,
    /// This server's name in the cluster, shown in the welcome and in logs. Default: the
    /// machine's host name and the listen port.
    pub node: Option<String>,
    /// Entries (lines and notices) each room's stream keeps in Redis: the history served on
    /// join and to members catching up. Default 10,000.
    pub history_entries: usize,
    /// Seconds an entry is kept at most; a room silent this long loses its stream. Default
    /// 86,400 (a day).
    pub history_age_secs: u64,
    /// A server whose heartbeat is older than this is dead: its members leave every room, and
    /// the bot moves if it held it. In ms; default 5,000 (heartbeats every fifth of it).
    pub node_timeout_ms: u64,
    /// Longest wait for one Redis answer before the engine counts Redis as unreachable, in ms.
    /// Default 2,000.
    pub request_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: None,
            node: None,
            history_entries: 10_000,
            history_age_secs: 86_400,
            node_timeout_ms: 5_000,
            request_timeout_ms: 2_000,
        }
    }
}

impl ClusterConfig {
    /// How long a heartbeat lives.
    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms)
    }

    /// How often a server proves it is alive (and looks for dead ones).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis((self.node_timeout_ms / 5).max(50))
    }

    /// The longest wait for one Redis answer.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks the ranges types cannot.
    ///
    /// # Errors
    /// What is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.history_entries == 0 {
            return Err("[cluster] history_entries must be at least 1".into());
        }
        if self.node_timeout_ms < 250 {
            return Err("[cluster] node_timeout_ms must be at least 250".into());
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms >= self.node_timeout_ms {
            return Err(
                "[cluster] request_timeout_ms must be above 0 and below node_timeout_ms".into(),
            );
        }
        Ok(())
    }
}
