//! Wire messages of the session itself: the handshake, the round-trip probe and the goodbye.

use serde::{Deserialize, Serialize};

use super::Permission;

/// Client → server, first message after the transport is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Free-form client name and version, for the server's logs.
    pub client: String,
    /// The user to authenticate as; absent for an anonymous session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Base64 client nonce (at least 16 random bytes); required with `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Public keys the client can sign with, each as OpenSSH writes it (`ssh-ed25519
    /// AAAA...`, no comment): with `user`, the server answers `key_challenge` instead of
    /// `challenge` and the session signs in with a key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// Server → client: the salt of the user's credential and the server's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Base64 server nonce.
    pub nonce: String,
    /// Base64 salt stored with the user's credential.
    pub salt: String,
}

/// Client → server: proof that the client holds the token (see `auth::scram`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Base64 of ClientKey XOR ClientSignature.
    pub proof: String,
}

/// Server → client: sign the sign-in with the offered key `key` (an index into `hello`'s
/// `keys`) over the server's nonce (see `auth::keys::signed_message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChallenge {
    /// Base64 server nonce.
    pub nonce: String,
    /// Which offered key to sign with.
    pub key: u32,
}

/// Client → server: the signature that proves the client holds the key's private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProof {
    /// Base64 of an SSH signature blob (`string algorithm, string signature`, RFC 4253 6.6;
    /// RSA as `rsa-sha2-512` or `rsa-sha2-256`).
    pub signature: String,
}

/// Server → client: the session is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Server name and version.
    pub server: String,
    /// The authenticated user, absent when anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What this session may do.
    pub permissions: Vec<Permission>,
    /// The largest frame length the server accepts.
    pub max_frame: u32,
    /// Base64 ServerSignature proving the server knows the credential (authenticated only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// In a cluster, the name of the server the session landed on (where `exec` runs and
    /// files are read and written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Client → server: a round-trip probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in the `pong`.
    pub seq: u64,
}

/// Server → client: the answer to `ping`, echoing its `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The `ping`'s `seq`.
    pub seq: u64,
}

/// Server → client: the server is closing this connection (shutdown, idle timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    /// Why, for people.
    pub reason: String,
}
