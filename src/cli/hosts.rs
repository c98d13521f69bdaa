//! `ferry hosts`: the host aliases of FERRY_HOME/config.toml, one per line, never a token.

use std::process::ExitCode;

use ferry::client::hosts::ClientConfig;
use ferry::safe_text::escape;

/// Lists the aliases: name, server, and how it signs in.
///
/// # Errors
/// An unusable FERRY_HOME or an invalid config.
pub fn run() -> anyhow::Result<ExitCode> {
    let path = ClientConfig::path(&super::ferry_home()?);
    let config = ClientConfig::load(&path).map_err(anyhow::Error::msg)?;
    for (name, alias) in &config.hosts {
        let sign_in = match (
            &alias.token,
            &alias.token_file,
            &alias.user,
            alias.identity(),
        ) {
            (Some(_), _, _, _) => "token".to_string(),
            (None, Some(file), _, _) => format!("token_file {}", file.display()),
            (None, None, Some(user), Some(key)) => format!("key {} as {user}", key.display()),
            (None, None, Some(user), None) => format!("key as {user}"),
            (None, None, None, Some(key)) => format!("key {}", key.display()),
            (None, None, None, None) => "anonymous".to_string(),
        };
        let plaintext = if alias.plaintext == Some(true) {
            " plaintext"
        } else {
            ""
        };
        println!(
            "{}\t{}\t{}{plaintext}",
            escape(name),
            escape(&alias.server),
            escape(&sign_in)
        );
    }
    eprintln!(
        "ferry: {} host alias(es) in {}",
        config.hosts.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
