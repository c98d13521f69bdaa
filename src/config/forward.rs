//! Port forwarding settings, under `[forward]`: where streams may go, where `-R` may listen,
//! and how many streams a session and a user may hold.

use serde::{Deserialize, Serialize};

use crate::forward::policy::Rules;

/// Where forwards may go (nothing, by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Destinations streams may connect to: `HOST:PORTS` rules (see `forward::policy`), e.g.
    /// `["127.0.0.1:*", "db.internal:5432"]`. Default: none.
    pub connect: Vec<String>,
    /// Addresses `-R` may listen on: `IP:PORTS` rules, e.g. `["127.0.0.1:8000-8100"]`.
    /// Default: none.
    pub listen: Vec<String>,
    /// Streams open at once on one session. Default 64.
    pub max_streams_per_session: u32,
    /// Streams open at once for one user, over all sessions. Default 256.
    pub max_streams_per_user: u32,
    /// Listeners one session may hold (`-R`). Default 8.
    pub max_listeners_per_session: u32,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            connect: Vec::new(),
            listen: Vec::new(),
            max_streams_per_session: 64,
            max_streams_per_user: 256,
            max_listeners_per_session: 8,
        }
    }
}

impl ForwardConfig {
    /// Checks the rules and limits.
    ///
    /// # Errors
    /// A rule that does not parse, or a zero limit.
    pub fn validate(&self) -> Result<(), String> {
        Rules::parse(&self.connect).map_err(|e| format!("forward.connect: {e}"))?;
        Rules::parse(&self.listen).map_err(|e| format!("forward.listen: {e}"))?;
        if self.max_streams_per_session == 0 || self.max_streams_per_user == 0 {
            return Err(
                "forward.max_streams_per_session and max_streams_per_user must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}
