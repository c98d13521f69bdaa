//! The client peer of the chat service: join, then send and receive independently (the two
//! halves can live in different tasks).

use crate::protocol::{ChatDirect, ChatJoin, ChatJoined, ChatNick, ChatSay, ChatWho};
use tokio::io::{ReadHalf, WriteHalf};

use super::ClientError;
use super::error::unexpected;
use crate::connection::{BoxedStream, Connection, FrameReader, FrameWriter};
use crate::protocol::Message;

/// Where to chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTarget {
    /// A room, by name.
    Room(String),
    /// A direct conversation with one nick.
    With(String),
}

/// The sending half: every request gets a fresh id, answered by `chat_ack` or an `error` with
/// that id (or, for `/who`, `chat_members`).
pub struct ChatSender {
    writer: FrameWriter<WriteHalf<BoxedStream>>,
    next_id: u64,
}

/// The receiving half.
pub struct ChatReceiver {
    reader: FrameReader<ReadHalf<BoxedStream>>,
}

/// Joins `target` as `nick` on an open session.
///
/// # Errors
/// The server's refusal (nick in use, invalid name, no permission) or a broken connection.
pub async fn join(
    mut conn: Connection<BoxedStream>,
    target: ChatTarget,
    nick: &str,
    history: bool,
) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
    let (room, with) = match target {
        ChatTarget::Room(room) => (Some(room), None),
        ChatTarget::With(with) => (None, Some(with)),
    };
    conn.write_message(&Message::ChatJoin(ChatJoin {
        room,
        with,
        nick: Some(nick.to_string()),
        history,
    }))
    .await?;
    let joined = match conn.read_message().await? {
        Message::ChatJoined(joined) => joined,
        other => return Err(unexpected(other)),
    };
    let (reader, writer) = conn.split();
    Ok((
        ChatSender { writer, next_id: 1 },
        ChatReceiver { reader },
        joined,
    ))
}

impl ChatSender {
    async fn send(&mut self, make: impl FnOnce(u64) -> Message) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer.write_message(&make(id)).await?;
        Ok(id)
    }

    /// A line for the room, or for the partner of a direct conversation.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn say(&mut self, text: &str) -> Result<u64, ClientError> {
        let text = text.to_string();
        self.send(|id| Message::ChatSay(ChatSay { id, text })).await
    }

    /// A direct message to `to`.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn direct(&mut self, to: &str, text: &str) -> Result<u64, ClientError> {
        let (to, text) = (to.to_string(), text.to_string());
        self.send(|id| Message::ChatDirect(ChatDirect { id, to, text }))
            .await
    }

    /// Asks who is in the room.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn who(&mut self) -> Result<u64, ClientError> {
        self.send(|id| Message::ChatWho(ChatWho { id })).await
    }

    /// Changes nick.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn nick(&mut self, nick: &str) -> Result<u64, ClientError> {
        let nick = nick.to_string();
        self.send(|id| Message::ChatNick(ChatNick { id, nick }))
            .await
    }

    /// Moves to another room (answered by `chat_joined` or an `error`).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn join(&mut self, room: &str) -> Result<(), ClientError> {
        self.writer
            .write_message(&Message::ChatJoin(ChatJoin {
                room: Some(room.to_string()),
                with: None,
                nick: None,
                history: true,
            }))
            .await?;
        Ok(())
    }

    /// Ends the exchange (answered by `chat_left`), then closes the connection.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        self.writer.write_message(&Message::ChatLeave).await?;
        Ok(())
    }

    /// Closes the sending direction.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.writer.shutdown().await?;
        Ok(())
    }
}

impl ChatReceiver {
    /// The next message from the server; `None` when it closed the connection cleanly.
    ///
    /// # Errors
    /// A broken connection or invalid frames.
    pub async fn next(&mut self) -> Result<Option<Message>, ClientError> {
        match self.reader.read_message().await {
            Ok(message) => Ok(Some(message)),
            Err(crate::connection::ConnectionError::Closed) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The next frame, undecoded, for a reader that only looks at a few fields of a few
    /// messages (a load generator must spend less per line than the server it measures);
    /// `None` when the server closed the connection cleanly.
    ///
    /// # Errors
    /// A broken connection or an invalid frame.
    pub async fn next_frame(&mut self) -> Result<Option<crate::protocol::Frame>, ClientError> {
        Ok(self.reader.read_frame().await?)
    }
}
