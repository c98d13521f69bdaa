//! Token proof without sending the token: a SCRAM-SHA-256-like exchange (RFC 5802 in spirit).
//!
//! The server stores only `StoredKey = SHA256(ClientKey)` and `ServerKey`; neither logs in by
//! itself, because a login needs `ClientKey`. The client proves it knows `ClientKey` by sending
//! `ClientKey XOR HMAC(StoredKey, AuthMessage)`, which is useless to replay: `AuthMessage` binds
//! both sides' fresh nonces and the server's TLS identity. The server answers with
//! `HMAC(ServerKey, AuthMessage)`, proving it holds the credential too.
//!
//! ```text
//! SaltedSecret = HMAC-SHA256(key = token secret (UTF-8), salt)
//! ClientKey    = HMAC-SHA256(SaltedSecret, "Client Key")
//! StoredKey    = SHA256(ClientKey)
//! ServerKey    = HMAC-SHA256(SaltedSecret, "Server Key")
//! AuthMessage  = "ferry-auth-v1\n" user "\n" client_nonce "\n" server_nonce "\n" binding
//! ```
//!
//! The secret is 256 random bits, so there is nothing to brute-force and no iteration count
//! (SCRAM's PBKDF2 stretching exists for human passwords).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac};
use subtle::ConstantTimeEq;

/// Length of every key and proof, in bytes.
pub const KEY_LEN: usize = 32;
/// Prefix of a credential string in the server config.
const CREDENTIAL_PREFIX: &str = "scram-sha256";

/// What the server stores for a user. `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Random salt, fixed per credential.
    pub salt: Vec<u8>,
    /// H(ClientKey): checks a client's proof; cannot itself log in.
    pub stored_key: [u8; KEY_LEN],
    /// HMAC key for the server's signature, proving the server holds the credential.
    pub server_key: [u8; KEY_LEN],
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(MASKED)")
    }
}

/// A credential string in the config that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid credential: expected 'scram-sha256:SALT:STOREDKEY:SERVERKEY' in base64")]
pub struct BadCredential;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn client_key(secret: &str, salt: &[u8]) -> [u8; KEY_LEN] {
    hmac_sha256(&hmac_sha256(secret.as_bytes(), salt), b"Client Key")
}

impl Credential {
    /// Derives the stored credential from a token secret and a fresh salt.
    pub fn derive(secret: &str, salt: &[u8]) -> Credential {
        let salted = hmac_sha256(secret.as_bytes(), salt);
        Credential {
            salt: salt.to_vec(),
            stored_key: sha256(&hmac_sha256(&salted, b"Client Key")),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Whether `proof` shows knowledge of the token for `auth_message`. Constant time.
    pub fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != KEY_LEN {
            return false;
        }
        let signature = hmac_sha256(&self.stored_key, auth_message);
        let mut key = [0u8; KEY_LEN];
        for (k, (p, s)) in key.iter_mut().zip(proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        sha256(&key).ct_eq(&self.stored_key).into()
    }

    /// Whether `secret` is the token secret this credential was derived from. Constant time.
    /// For doors whose clients cannot answer a challenge and send the secret itself, inside
    /// TLS (IRC's SASL PLAIN and PASS).
    pub fn verify_secret(&self, secret: &str) -> bool {
        sha256(&client_key(secret, &self.salt))
            .ct_eq(&self.stored_key)
            .into()
    }

    /// The server's signature over `auth_message`.
    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; KEY_LEN] {
        hmac_sha256(&self.server_key, auth_message)
    }

    /// The config-file form: `scram-sha256:SALT:STOREDKEY:SERVERKEY`, base64.
    pub fn to_config_string(&self) -> String {
        format!(
            "{CREDENTIAL_PREFIX}:{}:{}:{}",
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }

    /// Parses [`Credential::to_config_string`]'s form.
    ///
    /// # Errors
    /// [`BadCredential`] for any other text.
    pub fn from_config_string(s: &str) -> Result<Credential, BadCredential> {
        let mut parts = s.split(':');
        if parts.next() != Some(CREDENTIAL_PREFIX) {
            return Err(BadCredential);
        }
        let mut field = || {
            parts
                .next()
                .and_then(|p| STANDARD.decode(p).ok())
                .ok_or(BadCredential)
        };
        let salt = field()?;
        let stored_key = field()?.try_into().map_err(|_| BadCredential)?;
        let server_key = field()?.try_into().map_err(|_| BadCredential)?;
        if salt.is_empty() || parts.next().is_some() {
            return Err(BadCredential);
        }
        Ok(Credential {
            salt,
            stored_key,
            server_key,
        })
    }
}

/// The bytes both sides sign. `binding` is the server's TLS fingerprint, or `plaintext`.
pub fn auth_message(user: &str, client_nonce: &str, server_nonce: &str, binding: &str) -> Vec<u8> {
    format!("ferry-auth-v1\n{user}\n{client_nonce}\n{server_nonce}\n{binding}").into_bytes()
}

/// The client's proof for `auth_message`, from the token secret and the server's salt.
pub fn client_proof(secret: &str, salt: &[u8], auth_message: &[u8]) -> [u8; KEY_LEN] {
    let key = client_key(secret, salt);
    let signature = hmac_sha256(&sha256(&key), auth_message);
    let mut proof = [0u8; KEY_LEN];
    for (p, (k, s)) in proof.iter_mut().zip(key.iter().zip(signature)) {
        *p = k ^ s;
    }
    proof
}

/// Whether `signature` is the server's signature for `auth_message`. Constant time.
pub fn verify_server_signature(
    secret: &str,
    salt: &[u8],
    auth_message: &[u8],
    signature: &[u8],
) -> bool {
    let server_key = hmac_sha256(&hmac_sha256(secret.as_bytes(), salt), b"Server Key");
    hmac_sha256(&server_key, auth_message)
        .ct_eq(signature)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_secret_proves_and_the_wrong_one_does_not() {
        let cred = Credential::derive("s3cret", b"salty");
        let msg = auth_message("alice", "cn", "sn", "plaintext");
        assert!(cred.verify_proof(&msg, &client_proof("s3cret", b"salty", &msg)));
        assert!(!cred.verify_proof(&msg, &client_proof("wrong", b"salty", &msg)));
        // A proof for one exchange is worthless in another (fresh nonce, other binding).
        let other = auth_message("alice", "cn", "sn2", "plaintext");
        assert!(!cred.verify_proof(&other, &client_proof("s3cret", b"salty", &msg)));
        let bound = auth_message("alice", "cn", "sn", "sha256:ab");
        assert!(!cred.verify_proof(&bound, &client_proof("s3cret", b"salty", &msg)));
        assert!(!cred.verify_proof(&msg, &[0u8; 5]));
    }

    #[test]
    fn the_stored_keys_cannot_log_in() {
        let cred = Credential::derive("s3cret", b"salty");
        let msg = auth_message("alice", "cn", "sn", "plaintext");
        let stolen = cred.to_config_string();
        assert!(!stolen.contains("s3cret"));
        assert!(!cred.verify_proof(&msg, &client_proof(&stolen, b"salty", &msg)));
        assert!(!cred.verify_proof(&msg, &cred.stored_key));
    }

    #[test]
    fn server_signature_verifies_on_the_client() {
        let cred = Credential::derive("s3cret", b"salty");
        let msg = auth_message("alice", "cn", "sn", "plaintext");
        let sig = cred.server_signature(&msg);
        assert!(verify_server_signature("s3cret", b"salty", &msg, &sig));
        assert!(!verify_server_signature("other", b"salty", &msg, &sig));
    }

    #[test]
    fn config_string_round_trips_and_rejects_junk() {
        let cred = Credential::derive("x", b"0123456789abcdef");
        let s = cred.to_config_string();
        assert_eq!(Credential::from_config_string(&s), Ok(cred));
        for junk in [
            "",
            "scram-sha256:",
            "md5:a:b:c",
            "scram-sha256:AA==:AA==:AA==",
            &format!("{s}:x"),
        ] {
            assert_eq!(
                Credential::from_config_string(junk),
                Err(BadCredential),
                "{junk}"
            );
        }
    }
}
