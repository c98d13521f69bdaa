//! The server's side of the session handshake: `hello`, then for a user `challenge`/`proof`,
//! then `welcome` or an error. Mirror of `client::handshake`.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::auth::scram::{self, KEY_LEN};
use crate::auth::token::{random_bytes, validate_user_name};
use crate::auth::{Authenticator, SessionIdentity};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message};

/// Server name and version sent in `welcome`.
pub const SERVER_NAME: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// Why the handshake did not open a session. The client has been told, where it could be.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("refused ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
}

/// What the handshake needs to know about its server.
pub struct HandshakeContext<'a> {
    pub auth: &'a Authenticator,
    pub peer: IpAddr,
    /// The server's TLS fingerprint, or `plaintext`; bound into the auth message.
    pub binding: &'a str,
    pub max_frame: usize,
}

/// Runs the server side of the handshake on `conn`.
///
/// # Errors
/// [`HandshakeError::Refused`] after sending the matching `error`; connection failures.
pub async fn server_handshake<S>(
    conn: &mut Connection<S>,
    ctx: &HandshakeContext<'_>,
) -> Result<SessionIdentity, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (user, client_nonce) = match conn.read_message().await {
        Ok(Message::Hello { user, nonce, .. }) => (user, nonce),
        Ok(other) => {
            let message = format!("expected 'hello', got '{}'", other.kind());
            return refuse(conn, ErrorCode::UnexpectedMessage, message).await;
        }
        Err(e) if e.is_recoverable() => return refuse(conn, e.code(), e.to_string()).await,
        Err(e) => return Err(e.into()),
    };
    let Some(user) = user else {
        let identity = SessionIdentity {
            user: None,
            permissions: ctx.auth.anonymous_permissions(),
        };
        welcome(conn, &identity, ctx.max_frame, None).await?;
        return Ok(identity);
    };

    if let Some(left) = ctx.auth.blocked_for(ctx.peer) {
        tokio::time::sleep(ctx.auth.failure_delay()).await;
        let message = format!(
            "too many failed logins from this address; retry in {} s",
            left.as_secs().max(1)
        );
        return refuse(conn, ErrorCode::RateLimited, message).await;
    }
    let Some(client_nonce) = client_nonce.filter(|n| valid_nonce(n)) else {
        let message = "'hello' with a user needs a 'nonce': 16 to 64 random bytes in base64";
        return refuse(conn, ErrorCode::BadMessage, message.to_string()).await;
    };
    // An invalid name is treated as an unknown one: same decoy salt, same delay, same answer.
    let record = validate_user_name(&user)
        .ok()
        .and_then(|()| ctx.auth.user(&user));
    let salt = record.map_or_else(|| ctx.auth.decoy_salt(&user), |r| r.credential.salt.clone());
    let server_nonce = STANDARD.encode(random_bytes::<24>());
    conn.write_message(&Message::Challenge {
        nonce: server_nonce.clone(),
        salt: STANDARD.encode(&salt),
    })
    .await?;

    let proof = match conn.read_message().await {
        Ok(Message::Proof { proof }) => STANDARD.decode(proof).unwrap_or_default(),
        Ok(other) => {
            let message = format!("expected 'proof', got '{}'", other.kind());
            return refuse(conn, ErrorCode::UnexpectedMessage, message).await;
        }
        Err(e) if e.is_recoverable() => return refuse(conn, e.code(), e.to_string()).await,
        Err(e) => return Err(e.into()),
    };
    let auth_message = scram::auth_message(&user, &client_nonce, &server_nonce, ctx.binding);
    match record
        .filter(|r| proof.len() == KEY_LEN && r.credential.verify_proof(&auth_message, &proof))
    {
        Some(record) => {
            let identity = SessionIdentity {
                user: Some(user),
                permissions: record.permissions,
            };
            let signature = record.credential.server_signature(&auth_message);
            welcome(
                conn,
                &identity,
                ctx.max_frame,
                Some(STANDARD.encode(signature)),
            )
            .await?;
            Ok(identity)
        }
        None => {
            ctx.auth.record_failure(ctx.peer);
            tokio::time::sleep(ctx.auth.failure_delay()).await;
            let message = "authentication failed: wrong token or unknown user".to_string();
            refuse(conn, ErrorCode::AuthFailed, message).await
        }
    }
}

fn valid_nonce(nonce: &str) -> bool {
    nonce.len() <= 128
        && STANDARD
            .decode(nonce)
            .is_ok_and(|bytes| (16..=64).contains(&bytes.len()))
}

async fn welcome<S>(
    conn: &mut Connection<S>,
    identity: &SessionIdentity,
    max_frame: usize,
    signature: Option<String>,
) -> Result<(), HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.write_message(&Message::Welcome {
        server: SERVER_NAME.to_string(),
        user: identity.user.clone(),
        permissions: identity.permissions.to_vec(),
        max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
        signature,
    })
    .await?;
    Ok(())
}

async fn refuse<S, T>(
    conn: &mut Connection<S>,
    code: ErrorCode,
    message: String,
) -> Result<T, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.write_message(&Message::error(code, message.clone()))
        .await?;
    let _ = conn.shutdown().await;
    Err(HandshakeError::Refused { code, message })
}
