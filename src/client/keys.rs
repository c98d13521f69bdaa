//! The client's SSH keys for signing in: which keys to offer, and signing with the one the
//! server chose — through the running `ssh-agent` when `SSH_AUTH_SOCK` is set (no private key
//! is ever read then), else from the key files as ssh finds them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use ssh_key::{PrivateKey, PublicKey};

use super::ClientError;
use super::agent::Agent;
use crate::auth::keys::{AuthorizedKey, MAX_OFFERED_KEYS};

/// Signing in with an SSH key instead of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogin {
    /// The user to sign in as.
    pub user: String,
    /// The private key file to use (`--identity`); `None` for the agent, or else the default
    /// files.
    pub identity: Option<PathBuf>,
}

/// The key files ssh tries, in its order, under `~/.ssh`.
const DEFAULT_FILES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// A key the client can offer, and where its private half is.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The key as offered (`algorithm base64`).
    pub wire: String,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Agent { socket: PathBuf, blob: Vec<u8> },
    File(PathBuf),
}

impl KeyLogin {
    /// The keys to offer: the `--identity` file's; else the agent's; else those of the default
    /// files that exist. At most [`MAX_OFFERED_KEYS`].
    ///
    /// # Errors
    /// [`ClientError::Key`] when there is no key to offer, or the chosen file is not a key.
    pub async fn candidates(&self) -> Result<Vec<Candidate>, ClientError> {
        if let Some(path) = &self.identity {
            return Ok(vec![file_candidate(path)?]);
        }
        if let Some(socket) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
            let socket = PathBuf::from(socket);
            let held = agent_candidates(&socket).await?;
            if !held.is_empty() {
                return Ok(held);
            }
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let found: Vec<Candidate> = DEFAULT_FILES
            .iter()
            .map(|name| home.join(".ssh").join(name))
            .filter(|path| path.exists())
            .map(|path| file_candidate(&path))
            .collect::<Result<_, _>>()?;
        if found.is_empty() {
            return Err(ClientError::Key(format!(
                "no SSH key to sign in as '{}' with: no agent (SSH_AUTH_SOCK) holds one and there is no ~/.ssh/id_ed25519, id_ecdsa or id_rsa; give --identity FILE or a token",
                self.user
            )));
        }
        Ok(found)
    }
}

impl Candidate {
    /// The signature (an SSH signature blob) of `message` by this key.
    ///
    /// # Errors
    /// [`ClientError::Key`]: the agent refused, the file is encrypted and there is no terminal
    /// to ask its passphrase on, or the passphrase is wrong.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        match &self.source {
            Source::Agent { socket, blob } => {
                let mut agent = Agent::connect(socket)
                    .await
                    .map_err(|e| agent_error(socket, &e))?;
                agent
                    .sign(blob, message)
                    .await
                    .map_err(|e| agent_error(socket, &e))
            }
            Source::File(path) => {
                let path = path.clone();
                let message = message.to_vec();
                tokio::task::spawn_blocking(move || sign_with_file(&path, &message))
                    .await
                    .map_err(|e| ClientError::Key(e.to_string()))?
            }
        }
    }
}

async fn agent_candidates(socket: &Path) -> Result<Vec<Candidate>, ClientError> {
    let mut agent = Agent::connect(socket)
        .await
        .map_err(|e| agent_error(socket, &e))?;
    let keys = agent.keys().await.map_err(|e| agent_error(socket, &e))?;
    Ok(keys
        .into_iter()
        .filter_map(|key| {
            let public = PublicKey::from_bytes(&key.blob).ok()?;
            let wire = AuthorizedKey::parse(&public.to_openssh().ok()?)
                .ok()?
                .wire();
            Some(Candidate {
                wire,
                source: Source::Agent {
                    socket: socket.to_path_buf(),
                    blob: key.blob,
                },
            })
        })
        .take(MAX_OFFERED_KEYS)
        .collect())
}

fn agent_error(socket: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Key(format!(
        "the ssh-agent at {} (SSH_AUTH_SOCK): {e}",
        socket.display()
    ))
}

/// A private key file's public half: from the file itself (its public part is readable even
/// when the private part is encrypted).
fn file_candidate(path: &Path) -> Result<Candidate, ClientError> {
    let private = read_private(path)?;
    let line = private
        .public_key()
        .to_openssh()
        .map_err(|e| ClientError::Key(format!("{}: {e}", path.display())))?;
    let key = AuthorizedKey::parse(&line)
        .map_err(|e| ClientError::Key(format!("{}: {e}", path.display())))?;
    Ok(Candidate {
        wire: key.wire(),
        source: Source::File(path.to_path_buf()),
    })
}

fn read_private(path: &Path) -> Result<PrivateKey, ClientError> {
    PrivateKey::read_openssh_file(path).map_err(|e| {
        ClientError::Key(format!(
            "{} is not an OpenSSH private key ({e})",
            path.display()
        ))
    })
}

fn sign_with_file(path: &Path, message: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut private = read_private(path)?;
    if private.is_encrypted() {
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::Key(format!(
                "{} is encrypted and there is no terminal to ask its passphrase on; add it to ssh-agent (ssh-add) or give a token",
                path.display()
            )));
        }
        let passphrase =
            rpassword::prompt_password(format!("Enter passphrase for key '{}': ", path.display()))
                .map_err(|e| ClientError::Key(format!("reading the passphrase: {e}")))?;
        private = private
            .decrypt(passphrase.as_bytes())
            .map_err(|_| ClientError::Key(format!("wrong passphrase for {}", path.display())))?;
    }
    let signed = match private.key_data() {
        ssh_key::private::KeypairData::Rsa(keypair) => sign_rsa(keypair, message),
        _ => signature::Signer::try_sign(&private, message).map_err(|e| e.to_string()),
    };
    let signature =
        signed.map_err(|e| ClientError::Key(format!("signing with {}: {e}", path.display())))?;
    Vec::<u8>::try_from(signature)
        .map_err(|e| ClientError::Key(format!("signing with {}: {e}", path.display())))
}

/// `rsa-sha2-512` by hand: `ssh-key` 0.6.7 builds the RSA private key from `p` twice instead of
/// `p` and `q` (its `TryFrom<&RsaKeypair>`), so its own RSA signer always fails; the `rsa`
/// crate signs from the right components.
fn sign_rsa(
    keypair: &ssh_key::private::RsaKeypair,
    message: &[u8],
) -> Result<ssh_key::Signature, String> {
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or_else(|| "an RSA key with a negative component".to_string())
    };
    let key = rsa::RsaPrivateKey::from_components(
        int(&keypair.public.n)?,
        int(&keypair.public.e)?,
        int(&keypair.private.d)?,
        vec![int(&keypair.private.p)?, int(&keypair.private.q)?],
    )
    .map_err(|e| e.to_string())?;
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(key);
    let signature = signature::Signer::try_sign(&signer, message).map_err(|e| e.to_string())?;
    ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(ssh_key::HashAlg::Sha512),
        },
        signature::SignatureEncoding::to_vec(&signature),
    )
    .map_err(|e| e.to_string())
}
