//! The echo service: `ping` → `pong`. Both ends live here: [`serve_ping`] on the server and
//! [`ping`] as its client peer.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{Connection, ConnectionError};
use crate::protocol::Message;

/// Server side: answers one `ping`.
///
/// # Errors
/// The reply could not be written.
pub async fn serve_ping<S>(conn: &mut Connection<S>, seq: u64) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Pong { seq }).await
}

/// Why a ping got no matching pong.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server answered with something else (an error, a goodbye, a wrong seq).
    #[error("unexpected reply to ping")]
    Unexpected(Message),
}

/// Client side: sends `ping seq` and returns the round-trip time of its `pong`.
///
/// # Errors
/// [`PingError::Unexpected`] carries what the server said instead.
pub async fn ping<S>(conn: &mut Connection<S>, seq: u64) -> Result<Duration, PingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    conn.write_message(&Message::Ping { seq }).await?;
    match conn.read_message().await? {
        Message::Pong { seq: got } if got == seq => Ok(start.elapsed()),
        other => Err(PingError::Unexpected(other)),
    }
}
