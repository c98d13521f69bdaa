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
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            enabled: true,
            kill_grace_ms: 500,
            path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        }
    }
}

impl ExecConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// A grace period over 10 s (so a disconnect always ends everything promptly).
    pub fn validate(&self) -> Result<(), String> {
        if self.kill_grace_ms > 10_000 {
            return Err("exec.kill_grace_ms must be at most 10000".into());
        }
        Ok(())
    }

    /// `kill_grace_ms` as a duration.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }
}
