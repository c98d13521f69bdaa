//! The client's side of the session handshake. Mirror of `server::handshake`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use crate::auth::scram;
use crate::auth::token::Token;
use crate::connection::Connection;
use crate::protocol::{Message, Permissions};
use crate::random::random_bytes;

/// Client name and version sent in `hello`.
pub const CLIENT_NAME: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub server: String,
    pub user: Option<String>,
    pub permissions: Permissions,
    pub max_frame: usize,
}

/// Says hello, proves the token if there is one, and returns the server's welcome.
/// `binding` is the server's TLS fingerprint, or `plaintext`.
///
/// # Errors
/// The server's refusal as [`ClientError::Server`], a bad server signature, protocol errors.
pub async fn client_handshake<S>(
    conn: &mut Connection<S>,
    token: Option<&Token>,
    binding: &str,
) -> Result<Welcome, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_nonce = STANDARD.encode(random_bytes::<24>());
    conn.write_message(&Message::Hello {
        client: CLIENT_NAME.to_string(),
        user: token.map(|t| t.user().to_string()),
        nonce: token.map(|_| client_nonce.clone()),
    })
    .await?;

    let mut expected_signature = None;
    if let Some(token) = token {
        let (server_nonce, salt) = match conn.read_message().await? {
            Message::Challenge { nonce, salt } => (nonce, salt),
            other => return Err(unexpected(other)),
        };
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| ClientError::Protocol("challenge salt is not base64".into()))?;
        let auth_message = scram::auth_message(token.user(), &client_nonce, &server_nonce, binding);
        let proof = scram::client_proof(token.secret(), &salt, &auth_message);
        conn.write_message(&Message::Proof {
            proof: STANDARD.encode(proof),
        })
        .await?;
        expected_signature = Some((token, salt, auth_message));
    }

    match conn.read_message().await? {
        Message::Welcome {
            server,
            user,
            permissions,
            max_frame,
            signature,
        } => {
            if let Some((token, salt, auth_message)) = expected_signature {
                let signature = signature
                    .and_then(|s| STANDARD.decode(s).ok())
                    .unwrap_or_default();
                if !scram::verify_server_signature(token.secret(), &salt, &auth_message, &signature)
                {
                    return Err(ClientError::BadServerSignature);
                }
            }
            Ok(Welcome {
                server,
                user,
                permissions: permissions.into_iter().collect(),
                max_frame: max_frame as usize,
            })
        }
        other => Err(unexpected(other)),
    }
}

/// Turns a message the client did not expect into the right error: a server error is shown
/// as the server worded it.
pub fn unexpected(message: Message) -> ClientError {
    match message {
        Message::Error { code, message, .. } => ClientError::Server { code, message },
        Message::Goodbye { reason } => ClientError::Goodbye { reason },
        other => ClientError::Protocol(format!("unexpected '{}' message", other.kind())),
    }
}
