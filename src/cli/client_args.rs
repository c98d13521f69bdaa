//! The options every client verb takes (`--server`, `--token`, `--user`, ...), resolved into
//! what the library needs: host aliases from FERRY_HOME/config.toml applied, the way of
//! signing in chosen, and the connection made (asking before trusting a new server).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{address, ferry_home, report_new_pin, trust};
use ferry::auth::token::Token;
use ferry::client::hosts::ClientConfig;
use ferry::client::keys::KeyLogin;
use ferry::client::{Client, ClientError, ClientOptions, DEFAULT_SERVER};

/// Bound on connecting plus the handshake, for every client verb.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Options every client verb accepts right after the verb.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server to connect to: HOST[:PORT] (port 9999 when not given), or wss://HOST:PORT for
    /// its web door. Remote path arguments may name it instead, as HOST:PATH. Only `ferry bench
    /// chat` takes several, to spread its members over a cluster.
    #[arg(
        long,
        env = "FERRY_SERVER",
        hide_env_values = true,
        default_value = DEFAULT_SERVER,
        value_name = "HOST[:PORT]",
        action = clap::ArgAction::Append
    )]
    pub server: Vec<String>,
    /// Token from 'ferry user add' (NAME:SECRET); prefer the environment variable.
    #[arg(
        long,
        env = "FERRY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Sign in with an SSH key as this user (when there is no token): through ssh-agent when
    /// SSH_AUTH_SOCK is set, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
    #[arg(long, env = "FERRY_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// Sign in with this private key file (as ssh -i), as --user or the local login name.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Speak plaintext instead of TLS (the server must run with --plaintext too).
    #[arg(long)]
    pub plaintext: bool,
    /// Trust a server met for the first time without asking (pin its identity). Without a
    /// terminal to ask on, a new server is always pinned on first use.
    #[arg(long)]
    pub accept_new: bool,
}

/// The local login name, as ssh takes it: the account of this process's user.
fn login_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

impl ClientArgs {
    /// Resolves the options into what the library needs.
    ///
    /// # Errors
    /// A malformed token or an unusable FERRY_HOME.
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        if self.server.len() > 1 {
            anyhow::bail!(
                "--server is given {} times; only 'ferry bench chat' spreads over several servers",
                self.server.len()
            );
        }
        let mut each = self.options_for_each()?;
        Ok(each.remove(0))
    }

    /// One set of options per `--server` given (at least one). A server named without a port
    /// that is an alias in FERRY_HOME/config.toml is that alias: its server, and what it says
    /// about signing in (its token, or its user and key, in place of FERRY_TOKEN's; `plaintext`
    /// as if `--plaintext` were given). An alias wins over a host name of the same spelling.
    ///
    /// # Errors
    /// A malformed token, an unusable FERRY_HOME or client config.
    pub fn options_for_each(&self) -> anyhow::Result<Vec<ClientOptions>> {
        let token = parse_token(self.token.as_deref()).context("invalid --token / FERRY_TOKEN")?;
        let home = ferry_home()?;
        let config_path = ClientConfig::path(&home);
        let config = ClientConfig::load(&config_path).map_err(anyhow::Error::msg)?;
        let keys = self.key_login();
        let servers: Vec<&str> = match self.server.as_slice() {
            [] => vec![DEFAULT_SERVER],
            many => many.iter().map(String::as_str).collect(),
        };
        servers
            .into_iter()
            .map(|server| {
                let mut options = ClientOptions {
                    server: address::server_address(server),
                    token: token.clone(),
                    plaintext: self.plaintext,
                    home: home.clone(),
                    connect_timeout: CONNECT_TIMEOUT,
                    accept_new: true,
                    keys: keys.clone(),
                };
                let Some(alias) = config.alias(server.trim()) else {
                    return Ok(options);
                };
                let context = || format!("host alias '{server}' in {}", config_path.display());
                options.server = address::server_address(&alias.server);
                options.plaintext |= alias.plaintext.unwrap_or(false);
                let own_token = alias
                    .token()
                    .map_err(anyhow::Error::msg)
                    .with_context(context)?;
                if let Some(own) = own_token {
                    options.token = Some(
                        parse_token(Some(&own))
                            .with_context(context)?
                            .context("an empty token")?,
                    );
                } else if alias.user.is_some() || alias.identity.is_some() {
                    options.token = None;
                    options.keys = Some(KeyLogin {
                        user: alias
                            .user
                            .clone()
                            .or_else(|| self.user.clone())
                            .unwrap_or_else(login_name),
                        identity: alias.identity().or_else(|| self.identity.clone()),
                    });
                }
                Ok(options)
            })
            .collect()
    }

    /// Signing in with a key: when a user is named (`--user`, FERRY_USER) or a key file chosen
    /// (`--identity`, then as the local login name). Without either the session stays
    /// anonymous, as before: ferry, unlike ssh, has anonymous sessions, and a key lying in
    /// ~/.ssh must not turn a public chat into a failed sign-in.
    fn key_login(&self) -> Option<KeyLogin> {
        let user = self.user.clone().filter(|u| !u.is_empty());
        if user.is_none() && self.identity.is_none() {
            return None;
        }
        Some(KeyLogin {
            user: user.unwrap_or_else(login_name),
            identity: self.identity.clone(),
        })
    }

    /// Connects, asking on the terminal before trusting a server met for the first time (as
    /// ssh does); says so when an identity was pinned.
    ///
    /// # Errors
    /// The connection failed, or the user did not trust the server.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut options = self.options()?;
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        options.accept_new = self.accept_new || !terminal;
        let client = match Client::connect(&options).await {
            Err(ClientError::UnknownServer { server, presented }) => {
                if !trust::ask(&server, &presented)? {
                    anyhow::bail!("not connected: the identity of {server} was not trusted");
                }
                let store = ferry::tls::KnownServers::in_home(&options.home);
                store
                    .check_or_pin(&server, &presented)
                    .with_context(|| format!("cannot write {}", store.path().display()))?;
                Client::connect(&options).await?
            }
            Err(e @ ClientError::Connect { .. }) => return Err(self.unknown_alias_hint(e)),
            other => other?,
        };
        report_new_pin(client.info());
        Ok(client)
    }
}

impl ClientArgs {
    /// A server named like an alias (no port) that cannot be reached: the error says it is
    /// no alias either, naming the config file that would hold one.
    fn unknown_alias_hint(&self, e: ClientError) -> anyhow::Error {
        let named = self.server.first().map(|s| s.trim()).unwrap_or_default();
        let plain_name = !named.is_empty() && !named.contains([':', '/', '[']);
        match ferry_home() {
            Ok(home) if plain_name => anyhow::Error::new(e).context(format!(
                "'{named}' is not a host alias in {} (ferry hosts lists them), and as a host name it did not answer",
                ClientConfig::path(&home).display()
            )),
            _ => e.into(),
        }
    }
}

/// A token given as text (empty is none).
fn parse_token(text: Option<&str>) -> anyhow::Result<Option<Token>> {
    Ok(text
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse::<Token>())
        .transpose()?)
}
