//! Remote execution settings, under `[exec]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How commands are run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// `false` switches remote execution off for everyone. Default true (users still need the
    /// `exec` permission).
    pub enabled: bool,
    /// After SIGHUP/SIGTERM, how long a process group gets before SIGKILL, in ms. Default 500.
    pub kill_grace_ms: u64,
    /// `PATH` given to commands (they get no other variable from the server's environment).
    pub path: String,
    /// The login shell `ferry shell` (and `exec` with `shell`) runs. Default: the server
    /// account's own, from the password database, as sshd does. Set it when the server runs as
    /// a service account whose shell is `nologin`, or to keep the account's rc files out.
    pub shell: Option<String>,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            enabled: true,
            kill_grace_ms: 500,
            path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            shell: None,
        }
    }
}

impl ExecConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// A grace period over 10 s (so a disconnect always ends everything promptly); a shell
    /// that is not an absolute path (it is run without a search, whatever `path` says).
    pub fn validate(&self) -> Result<(), String> {
        if self.kill_grace_ms > 10_000 {
            return Err("exec.kill_grace_ms must be at most 10000".into());
        }
        if let Some(shell) = &self.shell
            && !shell.starts_with('/')
        {
            return Err(format!(
                "exec.shell must be an absolute path, not {}",
                crate::safe_text::escape(shell)
            ));
        }
        Ok(())
    }

    /// `kill_grace_ms` as a duration.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }
}
