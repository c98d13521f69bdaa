//! Which door a session came through: the audit log and the metrics name it, the services
//! never look at it.

use serde::{Deserialize, Serialize};

/// The door a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// ferry's own listener, TLS or plaintext.
    Tcp,
    /// The web page's WebSocket `/ws`.
    Websocket,
    /// The IRC door.
    Irc,
}

impl Transport {
    /// Every transport, for metrics that show each one even at zero.
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::Websocket, Transport::Irc];

    /// Its name in logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Websocket => "websocket",
            Transport::Irc => "irc",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
