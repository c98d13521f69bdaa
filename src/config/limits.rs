//! Every server limit in one place, with its default and its unit in its name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::frame::{DEFAULT_MAX_FRAME, MIN_MAX_FRAME};

/// Server limits. In TOML these live under `[limits]`; every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once; further ones get `server_busy`. Default 16,384.
    pub max_connections: usize,
    /// Connections one client address may hold at once. Default 1,024.
    pub max_connections_per_address: usize,
    /// Connections kept for signed-in users: anonymous sessions get `server_busy` once only
    /// this many slots are left (at most a quarter of `max_connections`). Default 1,024.
    pub user_reserved_connections: usize,
    /// Authentications checked at once from one address; more wait their turn. Default 4.
    pub max_handshakes_per_address: usize,
    /// File requests (list, get, put, mkdir, remove) in progress at once from one address.
    /// Default 32.
    pub max_file_requests_per_address: usize,
    /// File requests in progress at once on the whole server. Default 1,024.
    pub max_file_requests: usize,
    /// Largest frame accepted, in bytes (64 KiB to 16 MiB). Default 1 MiB + 64.
    pub max_frame_bytes: usize,
    /// Time from accept to `welcome` (preamble, TLS, auth), in ms (at most 10 s). Default 10 s.
    pub handshake_timeout_ms: u64,
    /// A session with no request for this long is closed, in ms. Default 10 min.
    pub idle_timeout_ms: u64,
    /// A write the client accepts nothing of for this long ends the session, in ms (a client
    /// that stops reading cannot hold its connection forever). Default 60 s.
    pub write_stall_timeout_ms: u64,
    /// While the server waits for a client to read, the client must take at least this many
    /// bytes per `write_stall_timeout_ms` (any trickle is not enough). Default 64 KiB.
    pub write_stall_min_bytes: u64,
    /// How long shutdown waits for sessions to finish, in ms. Default 5 s.
    pub shutdown_grace_ms: u64,
    /// Fixed delay before every authentication refusal, in ms. Default 500 ms.
    pub auth_failure_delay_ms: u64,
    /// Failed authentications allowed per client address per window. Default 10.
    pub auth_max_failures: u32,
    /// The window for `auth_max_failures`, in ms. Default 60 s.
    pub auth_failure_window_ms: u64,
    /// Partial files of transfers abandoned for this long (untouched, and held by no transfer)
    /// are removed, in ms; 0 keeps them forever. Default 7 days.
    pub partial_max_age_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            max_connections_per_address: 1_024,
            user_reserved_connections: 1_024,
            max_handshakes_per_address: 4,
            max_file_requests_per_address: 32,
            max_file_requests: 1_024,
            max_frame_bytes: DEFAULT_MAX_FRAME,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 600_000,
            write_stall_timeout_ms: 60_000,
            write_stall_min_bytes: 64 * 1024,
            shutdown_grace_ms: 5_000,
            auth_failure_delay_ms: 500,
            auth_max_failures: 10,
            auth_failure_window_ms: 60_000,
            partial_max_age_ms: 7 * 24 * 3_600_000,
        }
    }
}

/// The largest frame limit a server may configure.
pub const MAX_MAX_FRAME: usize = 16 * 1024 * 1024;

impl Limits {
    /// Checks ranges; returns the first problem as a sentence naming the field.
    ///
    /// # Errors
    /// A field outside its documented range.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if self.max_connections_per_address == 0
            || self.max_handshakes_per_address == 0
            || self.max_file_requests_per_address == 0
            || self.max_file_requests == 0
        {
            return Err("limits.max_connections_per_address, max_handshakes_per_address, max_file_requests_per_address and max_file_requests must be at least 1".into());
        }
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&self.max_frame_bytes) {
            return Err(format!(
                "limits.max_frame_bytes must be between {MIN_MAX_FRAME} and {MAX_MAX_FRAME}"
            ));
        }
        if !(1..=10_000).contains(&self.handshake_timeout_ms) {
            return Err("limits.handshake_timeout_ms must be between 1 and 10000".into());
        }
        if self.idle_timeout_ms == 0 || self.auth_failure_window_ms == 0 {
            return Err(
                "limits.idle_timeout_ms and auth_failure_window_ms must be positive".into(),
            );
        }
        if self.auth_max_failures == 0 {
            return Err("limits.auth_max_failures must be at least 1".into());
        }
        Ok(())
    }

    /// Slots anonymous sessions may hold: all but the ones reserved for signed-in users.
    pub fn anonymous_connections(&self) -> usize {
        self.max_connections - self.user_reserved_connections.min(self.max_connections / 4)
    }

    /// `handshake_timeout_ms` as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// `write_stall_timeout_ms` as a duration.
    pub fn write_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.write_stall_timeout_ms)
    }
    /// `shutdown_grace_ms` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    /// `partial_max_age_ms` as a duration; `None` when partials are kept forever.
    pub fn partial_max_age(&self) -> Option<Duration> {
        (self.partial_max_age_ms > 0).then(|| Duration::from_millis(self.partial_max_age_ms))
    }
    /// `auth_failure_delay_ms` as a duration.
    pub fn auth_failure_delay(&self) -> Duration {
        Duration::from_millis(self.auth_failure_delay_ms)
    }
    /// `auth_failure_window_ms` as a duration.
    pub fn auth_failure_window(&self) -> Duration {
        Duration::from_millis(self.auth_failure_window_ms)
    }
}
