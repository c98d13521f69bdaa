//! The client's side of the session handshake. Mirror of `server::handshake`.

use crate::protocol::{Challenge, Hello, Proof, Welcome};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::error::unexpected;
use crate::auth::scram;
use crate::auth::token::Token;
use crate::connection::Connection;
use crate::protocol::{Message, Permissions};
use crate::random::random_bytes;

/// Client name and version sent in `hello`.
pub const CLIENT_NAME: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// What the server granted: its `welcome`, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The server's name and version.
    pub server: String,
    /// The authenticated user; `None` when anonymous.
    pub user: Option<String>,
    /// What this session may do.
    pub permissions: Permissions,
    /// The largest frame the server accepts.
    pub max_frame: usize,
    /// In a cluster, the name of the server the session landed on.
    pub node: Option<String>,
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
) -> Result<Granted, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_nonce = STANDARD.encode(random_bytes::<24>());
    conn.write_message(&Message::Hello(Hello {
        client: CLIENT_NAME.to_string(),
        user: token.map(|t| t.user().to_string()),
        nonce: token.map(|_| client_nonce.clone()),
    }))
    .await?;

    let mut expected_signature = None;
    if let Some(token) = token {
        let (server_nonce, salt) = match conn.read_message().await? {
            Message::Challenge(Challenge { nonce, salt }) => (nonce, salt),
            other => return Err(unexpected(other)),
        };
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| ClientError::Protocol("challenge salt is not base64".into()))?;
        let auth_message = scram::auth_message(token.user(), &client_nonce, &server_nonce, binding);
        let proof = scram::client_proof(token.secret(), &salt, &auth_message);
        conn.write_message(&Message::Proof(Proof {
            proof: STANDARD.encode(proof),
        }))
        .await?;
        expected_signature = Some((token, salt, auth_message));
    }

    match conn.read_message().await? {
        Message::Welcome(Welcome {
            server,
            user,
            permissions,
            max_frame,
            signature,
            node,
        }) => {
            if let Some((token, salt, auth_message)) = expected_signature {
                let signature = signature
                    .and_then(|s| STANDARD.decode(s).ok())
                    .unwrap_or_default();
                if !scram::verify_server_signature(token.secret(), &salt, &auth_message, &signature)
                {
                    return Err(ClientError::BadServerSignature);
                }
            }
            Ok(Granted {
                server,
                user,
                permissions: permissions.into_iter().collect(),
                max_frame: max_frame as usize,
                node,
            })
        }
        other => Err(unexpected(other)),
    }
}
