//! Signing in with SSH keys: the public keys a user may sign in with (as `authorized_keys`
//! lines), the message a key signs, and its check.
//!
//! The formats are OpenSSH's, through the `ssh-key` crate: a user's keys are the lines their
//! `~/.ssh/*.pub` files hold, and a signature is the SSH signature blob an `ssh-agent` returns,
//! so a key in an agent signs without its private half ever being read. The signed message
//! binds the user, both nonces and the server's TLS identity (as the token's proof does), so a
//! signature can be neither replayed nor relayed to another server.

use ring::digest;
use signature::Verifier;
use ssh_key::{Algorithm, HashAlg, PublicKey, Signature};

/// Keys one `hello` may offer (a client with more, in an agent say, offers its first ones).
pub const MAX_OFFERED_KEYS: usize = 16;

/// What a key signs: a fixed label, then the user, the client's nonce, the server's nonce,
/// the server's TLS fingerprint (or `plaintext`) and the key itself, NUL-separated.
pub fn signed_message(
    user: &str,
    client_nonce: &str,
    server_nonce: &str,
    binding: &str,
    key: &str,
) -> Vec<u8> {
    [
        "ferry key sign-in v1",
        user,
        client_nonce,
        server_nonce,
        binding,
        key,
    ]
    .join("\0")
    .into_bytes()
}

/// A public key a user may sign in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    key: PublicKey,
    /// See [`AuthorizedKey::id`]; computed once, as sessions compare it at every request.
    id: [u8; 32],
}

impl AuthorizedKey {
    /// Parses one line as `ssh-keygen` writes it (`ssh-ed25519 AAAA... comment`). Ed25519,
    /// ECDSA P-256 and RSA keys are taken.
    ///
    /// # Errors
    /// Why the line is not such a key.
    pub fn parse(line: &str) -> Result<AuthorizedKey, String> {
        let key = PublicKey::from_openssh(line.trim())
            .map_err(|e| format!("not an OpenSSH public key ({e}): '{}'", preview(line)))?;
        match key.algorithm() {
            Algorithm::Ed25519 | Algorithm::Rsa { .. } => {}
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            } => {}
            other => {
                return Err(format!(
                    "{} keys are not taken (ssh-ed25519, ecdsa-sha2-nistp256 and ssh-rsa are)",
                    other.as_str()
                ));
            }
        }
        let blob = key
            .to_bytes()
            .map_err(|e| format!("cannot encode the key: {e}"))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(digest::digest(&digest::SHA256, &blob).as_ref());
        Ok(AuthorizedKey { key, id })
    }

    /// The key as the wire carries it: `algorithm base64`, without the comment.
    pub fn wire(&self) -> String {
        let mut key = self.key.clone();
        key.set_comment("");
        key.to_openssh()
            .map(|line| line.trim().to_string())
            .unwrap_or_default()
    }

    /// The comment that came with the key (`alice@laptop`), possibly empty.
    pub fn comment(&self) -> &str {
        self.key.comment()
    }

    /// The fingerprint `ssh-keygen -l` prints: `SHA256:...`.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The SHA-256 of the key's wire blob: what a session signed in with it remembers, so the
    /// key's removal ends the session.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Whether `signature` (an SSH signature blob) is this key's over `message`. RSA must be
    /// signed with SHA-2 (`rsa-sha2-256` or `-512`), never SHA-1.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::try_from(signature) else {
            return false;
        };
        let fits = match (self.key.algorithm(), signature.algorithm()) {
            (Algorithm::Rsa { .. }, Algorithm::Rsa { hash }) => hash.is_some(),
            (ours, theirs) => ours == theirs,
        };
        fits && Verifier::verify(&self.key, message, &signature).is_ok()
    }
}

/// The start of a line, for an error message (never a whole key).
fn preview(line: &str) -> String {
    let line = line.trim();
    let cut: String = line.chars().take(24).collect();
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::Signer;
    use ssh_key::PrivateKey;

    fn random(algorithm: Algorithm) -> PrivateKey {
        PrivateKey::random(&mut ssh_key::rand_core::OsRng, algorithm).unwrap()
    }

    #[test]
    fn a_signature_verifies_only_its_message_with_its_key() {
        for algorithm in [
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            },
        ] {
            let private = random(algorithm.clone());
            let other = random(algorithm);
            let key = AuthorizedKey::parse(&private.public_key().to_openssh().unwrap()).unwrap();
            let message = signed_message("alice", "c", "s", "plaintext", &key.wire());
            let signature: Signature = private.try_sign(&message).unwrap();
            let blob: Vec<u8> = signature.try_into().unwrap();
            assert!(key.verifies(&message, &blob));
            let elsewhere = signed_message("alice", "c", "s", "sha256:other", &key.wire());
            assert!(
                !key.verifies(&elsewhere, &blob),
                "another server's identity"
            );
            let theirs: Vec<u8> = other.try_sign(&message).unwrap().try_into().unwrap();
            assert!(!key.verifies(&message, &theirs), "another key's signature");
            assert!(!key.verifies(&message, b"garbage"));
        }
    }

    #[test]
    fn lines_that_are_not_keys_are_refused_without_echoing_them() {
        let err =
            AuthorizedKey::parse("ssh-ed25519 notbase64atall-secret-secret-secret").unwrap_err();
        assert!(err.contains("not an OpenSSH public key"), "{err}");
        assert!(!err.contains("secret-secret-secret"), "{err}");
    }
}
