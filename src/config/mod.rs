//! The server's TOML configuration: where to listen, what anonymous users may do, the users and
//! their credentials, and the limits.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and `validate`
//! checks what types cannot: ranges, user names, credentials.

mod audit;
mod chat;
mod cluster;
mod edit;
mod exec;
mod forward;
mod limits;
mod metrics;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use audit::AuditConfig;
pub use chat::{BotConfig, ChatConfig, ChatStore};
pub use cluster::ClusterConfig;
pub use edit::{
    add_keys, add_user, add_user_with_keys, remove_keys, remove_user, rotate_user, user_keys,
};
pub use exec::ExecConfig;
pub use forward::ForwardConfig;
pub use limits::{Limits, MAX_MAX_FRAME};
pub use metrics::{MetricsConfig, check_metrics_address};

use crate::auth::keys::AuthorizedKey;
use crate::auth::scram::{BadCredential, Credential};
use crate::auth::token::validate_user_name;
use crate::auth::{Accounts, FailurePolicy, UserRecord};
use crate::protocol::{Permission, Permissions};

/// The whole server configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; `--listen` overrides it. Default `127.0.0.1:9999`.
    pub listen: Option<String>,
    /// Directory served to clients; `--root` overrides it. Default `.`.
    pub root: Option<PathBuf>,
    /// Serve plaintext instead of TLS; `--plaintext` also sets it.
    pub plaintext: bool,
    /// Connection, frame, time and memory limits.
    pub limits: Limits,
    /// Chat rooms, history and the bot.
    pub chat: ChatConfig,
    /// Remote execution.
    pub exec: ExecConfig,
    /// Port forwarding: where streams may go.
    pub forward: ForwardConfig,
    /// What sessions without a token may do.
    pub anonymous: AnonymousConfig,
    /// The web door.
    pub web: WebConfig,
    /// The IRC door.
    pub irc: IrcConfig,
    /// Many servers as one: the Redis cluster engine.
    pub cluster: ClusterConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
    /// An operator's own certificate in place of the self-made identity.
    pub tls: TlsConfig,
    /// Users by name.
    pub users: BTreeMap<String, UserConfig>,
}

/// The web door: HTTP(S) whose WebSocket endpoint `/ws` carries ferry sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address to open it on; `--web` overrides it. Default: closed.
    pub listen: Option<String>,
    /// Names the door answers to besides its own address (and `localhost` on loopback), as a
    /// browser sends them in `Host`: the name of a reverse proxy or of the machine. Any other
    /// name is refused, so a page cannot reach the door by rebinding its own name (DNS
    /// rebinding).
    pub hosts: Vec<String>,
}

/// The IRC door: IRC clients join ferry's rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IrcConfig {
    /// Address to open it on; `--irc` overrides it. Default: closed.
    pub listen: Option<String>,
}

/// The server's TLS identity, when an operator brings one (a CA-signed certificate, so browsers
/// trust the web door without a warning). Both or neither; without them the server makes and
/// keeps its own self-signed identity in the state folder. Either way clients pin its
/// fingerprint, and the same certificate serves every door.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub key: Option<PathBuf>,
}

/// What a client without a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonymousConfig {
    /// Default `["chat", "read"]`; `[]` makes every service need a token.
    pub allow: Vec<Permission>,
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig {
            allow: vec![Permission::Chat, Permission::Read],
        }
    }
}

/// One user: permissions and the stored credential (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The permissions granted.
    pub allow: Vec<Permission>,
    /// `scram-sha256:SALT:STOREDKEY:SERVERKEY`, written by `ferry user add`.
    pub credential: String,
    /// SSH public keys the user may sign in with, one `authorized_keys` line each (`ferry
    /// user key add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// Why a configuration file cannot be used.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write config {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("user '{name}' already exists in {}; 'ferry user rotate {name}' gives it a new token", path.display())]
    UserExists { path: PathBuf, name: String },
    #[error("there is no user '{name}' in {}", path.display())]
    NoSuchUser { path: PathBuf, name: String },
    #[error(transparent)]
    BadName(#[from] crate::auth::token::TokenError),
}

impl ServerConfig {
    /// Reads and validates `path`. A missing file is the default config when `must_exist` is
    /// false (the implicit path in the state directory) and an error otherwise.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the first problem.
    pub fn load(path: &Path, must_exist: bool) -> Result<ServerConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(ServerConfig::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// The first problem, as one sentence.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| e.message().to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot express.
    ///
    /// # Errors
    /// The first problem, as one sentence.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        self.chat.validate()?;
        self.exec.validate()?;
        self.forward.validate()?;
        self.cluster.validate()?;
        self.audit.validate()?;
        self.metrics.validate()?;
        if let Some(listen) = &self.listen {
            listen
                .parse::<std::net::SocketAddr>()
                .map_err(|_| format!("listen = '{listen}' is not an IP:PORT address"))?;
        }
        if self.anonymous.allow.contains(&Permission::Admin) {
            return Err(
                "[anonymous] allow may not hold 'admin': the server's figures are for signed-in users only".into(),
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(
                "[tls] needs both cert and key (or neither, for the server's own identity)".into(),
            );
        }
        for (name, user) in &self.users {
            validate_user_name(name).map_err(|e| e.to_string())?;
            Credential::from_config_string(&user.credential)
                .map_err(|e| format!("users.{name}: {e}"))?;
            for key in &user.keys {
                AuthorizedKey::parse(key).map_err(|e| format!("users.{name}.keys: {e}"))?;
            }
        }
        Ok(())
    }

    /// The anonymous permission set.
    pub fn anonymous_permissions(&self) -> Permissions {
        self.anonymous.allow.iter().copied().collect()
    }

    /// The users and anonymous rights, as the authenticator keeps them.
    ///
    /// # Errors
    /// A credential that does not parse (validation normally catches it first).
    pub fn accounts(&self) -> Result<Accounts, BadCredential> {
        let users = self
            .users
            .iter()
            .map(|(name, user)| {
                Ok((
                    name.clone(),
                    UserRecord {
                        permissions: user.allow.iter().copied().collect(),
                        credential: Credential::from_config_string(&user.credential)?,
                        // Validation refused any key that does not parse.
                        keys: user
                            .keys
                            .iter()
                            .filter_map(|line| AuthorizedKey::parse(line).ok())
                            .collect(),
                    },
                ))
            })
            .collect::<Result<_, BadCredential>>()?;
        Ok(Accounts {
            users,
            anonymous: self.anonymous_permissions(),
        })
    }

    /// How failed logins are limited.
    pub fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy {
            max_failures: self.limits.auth_max_failures,
            window: self.limits.auth_failure_window(),
            delay: self.limits.auth_failure_delay(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_the_default() {
        assert_eq!(ServerConfig::parse("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = ServerConfig::parse("lisen = '127.0.0.1:1'").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        let err = ServerConfig::parse("[limits]\nhandshake_timeout_ms = 60000").unwrap_err();
        assert!(err.contains("handshake_timeout_ms"), "{err}");
        let err = ServerConfig::parse("[anonymous]\nallow = ['root']").unwrap_err();
        assert!(err.contains("root"), "{err}");
        let err = ServerConfig::parse("[anonymous]\nallow = ['chat', 'admin']").unwrap_err();
        assert!(err.contains("signed-in users only"), "{err}");
        let err = ServerConfig::parse("[users.bob]\nallow = []\ncredential = 'x'").unwrap_err();
        assert!(err.contains("users.bob"), "{err}");
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let text = include_str!("../../examples/server.toml");
        let config = ServerConfig::parse(text).unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:9999"));
    }
}
