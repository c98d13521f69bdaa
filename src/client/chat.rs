//! The client peer of the chat service: join, then send and receive independently (the two
//! halves can live in different tasks).

use tokio::io::{ReadHalf, WriteHalf};

use super::ClientError;
use super::error::unexpected;
use crate::connection::{BoxedStream, Connection, FrameReader, FrameWriter};
use crate::protocol::{
    ChatDirect, ChatJoin, ChatJoined, ChatList, ChatNick, ChatSay, ChatTopic, ChatWho, ErrorCode,
    Message,
};

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
    conn: Connection<BoxedStream>,
    target: ChatTarget,
    nick: &str,
    history: bool,
) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
    join_as(conn, target, nick, false, history, None).await
}

/// Joins room `room` as `nick` after a reconnection, asking for every line after `since` (the
/// `offset` of the last line seen, on a server in a cluster). `chat_joined`'s `recovered` says
/// whether they all followed.
///
/// # Errors
/// As [`join`].
pub async fn join_since(
    conn: Connection<BoxedStream>,
    room: &str,
    nick: &str,
    since: &str,
) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
    let target = ChatTarget::Room(room.to_string());
    join_as(conn, target, nick, false, true, Some(since.to_string())).await
}

/// As [`join`], but a nick someone else uses is not an error: `nick2`, `nick3`... are tried
/// (up to `nick99`), as for a default nick nobody chose on purpose.
///
/// # Errors
/// As [`join`].
pub async fn join_picking_nick(
    conn: Connection<BoxedStream>,
    target: ChatTarget,
    nick: &str,
    history: bool,
) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
    join_as(conn, target, nick, true, history, None).await
}

async fn join_as(
    mut conn: Connection<BoxedStream>,
    target: ChatTarget,
    nick: &str,
    pick_free: bool,
    history: bool,
    since: Option<String>,
) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
    let (room, with) = match target {
        ChatTarget::Room(room) => (Some(room), None),
        ChatTarget::With(with) => (None, Some(with)),
    };
    let mut suffix = 1;
    let joined = loop {
        let trying = if suffix == 1 {
            nick.to_string()
        } else {
            format!("{nick}{suffix}")
        };
        conn.write_message(&Message::ChatJoin(ChatJoin {
            room: room.clone(),
            with: with.clone(),
            nick: Some(trying),
            history,
            since: since.clone(),
        }))
        .await?;
        match conn.read_message().await? {
            Message::ChatJoined(joined) => break joined,
            Message::Error(refusal)
                if pick_free && refusal.code == ErrorCode::NickInUse && suffix < 99 =>
            {
                suffix += 1;
            }
            other => return Err(unexpected(other)),
        }
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
        self.send(|id| {
            Message::ChatSay(ChatSay {
                id,
                text,
                action: false,
            })
        })
        .await
    }

    /// An action (`/me waves`), shown to others as `* nick waves`.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn act(&mut self, text: &str) -> Result<u64, ClientError> {
        let text = text.to_string();
        self.send(|id| {
            Message::ChatSay(ChatSay {
                id,
                text,
                action: true,
            })
        })
        .await
    }

    /// Asks which rooms exist (answered by `chat_rooms`).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn list(&mut self) -> Result<u64, ClientError> {
        self.send(|id| Message::ChatList(ChatList { id })).await
    }

    /// Sets the room's topic, or with `None` asks for it (answered by `chat_rooms`).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn topic(&mut self, topic: Option<&str>) -> Result<u64, ClientError> {
        let topic = topic.map(str::to_string);
        self.send(|id| Message::ChatTopic(ChatTopic { id, topic }))
            .await
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
                since: None,
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
