//! Signing a user in with an SSH key: `hello` offered public keys, the server names the one it
//! will check in `key_challenge` with a fresh nonce, the client answers `key_proof` with that
//! key's signature over `auth::keys::signed_message`.
//!
//! The same rules as a token's proof: the attempt counts as a failure from the challenge on
//! and is forgiven only by success, a refusal waits the fixed delay, and an unknown user or a
//! key that is not theirs gets the same challenge (for the first key offered) and the same
//! answer as a wrong signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{HandshakeContext, HandshakeError, Opened, refuse, welcome};
use crate::auth::SessionIdentity;
use crate::auth::keys::{AuthorizedKey, MAX_OFFERED_KEYS, signed_message};
use crate::auth::token::validate_user_name;
use crate::connection::Connection;
use crate::per_address::Turn;
use crate::protocol::{ErrorCode, KeyChallenge, KeyProof, Message};
use crate::random::random_bytes;

/// Runs the key exchange after `hello` (the address's turn is held, and it is not blocked).
pub(super) async fn sign_in<S>(
    conn: &mut Connection<S>,
    ctx: &HandshakeContext<'_>,
    user: String,
    client_nonce: String,
    offered: Vec<String>,
    turn: Turn,
) -> Result<Opened, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if offered.len() > MAX_OFFERED_KEYS || offered.iter().any(|k| k.len() > 16 * 1024) {
        let message = format!("'hello' may offer {MAX_OFFERED_KEYS} keys of 16 KiB at most");
        return refuse(ErrorCode::BadMessage, message);
    }
    let record = validate_user_name(&user)
        .ok()
        .and_then(|()| ctx.auth.user(&user));
    let parsed: Vec<Option<AuthorizedKey>> = offered
        .iter()
        .map(|line| AuthorizedKey::parse(line).ok())
        .collect();
    let chosen = record.as_ref().and_then(|record| {
        parsed.iter().position(|key| {
            key.as_ref()
                .is_some_and(|key| record.keys.iter().any(|held| held.id() == key.id()))
        })
    });
    let index = chosen.unwrap_or(0);
    let fingerprint = parsed
        .get(index)
        .and_then(Option::as_ref)
        .map(AuthorizedKey::fingerprint);
    let server_nonce = STANDARD.encode(random_bytes::<24>());
    ctx.auth.record_failure(ctx.peer);
    conn.write_message(&Message::KeyChallenge(KeyChallenge {
        nonce: server_nonce.clone(),
        key: u32::try_from(index).unwrap_or(0),
    }))
    .await?;
    let signature = match conn.read_message().await {
        Ok(Message::KeyProof(KeyProof { signature })) => {
            STANDARD.decode(signature).unwrap_or_default()
        }
        Ok(other) => {
            let message = format!("expected 'key_proof', got '{}'", other.kind());
            return refuse(ErrorCode::UnexpectedMessage, message);
        }
        Err(e) if e.is_recoverable() => return refuse(e.code(), e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let line = offered.get(index).map_or("", String::as_str);
    let message = signed_message(&user, &client_nonce, &server_nonce, ctx.binding, line);
    let verified = chosen
        .and_then(|i| parsed.get(i).cloned().flatten())
        .filter(|key| key.verifies(&message, &signature));
    match (verified, record) {
        (Some(key), Some(record)) => {
            ctx.auth.forgive_failure(ctx.peer);
            let identity = SessionIdentity {
                user: Some(user),
                permissions: record.permissions,
                credential: Some(key.id()),
            };
            welcome(conn, &identity, ctx, None).await?;
            ctx.signed_in_with(identity.user.as_deref(), None, fingerprint);
            Ok(Opened {
                identity,
                anonymous_slot: None,
            })
        }
        _ => {
            tracing::info!(peer = %ctx.peer, %user, key = ?fingerprint, "failed login: key not accepted");
            drop(turn);
            tokio::time::sleep(ctx.auth.failure_delay()).await;
            ctx.signed_in_with(
                Some(&user),
                Some("key not accepted or unknown user"),
                fingerprint,
            );
            refuse(
                ErrorCode::AuthFailed,
                "authentication failed: no key offered is one of this user's, or the signature is wrong",
            )
        }
    }
}
