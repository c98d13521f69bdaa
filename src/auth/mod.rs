//! Authentication and authorisation: who a session is and what it may do.
//!
//! The server-side decision lives in [`Authenticator`]; the wire exchange that feeds it is in
//! `server::handshake` and its mirror `client::handshake`.

pub mod limiter;
pub mod scram;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::config::ServerConfig;
use crate::protocol::Permissions;
use limiter::FailureLimiter;
use scram::Credential;
use token::random_bytes;

/// Who a session belongs to once the handshake succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// `None` for anonymous sessions.
    pub user: Option<String>,
    pub permissions: Permissions,
}

/// A configured user, as the server keeps it in memory.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub permissions: Permissions,
    pub credential: Credential,
}

/// The server's authentication state: users, anonymous rights, failure limiting.
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, UserRecord>,
    anonymous: Permissions,
    limiter: FailureLimiter,
    failure_delay: Duration,
    /// Keys the decoy salts of unknown users, so a probe cannot tell them from real ones.
    decoy_key: hmac::Key,
}

impl Authenticator {
    /// Builds the state from a validated config.
    ///
    /// # Errors
    /// A credential that does not parse (validation normally catches it first).
    pub fn from_config(config: &ServerConfig) -> Result<Authenticator, scram::BadCredential> {
        let users = config
            .users
            .iter()
            .map(|(name, user)| {
                Ok((
                    name.clone(),
                    UserRecord {
                        permissions: user.allow.iter().copied().collect(),
                        credential: Credential::from_config_string(&user.credential)?,
                    },
                ))
            })
            .collect::<Result<_, scram::BadCredential>>()?;
        Ok(Authenticator {
            users,
            anonymous: config.anonymous_permissions(),
            limiter: FailureLimiter::new(
                config.limits.auth_max_failures,
                config.limits.auth_failure_window(),
            ),
            failure_delay: config.limits.auth_failure_delay(),
            decoy_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
        })
    }

    /// What anonymous sessions may do.
    pub fn anonymous_permissions(&self) -> Permissions {
        self.anonymous
    }

    /// The user's record, or `None` for an unknown name.
    pub fn user(&self, name: &str) -> Option<&UserRecord> {
        self.users.get(name)
    }

    /// A salt for an unknown user that looks like a real one and is stable for this process,
    /// so the challenge does not reveal which names exist.
    pub fn decoy_salt(&self, name: &str) -> Vec<u8> {
        hmac::sign(&self.decoy_key, name.as_bytes()).as_ref()[..16].to_vec()
    }

    /// `Some(time left)` while `ip` may not try again.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        self.limiter.blocked_for(ip, Instant::now())
    }

    /// Records a failure from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.limiter.record_failure(ip, Instant::now());
    }

    /// Takes back the attempt counted for `ip` when it succeeds.
    pub fn forgive_failure(&self, ip: IpAddr) {
        self.limiter.forgive(ip, Instant::now());
    }

    /// The fixed delay before every refusal.
    pub fn failure_delay(&self) -> Duration {
        self.failure_delay
    }
}
