//! The requests a member sends inside its chat exchange — say, direct, who, nick, join,
//! leave, ping — each answered here with its id (the exchange is its own small dispatcher).

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::super::hub::{Confirmed, room_info};
use super::place::{Destination, Place, enter};
use super::{Ending, Member};
use crate::connection::Connection;
use crate::protocol::{
    ChatAck, ChatDirect, ChatJoin, ChatList, ChatMembers, ChatNick, ChatRooms, ChatSay, ChatTopic,
    ChatWho, ErrorCode, Message, Ping, Pong, Refusal,
};

impl Member<'_> {
    pub(super) async fn request<S>(
        &mut self,
        conn: &mut Connection<S>,
        request: Message,
    ) -> io::Result<Option<Ending>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.flood.take(Instant::now());
        let reply = match request {
            Message::ChatSay(ChatSay { id, text, action }) => self.say(id, &text, action),
            Message::ChatDirect(ChatDirect { id, to, text }) => self.direct(id, &to, &text, false),
            Message::ChatList(ChatList { id }) => match self.hub.list_rooms().await {
                Ok(rooms) => Ok(Some(Message::ChatRooms(ChatRooms { id, rooms }))),
                Err(refusal) => Err(refusal.answering(Some(id))),
            },
            Message::ChatTopic(ChatTopic { id, topic }) => self.topic(id, topic),
            Message::ChatWho(ChatWho { id }) => Ok(Some(match &self.place {
                Place::Room { room, .. } => Message::ChatMembers(ChatMembers {
                    id,
                    room: room.name.clone(),
                    nicks: room.nicks(),
                }),
                Place::Direct { with } => Message::ChatMembers(ChatMembers {
                    id,
                    room: String::new(),
                    nicks: vec![self.nick.clone(), with.clone()],
                }),
                Place::Nowhere => Message::ChatMembers(ChatMembers {
                    id,
                    room: String::new(),
                    nicks: vec![self.nick.clone()],
                }),
            })),
            Message::ChatNick(ChatNick { id, nick }) => self
                .rename(&nick)
                .await
                .map(|()| Some(Message::ChatAck(ChatAck { id })))
                .map_err(|e| e.answering(Some(id))),
            Message::ChatJoin(join) => return self.rejoin(conn, join).await.map(|()| None),
            Message::ChatLeave => {
                conn.write_message(&Message::ChatLeft).await?;
                return Ok(Some(Ok(())));
            }
            Message::Ping(Ping { seq }) => Ok(Some(Message::Pong(Pong { seq }))),
            other => Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                format!("'{}' is not a chat request", other.kind()),
            )),
        };
        match reply {
            Ok(Some(message)) => conn.write_message(&message).await?,
            Ok(None) => {}
            Err(refusal) => conn.write_message(&Message::Error(refusal)).await?,
        }
        Ok(None)
    }

    fn check_length(&self, id: u64, text: &str) -> Result<(), Refusal> {
        let max = self.hub.config.max_message_bytes;
        if text.len() > max {
            return Err(Refusal::new(
                ErrorCode::TooLong,
                format!(
                    "message of {} bytes refused: the limit is {max} bytes",
                    text.len()
                ),
            )
            .answering(Some(id)));
        }
        Ok(())
    }

    fn say(&mut self, id: u64, text: &str, action: bool) -> Result<Option<Message>, Refusal> {
        self.check_length(id, text)?;
        match &self.place {
            Place::Room { room, .. } => {
                let confirmed = self
                    .hub
                    .say(room, &self.participant, &self.nick, text, action, Some(id))
                    .map_err(|e| e.answering(Some(id)))?;
                Ok(self.acked_now(confirmed, id))
            }
            Place::Direct { with } => {
                let with = with.clone();
                self.direct(id, &with, text, action)
            }
            Place::Nowhere => Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                "not in a room or conversation",
            )
            .answering(Some(id))),
        }
    }

    fn direct(
        &mut self,
        id: u64,
        to: &str,
        text: &str,
        action: bool,
    ) -> Result<Option<Message>, Refusal> {
        self.check_length(id, text)?;
        self.hub
            .direct(&self.participant, &self.nick, to, text, action, id)
            .map_err(|e| e.answering(Some(id)))?;
        // The ack comes through the inbox once the recipients took the message.
        Ok(None)
    }

    /// Sets the room's topic (then `chat_ack`), or with none answers it (`chat_rooms`).
    fn topic(&mut self, id: u64, topic: Option<String>) -> Result<Option<Message>, Refusal> {
        let Place::Room { room, .. } = &self.place else {
            return Err(
                Refusal::new(ErrorCode::UnexpectedMessage, "only a room has a topic")
                    .answering(Some(id)),
            );
        };
        match topic {
            None => Ok(Some(Message::ChatRooms(ChatRooms {
                id,
                rooms: vec![room_info(room)],
            }))),
            Some(topic) => {
                self.check_length(id, &topic)?;
                let confirmed = self
                    .hub
                    .set_topic(room, &self.participant, &self.nick, topic.trim(), Some(id))
                    .map_err(|e| e.answering(Some(id)))?;
                Ok(self.acked_now(confirmed, id))
            }
        }
    }

    async fn rename(&mut self, new: &str) -> Result<(), Refusal> {
        let room = match &self.place {
            Place::Room { room, .. } => Some(Arc::clone(room)),
            Place::Direct { .. } | Place::Nowhere => None,
        };
        self.hub
            .rename(
                &self.participant,
                room.as_ref(),
                &self.nick,
                new,
                self.user.as_deref(),
            )
            .await?;
        self.nick = new.to_string();
        Ok(())
    }

    async fn rejoin<S>(&mut self, conn: &mut Connection<S>, join: ChatJoin) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if let Some(nick) = join.nick.filter(|n| *n != self.nick)
            && let Err(refusal) = self.rename(&nick).await
        {
            return conn.write_message(&Message::Error(refusal)).await;
        }
        let to = Destination {
            room: join.room,
            with: join.with,
            since: join.since,
        };
        match enter(self.hub, &self.participant, &self.nick, to).await {
            Ok((place, entered)) => {
                self.leave(false);
                self.place = place;
                self.announce(conn, entered, join.history).await
            }
            Err(refusal) => conn.write_message(&Message::Error(refusal)).await,
        }
    }
}

impl Member<'_> {
    /// The ack to answer now, unless a cluster's Redis confirms it later (through the inbox).
    fn acked_now(&mut self, confirmed: Confirmed, id: u64) -> Option<Message> {
        match confirmed {
            Confirmed::Now => Some(Message::ChatAck(ChatAck { id })),
            Confirmed::Later => {
                self.unconfirmed += 1;
                None
            }
        }
    }
}
