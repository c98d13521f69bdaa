//! `ferry user add`: creates a user and prints only its token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::add_user;
use crate::protocol::Permissions;

/// User management verbs.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; prints only the new token on stdout (the config keeps a hash).
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, '.', '_', '-').
    pub name: String,
    /// Comma-separated permissions: chat, read, write, exec.
    #[arg(long, value_name = "LIST", value_parser = parse_permissions)]
    pub allow: Permissions,
    /// Config file to create or extend (default FERRY_HOME/server/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_permissions(list: &str) -> Result<Permissions, String> {
    Permissions::parse_list(list).map_err(|e| e.to_string())
}

pub fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add(args) => {
            let path = match args.config {
                Some(path) => path,
                None => super::default_state_dir()?.join("config.toml"),
            };
            let token = add_user(&path, &args.name, args.allow)?;
            println!("{token}");
            eprintln!(
                "ferry: added user '{}' ({}) to {}; the token above is shown only once",
                args.name,
                args.allow,
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
