//! The server's side of the session handshake: `hello`, then for a user `challenge`/`proof`
//! (a token) or `key_challenge`/`key_proof` (an SSH key, `key_sign_in`), then `welcome` or an
//! error. Mirror of `client::handshake`.

use crate::protocol::{Challenge, Hello, Proof, Welcome};
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::auth::scram::{self, KEY_LEN};
use crate::auth::token::validate_user_name;
use crate::auth::{Authenticator, SessionIdentity};
use crate::connection::{Connection, ConnectionError};
use crate::metrics::{Metrics, SignInOutcome};
use crate::protocol::{ErrorCode, Message, Refusal};
use crate::random::random_bytes;
use crate::transport::Transport;

/// Server name and version sent in `welcome`.
pub const SERVER_NAME: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// Why the handshake did not open a session.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Refused; the session tells the client and closes.
    #[error("refused: {0}")]
    Refused(Refusal),
}

/// What the handshake needs to know about its server.
pub struct HandshakeContext<'a> {
    /// Users, credentials and the failure limiter.
    pub auth: &'a Authenticator,
    /// The client's address.
    pub peer: IpAddr,
    /// The server's TLS fingerprint, or `plaintext`; bound into the auth message.
    pub binding: &'a str,
    /// The frame limit announced in `welcome`.
    pub max_frame: usize,
    /// In a cluster, this server's name, announced in `welcome`.
    pub node: Option<&'a str>,
    /// Slots anonymous sessions may hold; one is taken before an anonymous `welcome`.
    pub anonymous_slots: &'a std::sync::Arc<tokio::sync::Semaphore>,
    /// Authentications in progress per address.
    pub handshakes: &'a std::sync::Arc<crate::per_address::PerAddressQueue>,
    /// The door the session came through, for the audit log.
    pub transport: Transport,
    /// Where sign-ins are recorded.
    pub audit: &'a AuditLog,
    /// Where sign-ins are counted.
    pub metrics: &'a Metrics,
}

impl HandshakeContext<'_> {
    /// Records how a sign-in ended, in the audit log and the metrics.
    fn signed_in(&self, user: Option<&str>, refused: Option<&str>) {
        self.signed_in_with(user, refused, None);
    }

    /// [`Self::signed_in`] for a sign-in with the key of fingerprint `key`.
    fn signed_in_with(&self, user: Option<&str>, refused: Option<&str>, key: Option<String>) {
        let outcome = match (refused, user) {
            (Some(_), _) => SignInOutcome::Failed,
            (None, Some(_)) => SignInOutcome::Ok,
            (None, None) => SignInOutcome::Anonymous,
        };
        self.metrics.signed_in(outcome);
        self.audit.record(AuditEvent::SignIn {
            actor: Actor::claiming(user, self.peer),
            transport: self.transport,
            ok: refused.is_none(),
            reason: refused.map(str::to_string),
            key,
        });
    }
}

/// A session the handshake opened: who it is, and (for an anonymous one) the slot it holds
/// among those anonymous sessions may take.
pub struct Opened {
    /// Who the session is and what it may do.
    pub identity: SessionIdentity,
    /// The slot an anonymous session holds until it ends.
    pub anonymous_slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Runs the server side of the handshake on `conn`.
///
/// # Errors
/// [`HandshakeError::Refused`] with what to tell the client; connection failures.
pub async fn server_handshake<S>(
    conn: &mut Connection<S>,
    ctx: &HandshakeContext<'_>,
) -> Result<Opened, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (user, client_nonce, keys) = match conn.read_message().await {
        Ok(Message::Hello(Hello {
            user, nonce, keys, ..
        })) => (user, nonce, keys),
        Ok(other) => {
            let message = format!("expected 'hello', got '{}'", other.kind());
            return refuse(ErrorCode::UnexpectedMessage, message);
        }
        Err(e) if e.is_recoverable() => return refuse(e.code(), e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let Some(user) = user else {
        let permissions = ctx.auth.anonymous_permissions();
        if permissions.is_empty() {
            // A session that can do nothing would only hold a connection slot.
            let message =
                "this server allows nothing without a token; connect with --token NAME:SECRET";
            return refuse(ErrorCode::PermissionDenied, message);
        }
        // Anonymous sessions may not take the slots kept for signed-in users.
        let Ok(slot) = std::sync::Arc::clone(ctx.anonymous_slots).try_acquire_owned() else {
            let message = "the server keeps its remaining connections for signed-in users; connect with a token or try again later";
            return refuse(ErrorCode::ServerBusy, message);
        };
        let identity = SessionIdentity {
            user: None,
            permissions,
            credential: None,
        };
        welcome(conn, &identity, ctx, None).await?;
        ctx.signed_in(None, None);
        return Ok(Opened {
            identity,
            anonymous_slot: Some(slot),
        });
    };

    // Guesses in parallel would otherwise all be checked before the first failure counted:
    // an address gets a few turns at once, and the rest queue (within the handshake timeout).
    let Some(turn) = ctx.handshakes.turn(ctx.peer).await else {
        return refuse(ErrorCode::Internal, "login queue closed".to_string());
    };
    if let Some(left) = ctx.auth.blocked_for(ctx.peer) {
        tokio::time::sleep(ctx.auth.failure_delay()).await;
        let message = format!(
            "too many failed logins from this address; retry in {} s",
            left.as_secs().max(1)
        );
        ctx.signed_in(Some(&user), Some(&message));
        return refuse(ErrorCode::RateLimited, message);
    }
    let Some(client_nonce) = client_nonce.filter(|n| valid_nonce(n)) else {
        let message = "'hello' with a user needs a 'nonce': 16 to 64 random bytes in base64";
        return refuse(ErrorCode::BadMessage, message);
    };
    if !keys.is_empty() {
        return key_sign_in::sign_in(conn, ctx, user, client_nonce, keys, turn).await;
    }
    // An invalid name is treated as an unknown one: same decoy salt, same delay, same answer.
    let record = validate_user_name(&user)
        .ok()
        .and_then(|()| ctx.auth.user(&user));
    let salt = record
        .as_ref()
        .map_or_else(|| ctx.auth.decoy_salt(&user), |r| r.credential.salt.clone());
    let server_nonce = STANDARD.encode(random_bytes::<24>());
    // The attempt counts from the moment a challenge goes out; a success takes it back.
    ctx.auth.record_failure(ctx.peer);
    conn.write_message(&Message::Challenge(Challenge {
        nonce: server_nonce.clone(),
        salt: STANDARD.encode(&salt),
    }))
    .await?;

    let proof = match conn.read_message().await {
        Ok(Message::Proof(Proof { proof })) => STANDARD.decode(proof).unwrap_or_default(),
        Ok(other) => {
            let message = format!("expected 'proof', got '{}'", other.kind());
            return refuse(ErrorCode::UnexpectedMessage, message);
        }
        Err(e) if e.is_recoverable() => return refuse(e.code(), e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let auth_message = scram::auth_message(&user, &client_nonce, &server_nonce, ctx.binding);
    match record
        .filter(|r| proof.len() == KEY_LEN && r.credential.verify_proof(&auth_message, &proof))
    {
        Some(record) => {
            ctx.auth.forgive_failure(ctx.peer);
            let identity = SessionIdentity {
                user: Some(user),
                permissions: record.permissions,
                credential: Some(record.credential.stored_key),
            };
            let signature = record.credential.server_signature(&auth_message);
            welcome(conn, &identity, ctx, Some(STANDARD.encode(signature))).await?;
            ctx.signed_in(identity.user.as_deref(), None);
            Ok(Opened {
                identity,
                anonymous_slot: None,
            })
        }
        None => {
            tracing::info!(peer = %ctx.peer, %user, "failed login: wrong token or unknown user");
            drop(turn);
            tokio::time::sleep(ctx.auth.failure_delay()).await;
            let message = "authentication failed: wrong token or unknown user".to_string();
            ctx.signed_in(Some(&user), Some("wrong token or unknown user"));
            refuse(ErrorCode::AuthFailed, message)
        }
    }
}

pub(crate) fn valid_nonce(nonce: &str) -> bool {
    nonce.len() <= 128
        && STANDARD
            .decode(nonce)
            .is_ok_and(|bytes| (16..=64).contains(&bytes.len()))
}

pub(crate) async fn welcome<S>(
    conn: &mut Connection<S>,
    identity: &SessionIdentity,
    ctx: &HandshakeContext<'_>,
    signature: Option<String>,
) -> Result<(), HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.write_message(&Message::Welcome(Welcome {
        server: SERVER_NAME.to_string(),
        user: identity.user.clone(),
        permissions: identity.permissions.to_vec(),
        max_frame: u32::try_from(ctx.max_frame).unwrap_or(u32::MAX),
        signature,
        node: ctx.node.map(str::to_string),
    }))
    .await?;
    Ok(())
}

pub(crate) fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, HandshakeError> {
    Err(HandshakeError::Refused(Refusal::new(code, message)))
}

mod key_sign_in;
#[cfg(test)]
mod tests;
