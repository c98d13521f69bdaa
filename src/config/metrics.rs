//! The metrics endpoint, under `[metrics]`: Prometheus text at `http://LISTEN/metrics`.
//! Closed by default; loopback unless `public = true` says otherwise, because the endpoint has
//! no authentication of its own.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Settings of the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on, e.g. `127.0.0.1:9100`; `--metrics` overrides it.
    /// Default: closed.
    pub listen: Option<String>,
    /// Allow a non-loopback `listen` (anyone who reaches it reads the figures). Default false.
    pub public: bool,
}

impl MetricsConfig {
    /// Checks the address.
    ///
    /// # Errors
    /// The first problem, as one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(listen) = &self.listen {
            let addr: SocketAddr = listen
                .parse()
                .map_err(|_| format!("[metrics] listen = '{listen}' is not an IP:PORT address"))?;
            check_metrics_address(addr, self.public)?;
        }
        Ok(())
    }
}

/// The metrics endpoint has no authentication: it opens beyond loopback only when the operator
/// says so.
///
/// # Errors
/// The refusal, naming the setting that allows it.
pub fn check_metrics_address(addr: SocketAddr, public: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || public {
        Ok(())
    } else {
        Err(format!(
            "the metrics endpoint has no authentication, so it listens on loopback only; to serve it on {addr}, set public = true under [metrics]"
        ))
    }
}
