//! `ferry user add|list|remove|rotate`: the users in a server's config. A running server picks
//! the change up by itself (it re-reads the file when it changes, or on SIGHUP).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use ferry::config::{ServerConfig, add_user, remove_user, rotate_user};
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
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, '.', '_', '-').
    pub name: String,
    /// Comma-separated permissions: chat, read, write, exec, admin (sees the server's live
    /// figures on the web page).
    #[arg(long, value_name = "LIST", value_parser = parse_permissions)]
    pub allow: Permissions,
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
            let token = add_user(&path, &args.name, args.allow)?;
            println!("{token}");
            eprintln!(
                "ferry: added user '{}' ({}) to {}; the token above is shown only once",
                args.name,
                args.allow,
                path.display()
            );
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
    }
    Ok(ExitCode::SUCCESS)
}
