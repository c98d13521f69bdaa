//! The chat service: rooms, direct conversations, and the babyshen bot, for many clients at once.
//!
//! Server side: [`serve_chat`] runs one member's exchange ([`member`]) against the shared
//! [`hub::ChatHub`]. Client side: `client::chat` is its peer. The wire messages are `chat_*` in
//! PROTOCOL.md.

pub mod bot;
pub mod cluster;
pub mod engine;
pub mod flood;
pub mod hub;
pub mod member;
pub mod names;
pub mod offset;
pub mod participant;

use std::sync::{Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{CloseReason, RequestError, SessionContext};
use crate::connection::Connection;
use crate::protocol::{ChatJoin, ErrorCode, Permission, Refusal};
use member::{JoinRequest, Member};

/// Locks a std mutex, recovering from a panic elsewhere rather than spreading it (chat's
/// locks guard maps and counters that stay consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves a chat exchange opened by `chat_join`. Returns when the member leaves (the session
/// goes on).
///
/// # Errors
/// The refusal to answer the join with; or the session must end: the connection broke, the
/// member was dropped for not reading, the server is stopping, or chat was taken away.
pub async fn serve_chat<S>(
    conn: &mut Connection<S>,
    join: ChatJoin,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Chat, "chat")?;
    let Some(nick) = join.nick else {
        return Err(Refusal::new(
            ErrorCode::BadMessage,
            "the first 'chat_join' needs a 'nick'",
        )
        .into());
    };
    let request = JoinRequest {
        room: join.room,
        with: join.with,
        nick,
        history: join.history,
        user: ctx.identity.user.clone(),
        since: join.since,
    };
    let member = Member::join(&ctx.chat, conn, request).await?;
    // The membership ends when the server stops, or when a reload takes the session's chat
    // permission (or its user) away.
    let closing = async {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => CloseReason::ShuttingDown,
            reason = ctx.lost(Permission::Chat) => reason,
        }
    };
    let closing = std::pin::pin!(closing);
    member.run(conn, closing).await
}
