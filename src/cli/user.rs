//! `ferry user add|list|remove|rotate|key`: the users in a server's config, and their SSH keys. A running server picks
//! the change up by itself (it re-reads the file when it changes, or on SIGHUP).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use anyhow::Context;
use ferry::config::{
    ServerConfig, add_keys, add_user_with_keys, remove_keys, remove_user, rotate_user, user_keys,
};
use ferry::protocol::Permissions;

/// User management verbs.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; prints only the new token on stdout (the config keeps a hash).
    Add(AddArgs),
    /// List the users and their permissions (never a token).
    List(ConfigArg),
    /// Remove a user; its open sessions end at their next request.
    Remove(NameArgs),
    /// Give a user a new token (printed once); the old one stops working at once.
    Rotate(NameArgs),
    /// A user's SSH keys: add, list, remove.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `ferry user key ...`: the SSH public keys a user signs in with.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add keys to a user (`--key LINE` or `--key-file FILE.pub`, repeatable).
    Add(KeyAddArgs),
    /// List a user's keys: fingerprint, type and comment.
    List(NameArgs),
    /// Remove a user's key named by fingerprint (SHA256:...), comment, or the key itself;
    /// sessions signed in with it end.
    Remove(KeyRemoveArgs),
}

#[derive(Debug, Args)]
pub struct KeyAddArgs {
    /// The user's name.
    pub name: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The user's name.
    pub name: String,
    /// The key's fingerprint (as `ferry user key list` shows it), its comment, or the key.
    pub key: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// SSH public keys given on the command line or in `.pub` files.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// An SSH public key, as a `.pub` file holds it ("ssh-ed25519 AAAA... alice@laptop").
    #[arg(long = "key", value_name = "LINE")]
    pub lines: Vec<String>,
    /// A file of SSH public keys (one per line, as ~/.ssh/id_ed25519.pub or authorized_keys).
    #[arg(long = "key-file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl KeyArgs {
    /// Every key given, the files' lines read (blank lines and `#` comments skipped).
    fn lines(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = self.lines.clone();
        for file in &self.files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            lines.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        Ok(lines)
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.files.is_empty()
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, '.', '_', '-').
    pub name: String,
    /// Comma-separated permissions: chat, read, write, exec, admin (sees the server's live
    /// figures on the web page).
    #[arg(long, value_name = "LIST", value_parser = parse_permissions)]
    pub allow: Permissions,
    /// SSH keys the user signs in with; with keys, no token is printed (`ferry user rotate`
    /// makes one to show).
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The user's name.
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Which config file, found as `ferry serve` finds it.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The server's state directory, as given to `ferry serve --state` [default:
    /// FERRY_HOME/server]; its config.toml is the one edited.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Config file [default: STATE/config.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(self) -> anyhow::Result<PathBuf> {
        Ok(match (self.config, self.state) {
            (Some(path), _) => path,
            (None, Some(state)) => state.join("config.toml"),
            (None, None) => super::default_state_dir()?.join("config.toml"),
        })
    }
}

fn parse_permissions(list: &str) -> Result<Permissions, String> {
    Permissions::parse_list(list).map_err(|e| e.to_string())
}

pub fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add(args) => {
            let path = args.config.path()?;
            let keys = args.keys.lines()?;
            if !args.keys.is_empty() && keys.is_empty() {
                anyhow::bail!("the key files given hold no key");
            }
            let token = add_user_with_keys(&path, &args.name, args.allow, &keys)?;
            if keys.is_empty() {
                println!("{token}");
                eprintln!(
                    "ferry: added user '{}' ({}) to {}; the token above is shown only once",
                    args.name,
                    args.allow,
                    path.display()
                );
            } else {
                eprintln!(
                    "ferry: added user '{}' ({}) with {} key(s) to {}; it signs in with --user {} (no token was shown: 'ferry user rotate {}' makes one)",
                    args.name,
                    args.allow,
                    keys.len(),
                    path.display(),
                    args.name,
                    args.name
                );
            }
        }
        UserCommand::List(config) => {
            let path = config.path()?;
            let config = ServerConfig::load(&path, false)?;
            for (name, user) in &config.users {
                let allow: Permissions = user.allow.iter().copied().collect();
                println!("{name}\t{allow}");
            }
            eprintln!(
                "ferry: {} user(s) in {}; anonymous may {}",
                config.users.len(),
                path.display(),
                config.anonymous_permissions()
            );
        }
        UserCommand::Remove(args) => {
            let path = args.config.path()?;
            remove_user(&path, &args.name)?;
            eprintln!(
                "ferry: removed user '{}' from {}; a running server ends its sessions",
                args.name,
                path.display()
            );
        }
        UserCommand::Rotate(args) => {
            let path = args.config.path()?;
            let token = rotate_user(&path, &args.name)?;
            println!("{token}");
            eprintln!(
                "ferry: new token for '{}' in {}; the old one no longer works, and sessions opened with it end",
                args.name,
                path.display()
            );
        }
        UserCommand::Key(command) => run_key(command)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn run_key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Add(args) => {
            let path = args.config.path()?;
            let keys = args.keys.lines()?;
            if keys.is_empty() {
                anyhow::bail!("no key given: --key LINE or --key-file FILE.pub");
            }
            add_keys(&path, &args.name, &keys)?;
            eprintln!(
                "ferry: user '{}' in {} signs in with {} more key(s); a running server takes them at once",
                args.name,
                path.display(),
                keys.len()
            );
        }
        KeyCommand::List(args) => {
            let path = args.config.path()?;
            let keys = user_keys(&path, &args.name)?;
            for key in &keys {
                let kind = key.wire().split(' ').next().unwrap_or_default().to_string();
                println!(
                    "{}\t{kind}\t{}",
                    key.fingerprint(),
                    ferry::safe_text::escape(key.comment())
                );
            }
            eprintln!(
                "ferry: {} key(s) for '{}' in {}",
                keys.len(),
                args.name,
                path.display()
            );
        }
        KeyCommand::Remove(args) => {
            let path = args.config.path()?;
            let removed = remove_keys(&path, &args.name, &args.key)?;
            eprintln!(
                "ferry: removed {} key(s) from '{}' in {}; sessions signed in with them end",
                removed.len(),
                args.name,
                path.display()
            );
        }
    }
    Ok(())
}
