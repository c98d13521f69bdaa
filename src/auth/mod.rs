//! Authentication and authorisation: who a session is and what it may do.
//!
//! The server-side decision lives in [`Authenticator`]; the wire exchange that feeds it is in
//! `server::handshake` and its mirror `client::handshake`.

pub mod keys;
pub mod limiter;
pub mod scram;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ring::hmac;
use tokio::sync::watch;

use crate::protocol::{ErrorCode, Permissions, Refusal};
use crate::random::random_bytes;
use limiter::FailureLimiter;
use scram::Credential;

/// Who a session belongs to once the handshake succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// `None` for anonymous sessions.
    pub user: Option<String>,
    /// Its permissions as of the last look (see [`Authenticator::rights_of`]).
    pub permissions: Permissions,
    /// What the user signed in with, so a rotated token or a removed key ends the session:
    /// the token's stored key, or the SHA-256 of the public key ([`keys::AuthorizedKey::id`]).
    pub credential: Option<[u8; scram::KEY_LEN]>,
}

/// A configured user, as the server keeps it in memory.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// What the user may do.
    pub permissions: Permissions,
    /// The stored SCRAM credential its token is checked against.
    pub credential: Credential,
    /// The SSH public keys it may sign in with.
    pub keys: Vec<keys::AuthorizedKey>,
}

/// The server's authentication state: users, anonymous rights, failure limiting.
///
/// Users and anonymous rights can be replaced while the server runs ([`Authenticator::reload`]):
/// sessions look their rights up again for every request ([`Authenticator::rights_of`]), and a
/// session whose user was removed, or whose token was rotated, has none left.
#[derive(Debug)]
pub struct Authenticator {
    table: RwLock<Arc<Accounts>>,
    limiter: FailureLimiter,
    failure_delay: Duration,
    /// Keys the decoy salts of unknown users, so a probe cannot tell them from real ones.
    decoy_key: hmac::Key,
    /// Bumped on every reload, so long-running exchanges (chat) can look again.
    generation: watch::Sender<u64>,
}

/// Who may log in, and what anonymous sessions may do. Built from the server's config by
/// `config` (which knows the file format); auth only knows the accounts.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Users by name.
    pub users: HashMap<String, UserRecord>,
    /// What a session without a user may do.
    pub anonymous: Permissions,
}

/// How failed logins are limited.
#[derive(Debug, Clone, Copy)]
pub struct FailurePolicy {
    /// Failures from one address within `window` before it must wait.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The fixed delay before every refusal.
    pub delay: Duration,
}

/// What a session may do now, as [`Authenticator::rights_of`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// The session's current permissions.
    Granted(Permissions),
    /// The session's user was removed or its token rotated: the session must end.
    Revoked,
}

impl Authenticator {
    /// The authentication state for these accounts, limiting failures by `policy`.
    pub fn new(accounts: Accounts, policy: FailurePolicy) -> Authenticator {
        Authenticator {
            table: RwLock::new(Arc::new(accounts)),
            limiter: FailureLimiter::new(policy.max_failures, policy.window),
            failure_delay: policy.delay,
            decoy_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
            generation: watch::Sender::new(0),
        }
    }

    /// Replaces users and anonymous rights; open sessions see the change at their next request.
    pub fn reload(&self, accounts: Accounts) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(accounts);
        self.generation.send_modify(|g| *g += 1);
    }

    /// A receiver that sees every reload.
    pub fn watch_reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The users and anonymous rights in force now.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.table()
    }

    fn table(&self) -> Arc<Accounts> {
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// What anonymous sessions may do.
    pub fn anonymous_permissions(&self) -> Permissions {
        self.table().anonymous
    }

    /// The user's record, or `None` for an unknown name.
    pub fn user(&self, name: &str) -> Option<UserRecord> {
        self.table().users.get(name).cloned()
    }

    /// The configured user names.
    pub fn user_names(&self) -> Vec<String> {
        self.table().users.keys().cloned().collect()
    }

    /// What `identity` may do now: its user's current permissions (or anonymous rights), or
    /// [`Rights::Revoked`] when the user is gone or logs in with another credential now.
    pub fn rights_of(&self, identity: &SessionIdentity) -> Rights {
        let table = self.table();
        match (&identity.user, &identity.credential) {
            (None, _) => Rights::Granted(table.anonymous),
            (Some(name), Some(used)) => match table.users.get(name) {
                Some(record)
                    if record.credential.stored_key == *used
                        || record.keys.iter().any(|key| key.id() == *used) =>
                {
                    Rights::Granted(record.permissions)
                }
                _ => Rights::Revoked,
            },
            (Some(_), None) => Rights::Revoked,
        }
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

    /// Signs `user` in with the token's secret itself, for doors whose clients cannot answer a
    /// challenge (IRC). The same rules as the proof: the attempt counts as a failure until it
    /// succeeds, a blocked address is refused, and every refusal waits the same fixed delay
    /// whether the user exists or not.
    ///
    /// # Errors
    /// `rate_limited` while `peer` is blocked; `auth_failed` for a wrong secret or an unknown
    /// user (the same answer).
    pub async fn sign_in_with_secret(
        &self,
        peer: IpAddr,
        user: &str,
        secret: &str,
    ) -> Result<SessionIdentity, Refusal> {
        if let Some(left) = self.blocked_for(peer) {
            tokio::time::sleep(self.failure_delay).await;
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "too many failed logins from this address; retry in {} s",
                    left.as_secs().max(1)
                ),
            ));
        }
        self.record_failure(peer);
        match self
            .user(user)
            .filter(|record| record.credential.verify_secret(secret))
        {
            Some(record) => {
                self.forgive_failure(peer);
                Ok(SessionIdentity {
                    user: Some(user.to_string()),
                    permissions: record.permissions,
                    credential: Some(record.credential.stored_key),
                })
            }
            None => {
                tracing::info!(%peer, %user, "failed login: wrong token or unknown user");
                tokio::time::sleep(self.failure_delay).await;
                Err(Refusal::new(
                    ErrorCode::AuthFailed,
                    "authentication failed: wrong token or unknown user",
                ))
            }
        }
    }
}
