//! Host aliases: the client's own config (`FERRY_HOME/config.toml`) names servers once, as
//! ssh's `Host` blocks do, so `ferry ls box:` and `ferry exec --server box` need nothing else.
//!
//! ```toml
//! [hosts.box]
//! server = "box.example.net:9999"
//! user = "alice"                  # signs in with a key as alice
//! identity = "~/.ssh/id_ed25519"  # that key (else the agent, else ~/.ssh/id_*)
//! # token = "alice:..."  or  token_file = "~/.config/ferry/box.token"
//! plaintext = false
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The client's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Aliases by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostAlias>,
}

/// One alias: where the server is and how to sign in there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAlias {
    /// `HOST[:PORT]`, or a web door (`wss://HOST:PORT`).
    pub server: String,
    /// The user to sign in as with a key.
    #[serde(default)]
    pub user: Option<String>,
    /// The private key file (`~` is the home directory).
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// The token itself (prefer `token_file`: the config may be shared or backed up).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (`~` is the home directory).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Speak plaintext (the server must run with `--plaintext` too).
    #[serde(default)]
    pub plaintext: Option<bool>,
}

impl ClientConfig {
    /// The file under FERRY_HOME.
    pub fn path(home: &Path) -> PathBuf {
        home.join("config.toml")
    }

    /// Reads the config at `path`; a missing file has no aliases.
    ///
    /// # Errors
    /// An unreadable or invalid file, as one sentence naming it.
    pub fn load(path: &Path) -> Result<ClientConfig, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let config: ClientConfig = toml::from_str(&text)
            .map_err(|e| format!("invalid {}: {}", path.display(), e.message()))?;
        for (name, alias) in &config.hosts {
            if name.is_empty() || name.contains([':', '/', '[', ']']) {
                return Err(format!(
                    "invalid {}: [hosts.{name}]: an alias may not hold ':', '/' or brackets",
                    path.display()
                ));
            }
            if alias.token.is_some() && alias.token_file.is_some() {
                return Err(format!(
                    "invalid {}: [hosts.{name}] has both token and token_file",
                    path.display()
                ));
            }
        }
        Ok(config)
    }

    /// The alias `name`, if there is one.
    pub fn alias(&self, name: &str) -> Option<&HostAlias> {
        self.hosts.get(name)
    }
}

impl HostAlias {
    /// The token the alias gives, read from `token_file` when it names one.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn token(&self) -> Result<Option<String>, String> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        match &self.token_file {
            Some(file) => {
                let file = expand_home(file);
                std::fs::read_to_string(&file)
                    .map(|text| Some(text.trim().to_string()))
                    .map_err(|e| format!("cannot read token_file {}: {e}", file.display()))
            }
            None => Ok(None),
        }
    }

    /// The identity file, `~` expanded.
    pub fn identity(&self) -> Option<PathBuf> {
        self.identity.as_deref().map(expand_home)
    }
}

/// `~/x` as `$HOME/x`.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_and_bad_ones_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(ClientConfig::load(&path).unwrap().hosts.is_empty());
        std::fs::write(
            &path,
            "[hosts.box]\nserver = \"127.0.0.1:7000\"\nuser = \"alice\"\nplaintext = true\n",
        )
        .unwrap();
        let config = ClientConfig::load(&path).unwrap();
        let alias = config.alias("box").unwrap();
        assert_eq!(alias.server, "127.0.0.1:7000");
        assert_eq!(alias.user.as_deref(), Some("alice"));
        std::fs::write(&path, "[hosts.box]\nserver = \"x\"\ncolour = \"red\"\n").unwrap();
        let err = ClientConfig::load(&path).unwrap_err();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("colour"),
            "{err}"
        );
    }
}
