//! The server's TLS identity: a self-signed certificate made on first start and kept in the
//! state directory, like an SSH host key. Clients pin its fingerprint on first use.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::digest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// File name of the certificate inside the state directory.
pub const CERT_FILE: &str = "identity.crt";
/// File name of the private key inside the state directory (mode 0600).
pub const KEY_FILE: &str = "identity.key";

/// Why the identity could not be loaded or created.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid PEM {what}: {reason}", path.display())]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("cannot generate a server identity: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate (with the chain that vouches for it, when a CA signed it) and its private key.
pub struct ServerIdentity {
    /// The server's own certificate first, then any intermediates (a self-signed identity has
    /// just the one). Never empty.
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The private key of the first certificate.
    pub(super) key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"MASKED")
            .finish()
    }
}

impl ServerIdentity {
    /// Loads the identity from `state_dir`, creating the directory and a new identity there if
    /// none exists yet. Returns whether it was created.
    ///
    /// # Errors
    /// Unreadable or invalid files: a broken identity is never silently replaced, because that
    /// would make every pinned client refuse the server.
    pub fn load_or_create(state_dir: &Path) -> Result<(ServerIdentity, bool), IdentityError> {
        let cert_path = state_dir.join(CERT_FILE);
        let key_path = state_dir.join(KEY_FILE);
        // The certificate is renamed into place last, so its presence means a complete
        // identity. A key without a certificate was never served, so no client pinned it.
        if cert_path.exists() {
            return Ok((Self::load(&cert_path, &key_path)?, false));
        }
        Ok((Self::create(state_dir, &cert_path, &key_path)?, true))
    }

    /// Loads an identity an operator provides (`[tls] cert` and `key`): a PEM certificate
    /// chain, the server's own certificate first, as a CA issues it, and its private key.
    ///
    /// # Errors
    /// Unreadable files, no certificate in the chain file, or no key in the key file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ServerIdentity, IdentityError> {
        let pem = |reason: String| IdentityError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem(e.to_string()))?;
        if chain.is_empty() {
            return Err(pem("it holds no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| IdentityError::Pem {
            path: key_path.to_path_buf(),
            what: "private key",
            reason: e.to_string(),
        })?;
        Ok(ServerIdentity { chain, key })
    }

    fn create(
        state_dir: &Path,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<ServerIdentity, IdentityError> {
        let io_err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| IdentityError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(state_dir).map_err(io_err("create", state_dir))?;
        let generated =
            rcgen::generate_simple_self_signed(vec!["ferry".to_string(), "localhost".to_string()])?;
        let key_tmp = key_path.with_extension("key.tmp");
        let cert_tmp = cert_path.with_extension("crt.tmp");
        write_private(&key_tmp, generated.signing_key.serialize_pem().as_bytes())
            .map_err(io_err("write", &key_tmp))?;
        write_private(&cert_tmp, generated.cert.pem().as_bytes())
            .map_err(io_err("write", &cert_tmp))?;
        fs::rename(&key_tmp, key_path).map_err(io_err("rename", key_path))?;
        fs::rename(&cert_tmp, cert_path).map_err(io_err("rename", cert_path))?;
        Self::load(cert_path, key_path)
    }

    /// This identity's fingerprint, as clients pin it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

/// `sha256:` and the lowercase hex SHA-256 of the certificate's DER bytes. Any language can
/// compute it from the peer certificate (Python: `hashlib.sha256(der).hexdigest()`).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let hash = digest::digest(&digest::SHA256, cert.as_ref());
    format!("sha256:{}", crate::protocol::hex::encode(hash.as_ref()))
}

/// Writes `path` readable by its owner only, so the key is never world-readable, even briefly.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = ServerIdentity::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created) = ServerIdentity::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert!(first.fingerprint().starts_with("sha256:"));
        assert_eq!(first.fingerprint().len(), 7 + 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_key_left_without_its_certificate_by_a_crash_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "half-written").unwrap();
        let (identity, created) = ServerIdentity::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, _) = ServerIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(identity.fingerprint(), again.fingerprint());
    }

    #[test]
    fn a_broken_identity_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CERT_FILE), "not pem").unwrap();
        fs::write(dir.path().join(KEY_FILE), "not pem").unwrap();
        let err = ServerIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("identity.crt"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(CERT_FILE)).unwrap(),
            "not pem"
        );
    }
}
