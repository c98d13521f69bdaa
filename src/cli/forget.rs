//! `ferry forget HOST:PORT`: drops a pinned server identity.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use ferry::tls::KnownServers;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The server whose pin to remove, exactly as given to --server.
    #[arg(value_name = "HOST:PORT")]
    pub server: String,
}

pub fn run(args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let store = KnownServers::in_home(&super::ferry_home()?);
    let removed = store
        .forget(&args.server)
        .with_context(|| format!("cannot update {}", store.path().display()))?;
    if removed {
        eprintln!("ferry: forgot the pinned identity of {}", args.server);
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "no pinned identity for {} in {}",
            args.server,
            store.path().display()
        )
    }
}
