//! The echo service: `ping` → `pong`. Its client peer is `Client::ping`.

use tokio::io::{AsyncRead, AsyncWrite};

use super::RequestError;
use crate::connection::Connection;
use crate::protocol::{Message, Ping, Pong};

/// Answers one `ping`.
///
/// # Errors
/// The reply could not be written.
pub async fn serve_ping<S>(conn: &mut Connection<S>, ping: Ping) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_message(&Message::Pong(Pong { seq: ping.seq }))
        .await?;
    Ok(())
}
