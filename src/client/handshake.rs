//! The client's side of the session handshake. Mirror of `server::handshake`.

use crate::protocol::{Challenge, Hello, KeyChallenge, KeyProof, Proof, Welcome};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::error::unexpected;
use super::keys::KeyLogin;
use crate::auth::keys::signed_message;
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

/// How a session signs in.
#[derive(Debug, Clone, Copy)]
pub enum SignIn<'a> {
    /// No user.
    Anonymous,
    /// With a token's proof.
    Token(&'a Token),
    /// With an SSH key's signature.
    Key(&'a KeyLogin),
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
    let sign_in = token.map_or(SignIn::Anonymous, SignIn::Token);
    client_handshake_as(conn, sign_in, binding).await
}

/// [`client_handshake`] for any way of signing in.
///
/// # Errors
/// As [`client_handshake`]; [`ClientError::Key`] when no key can be offered or signed with.
pub async fn client_handshake_as<S>(
    conn: &mut Connection<S>,
    sign_in: SignIn<'_>,
    binding: &str,
) -> Result<Granted, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let token = match sign_in {
        SignIn::Token(token) => Some(token),
        SignIn::Key(login) => return key_handshake(conn, login, binding).await,
        SignIn::Anonymous => None,
    };
    let client_nonce = STANDARD.encode(random_bytes::<24>());
    conn.write_message(&Message::Hello(Hello {
        client: CLIENT_NAME.to_string(),
        user: token.map(|t| t.user().to_string()),
        nonce: token.map(|_| client_nonce.clone()),
        keys: Vec::new(),
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
        Message::Welcome(welcome) => {
            let signature = welcome.signature.clone();
            if let Some((token, salt, auth_message)) = expected_signature {
                let signature = signature
                    .and_then(|s| STANDARD.decode(s).ok())
                    .unwrap_or_default();
                if !scram::verify_server_signature(token.secret(), &salt, &auth_message, &signature)
                {
                    return Err(ClientError::BadServerSignature);
                }
            }
            Ok(granted(welcome))
        }
        other => Err(unexpected(other)),
    }
}

fn granted(welcome: Welcome) -> Granted {
    Granted {
        server: welcome.server,
        user: welcome.user,
        permissions: welcome.permissions.into_iter().collect(),
        max_frame: welcome.max_frame as usize,
        node: welcome.node,
    }
}

/// Signs in with a key: offers the candidates, signs with the one the server names. The
/// server is authenticated by TLS (its pinned identity is in the signed message), so there is
/// no server signature to check here.
async fn key_handshake<S>(
    conn: &mut Connection<S>,
    login: &KeyLogin,
    binding: &str,
) -> Result<Granted, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let candidates = login.candidates().await?;
    let client_nonce = STANDARD.encode(random_bytes::<24>());
    conn.write_message(&Message::Hello(Hello {
        client: CLIENT_NAME.to_string(),
        user: Some(login.user.clone()),
        nonce: Some(client_nonce.clone()),
        keys: candidates.iter().map(|c| c.wire.clone()).collect(),
    }))
    .await?;
    let (server_nonce, index) = match conn.read_message().await? {
        Message::KeyChallenge(KeyChallenge { nonce, key }) => (nonce, key),
        other => return Err(unexpected(other)),
    };
    let candidate = candidates.get(index as usize).ok_or_else(|| {
        ClientError::Protocol(format!("the server chose key {index}, not offered"))
    })?;
    let message = signed_message(
        &login.user,
        &client_nonce,
        &server_nonce,
        binding,
        &candidate.wire,
    );
    let signature = candidate.sign(&message).await?;
    conn.write_message(&Message::KeyProof(KeyProof {
        signature: STANDARD.encode(signature),
    }))
    .await?;
    match conn.read_message().await? {
        Message::Welcome(welcome) => Ok(granted(welcome)),
        other => Err(unexpected(other)),
    }
}
