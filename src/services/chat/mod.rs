//! The chat service: rooms, direct conversations, and the babyshen bot, for many clients at once.
//!
//! Server side: [`serve_chat`] runs one member's exchange ([`member`]) against the shared
//! [`hub::ChatHub`]. Client side: [`client`] is its peer. The wire messages are `chat_*` in
//! PROTOCOL.md.

pub mod bot;
pub mod client;
pub mod flood;
pub mod hub;
pub mod member;
pub mod names;

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::SessionContext;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Message, Permission};
use member::{Ending, JoinFailure, JoinRequest, Member};

/// Serves a chat exchange opened by `chat_join`. Returns when the member leaves (the session
/// goes on); an error means the connection must close.
///
/// # Errors
/// The connection broke, the member was dropped for not reading, or the server is stopping.
pub async fn serve_chat<S>(
    conn: &mut Connection<S>,
    room: Option<String>,
    with: Option<String>,
    nick: Option<String>,
    history: bool,
    ctx: &SessionContext,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !ctx.identity.permissions.contains(Permission::Chat) {
        let message = "chat needs the 'chat' permission; connect with a token that has it";
        return conn
            .write_message(&Message::error(ErrorCode::PermissionDenied, message))
            .await;
    }
    let Some(nick) = nick else {
        let message = "the first 'chat_join' needs a 'nick'";
        return conn
            .write_message(&Message::error(ErrorCode::BadMessage, message))
            .await;
    };
    let request = JoinRequest {
        room,
        with,
        nick,
        history,
        user: ctx.identity.user.clone(),
    };
    let member = match Member::join(&ctx.chat, conn, request).await {
        Ok(member) => member,
        Err(JoinFailure::Refused(e)) => {
            return conn.write_message(&Message::error(e.code, e.message)).await;
        }
        Err(JoinFailure::Io(e)) => return Err(e),
    };
    // The membership ends when the server stops, or when a reload takes the session's chat
    // permission (or its user) away.
    let closing = async {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => "server shutting down".to_string(),
            reason = ctx.lost(Permission::Chat) => reason,
        }
    };
    let closing = std::pin::pin!(closing);
    match member.run(conn, closing).await {
        Ending::Left => Ok(()),
        Ending::NotReading => Err(io::Error::other("dropped: not reading")),
        Ending::Close(reason) => Err(io::Error::other(reason)),
    }
}
