//! One member's chat exchange on the server: reads its requests (under the flood limit) and
//! writes what reaches it (room events, direct messages, acks), until it leaves, vanishes, is
//! dropped for not reading, or the server shuts down.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::flood::FloodGate;
use super::hub::{ChatError, ChatHub, Delivery, Participant, Room, RoomEvent};
use super::names;
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message};

/// Room events gathered into one write at most, so a busy room costs one write per batch.
const WRITE_BATCH: usize = 64;

/// Where a member is: in a room, or in a direct conversation.
enum Place {
    Room {
        room: Arc<Room>,
        events: broadcast::Receiver<Arc<RoomEvent>>,
    },
    Direct {
        with: String,
    },
    /// Between leaving one place and entering the next, and after the end.
    Nowhere,
}

/// How the exchange ended.
pub enum Ending {
    /// The member sent `chat_leave`: the session goes on.
    Left,
    /// The member stopped reading (a full inbox, a lagging ring, a stalled write): dropped.
    NotReading,
    /// The connection must close, for the given reason.
    Close(String),
}

/// The member's state.
pub struct Member<'a> {
    hub: &'a ChatHub,
    participant: Participant,
    inbox: mpsc::Receiver<Delivery>,
    nick: String,
    /// The session's user (`None` when anonymous): the names reserved for it.
    user: Option<String>,
    place: Place,
    flood: FloodGate,
}

/// What a join request asked for.
pub struct JoinRequest {
    pub room: Option<String>,
    pub with: Option<String>,
    pub nick: String,
    pub history: bool,
    /// The session's user, `None` when anonymous.
    pub user: Option<String>,
}

impl<'a> Member<'a> {
    /// Registers the member and joins its first place, answering `chat_joined` (and the room's
    /// history) on `conn`.
    ///
    /// # Errors
    /// The refusal to send back as an `error`; nothing is left registered.
    pub async fn join<S>(
        hub: &'a ChatHub,
        conn: &mut Connection<S>,
        request: JoinRequest,
    ) -> Result<Member<'a>, JoinFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (participant, inbox) = hub.register(&request.nick, request.user.as_deref())?;
        let place = match enter(hub, &participant, &request.nick, request.room, request.with) {
            Ok(place) => place,
            Err(e) => {
                hub.unregister(&participant, &request.nick);
                return Err(e.into());
            }
        };
        let mut member = Member {
            hub,
            participant,
            inbox,
            nick: request.nick,
            user: request.user,
            place: place.0,
            flood: FloodGate::new(
                hub.config.flood_burst,
                hub.config.flood_per_second,
                Instant::now(),
            ),
        };
        member.announce(conn, place.1, request.history).await?;
        Ok(member)
    }

    async fn announce<S>(
        &mut self,
        conn: &mut Connection<S>,
        joined: Entered,
        with_history: bool,
    ) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (room, with) = match &self.place {
            Place::Room { room, .. } => (Some(room.name.clone()), None),
            Place::Direct { with } => (None, Some(with.clone())),
            Place::Nowhere => (None, None),
        };
        conn.write_message(&Message::ChatJoined {
            room,
            with,
            nick: self.nick.clone(),
            members: joined.members,
        })
        .await?;
        if with_history {
            for frame in &joined.history {
                conn.write_encoded(frame).await?;
            }
            conn.flush().await?;
        }
        Ok(())
    }

    /// Runs the exchange until it ends; leaves the room and the directory on every path.
    pub async fn run<S>(
        mut self,
        conn: &mut Connection<S>,
        mut closing: std::pin::Pin<&mut (dyn std::future::Future<Output = String> + Send)>,
    ) -> Ending
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let send_timeout = self.hub.config.send_timeout();
        let ending = loop {
            let now = Instant::now();
            let read_at = self.flood.ready_at(now);
            let step = tokio::select! {
                biased;
                reason = closing.as_mut() => {
                    let goodbye = Message::Goodbye { reason: reason.clone() };
                    let _ = tokio::time::timeout(send_timeout, conn.write_message(&goodbye)).await;
                    break Ending::Close(reason);
                }
                _ = self.participant.kicked().cancelled() => Step::Kicked,
                event = next_room_event(&mut self.place) => Step::Room(event),
                delivery = self.inbox.recv() => Step::Inbox(delivery),
                _ = tokio::time::sleep_until(read_at), if read_at > now => Step::Nothing,
                request = conn.read_message(), if read_at <= now => Step::Request(request),
            };
            // A write that cannot finish within the send timeout means the client stopped
            // reading: it is dropped rather than allowed to stall or buffer.
            match tokio::time::timeout(send_timeout, self.step(conn, step)).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(ending))) => break ending,
                Ok(Err(e)) => break Ending::Close(e.to_string()),
                Err(_) => break Ending::NotReading,
            }
        };
        let notice = match &ending {
            Ending::NotReading => format!("{} was dropped: not reading", self.nick),
            _ => format!("{} left", self.nick),
        };
        self.leave(notice);
        self.hub.unregister(&self.participant, &self.nick);
        ending
    }

    async fn step<S>(&mut self, conn: &mut Connection<S>, step: Step) -> io::Result<Option<Ending>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match step {
            Step::Nothing => {}
            Step::Kicked => return Ok(Some(Ending::NotReading)),
            Step::Room(Ok(event)) => {
                // Everything queued goes out in one write: one syscall (one TLS record) per
                // batch rather than per line is what lets a busy room keep up.
                let mut batch = Vec::new();
                let mut written = 0;
                let mut gone = 0u64;
                let mut next = Some(event);
                while let Some(event) = next.take() {
                    if event.origin != self.participant.id {
                        // Bytes given back under the room's memory bounds: skipped, as a lag.
                        match event.frame() {
                            Some(frame) => batch.extend_from_slice(&frame),
                            None => gone += 1,
                        }
                        written += 1;
                    }
                    if written < WRITE_BATCH
                        && let Place::Room { events, room } = &mut self.place
                    {
                        loop {
                            match events.try_recv() {
                                Ok(event) => next = Some(event),
                                Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                                    batch.extend(skipped_notice(&room.name, skipped));
                                    continue;
                                }
                                Err(_) => {}
                            }
                            break;
                        }
                    }
                }
                if gone > 0
                    && let Place::Room { room, .. } = &self.place
                {
                    batch.extend(skipped_notice(&room.name, gone));
                }
                if !batch.is_empty() {
                    conn.write_encoded(&batch).await?;
                    conn.flush().await?;
                }
            }
            Step::Room(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                // The room outran this member: the server was too busy to write to it as fast as
                // lines came (a member that stops reading is dropped by the send timeout, not
                // here). Lines are gone from the ring; say how many rather than drop the member.
                if let Place::Room { room, .. } = &self.place {
                    conn.write_encoded(&skipped_notice(&room.name, skipped))
                        .await?;
                    conn.flush().await?;
                }
            }
            Step::Room(Err(broadcast::error::RecvError::Closed)) => {
                return Ok(Some(Ending::Close("room closed".into())));
            }
            Step::Inbox(None) => return Ok(Some(Ending::Close("inbox closed".into()))),
            Step::Inbox(Some(delivery)) => self.deliver(conn, delivery).await?,
            Step::Request(Ok(request)) => return self.request(conn, request).await,
            Step::Request(Err(e)) if e.is_recoverable() => {
                conn.write_message(&Message::error(e.code(), e.to_string()))
                    .await?;
            }
            Step::Request(Err(ConnectionError::Closed)) => {
                return Ok(Some(Ending::Close("client left".into())));
            }
            Step::Request(Err(e)) => {
                let _ = conn
                    .write_message(&Message::error(e.code(), e.to_string()))
                    .await;
                return Ok(Some(Ending::Close(e.to_string())));
            }
        }
        Ok(None)
    }

    async fn deliver<S>(&mut self, conn: &mut Connection<S>, delivery: Delivery) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let message = match delivery {
            Delivery::Direct {
                from_nick,
                text,
                receipt,
                ..
            } => {
                let message = Message::ChatMessage {
                    room: None,
                    from: from_nick,
                    to: Some(self.nick.clone()),
                    text,
                    history: false,
                };
                conn.write_message(&message).await?;
                // Taken: the sender's ack may go now.
                drop(receipt);
                return Ok(());
            }
            Delivery::Opened { from_nick, .. } => Message::ChatNotice {
                room: None,
                text: format!("{from_nick} opened a direct conversation with you"),
            },
            Delivery::Ack { id } => Message::ChatAck { id },
        };
        conn.write_message(&message).await
    }

    async fn request<S>(
        &mut self,
        conn: &mut Connection<S>,
        request: Message,
    ) -> io::Result<Option<Ending>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.flood.take(Instant::now());
        let reply = match request {
            Message::ChatSay { id, text } => self.say(id, &text),
            Message::ChatDirect { id, to, text } => self.direct(id, &to, &text),
            Message::ChatWho { id } => Ok(Some(match &self.place {
                Place::Room { room, .. } => Message::ChatMembers {
                    id,
                    room: room.name.clone(),
                    nicks: room.nicks(),
                },
                Place::Direct { with } => Message::ChatMembers {
                    id,
                    room: String::new(),
                    nicks: vec![self.nick.clone(), with.clone()],
                },
                Place::Nowhere => Message::ChatMembers {
                    id,
                    room: String::new(),
                    nicks: vec![self.nick.clone()],
                },
            })),
            Message::ChatNick { id, nick } => self
                .rename(&nick)
                .map(|()| Some(Message::ChatAck { id }))
                .map_err(|(_, e)| (Some(id), e)),
            Message::ChatJoin {
                room,
                with,
                nick,
                history,
            } => {
                return self
                    .rejoin(conn, room, with, nick, history)
                    .await
                    .map(|()| None);
            }
            Message::ChatLeave => {
                conn.write_message(&Message::ChatLeft).await?;
                return Ok(Some(Ending::Left));
            }
            Message::Ping { seq } => Ok(Some(Message::Pong { seq })),
            other => Err((
                None,
                ChatError {
                    code: ErrorCode::UnexpectedMessage,
                    message: format!("'{}' is not a chat request", other.kind()),
                },
            )),
        };
        match reply {
            Ok(Some(message)) => conn.write_message(&message).await?,
            Ok(None) => {}
            Err((id, e)) => {
                let message = Message::Error {
                    code: e.code,
                    message: e.message,
                    id,
                };
                conn.write_message(&message).await?;
            }
        }
        Ok(None)
    }

    fn check_length(&self, id: u64, text: &str) -> Result<(), (Option<u64>, ChatError)> {
        let max = self.hub.config.max_message_bytes;
        if text.len() > max {
            return Err((
                Some(id),
                ChatError {
                    code: ErrorCode::TooLong,
                    message: format!(
                        "message of {} bytes refused: the limit is {max} bytes",
                        text.len()
                    ),
                },
            ));
        }
        Ok(())
    }

    fn say(&mut self, id: u64, text: &str) -> Result<Option<Message>, (Option<u64>, ChatError)> {
        self.check_length(id, text)?;
        match &self.place {
            Place::Room { room, .. } => {
                room.say(
                    self.participant.id,
                    &self.nick,
                    text,
                    self.hub.config.history_messages,
                );
                Ok(Some(Message::ChatAck { id }))
            }
            Place::Direct { with } => {
                let with = with.clone();
                self.direct(id, &with, text)
            }
            Place::Nowhere => Err((
                Some(id),
                ChatError {
                    code: ErrorCode::UnexpectedMessage,
                    message: "not in a room or conversation".into(),
                },
            )),
        }
    }

    fn direct(
        &mut self,
        id: u64,
        to: &str,
        text: &str,
    ) -> Result<Option<Message>, (Option<u64>, ChatError)> {
        self.check_length(id, text)?;
        self.hub
            .direct(&self.participant, &self.nick, to, text, id)
            .map_err(|e| (Some(id), e))?;
        // The ack comes through the inbox once the recipients took the message.
        Ok(None)
    }

    fn rename(&mut self, new: &str) -> Result<(), (Option<u64>, ChatError)> {
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
            .map_err(|e| (None, e))?;
        self.nick = new.to_string();
        Ok(())
    }

    async fn rejoin<S>(
        &mut self,
        conn: &mut Connection<S>,
        room: Option<String>,
        with: Option<String>,
        nick: Option<String>,
        history: bool,
    ) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if let Some(nick) = nick.filter(|n| *n != self.nick)
            && let Err((_, e)) = self.rename(&nick)
        {
            return conn.write_message(&Message::error(e.code, e.message)).await;
        }
        match enter(self.hub, &self.participant, &self.nick, room, with) {
            Ok((place, entered)) => {
                self.leave(format!("{} left", self.nick));
                self.place = place;
                self.announce(conn, entered, history).await
            }
            Err(e) => conn.write_message(&Message::error(e.code, e.message)).await,
        }
    }

    fn leave(&mut self, notice: String) {
        if let Place::Room { room, .. } = &self.place {
            self.hub
                .leave_room(room, &self.participant, &self.nick, notice);
        }
        self.place = Place::Nowhere;
    }
}

/// What happened in one turn of the member's loop.
enum Step {
    Nothing,
    Kicked,
    Room(Result<Arc<RoomEvent>, broadcast::error::RecvError>),
    Inbox(Option<Delivery>),
    Request(Result<Message, ConnectionError>),
}

/// What entering a place yields for the `chat_joined` answer.
struct Entered {
    members: Vec<String>,
    history: Vec<bytes::Bytes>,
}

/// Joins a room or opens a direct conversation.
fn enter(
    hub: &ChatHub,
    participant: &Participant,
    nick: &str,
    room: Option<String>,
    with: Option<String>,
) -> Result<(Place, Entered), ChatError> {
    match (room, with) {
        (Some(name), None) => {
            let joined = hub.join_room(&name, participant, nick)?;
            Ok((
                Place::Room {
                    room: joined.room,
                    events: joined.events,
                },
                Entered {
                    members: joined.members,
                    history: joined.history,
                },
            ))
        }
        (None, Some(with)) => {
            names::validate("nick", &with, hub.config.max_nick_chars)?;
            for partner in hub.lookup(&with)? {
                partner.deliver(Delivery::Opened {
                    from: participant.clone(),
                    from_nick: nick.to_string(),
                });
            }
            Ok((
                Place::Direct { with: with.clone() },
                Entered {
                    members: vec![nick.to_string(), with],
                    history: Vec::new(),
                },
            ))
        }
        _ => Err(ChatError {
            code: ErrorCode::BadMessage,
            message: "'chat_join' needs exactly one of 'room' and 'with'".into(),
        }),
    }
}

/// The next room event, or never when not in a room.
/// The notice telling a member that `skipped` lines of `room` passed it by.
fn skipped_notice(room: &str, skipped: u64) -> Vec<u8> {
    tracing::debug!(room, skipped, "a member lagged its room");
    Message::ChatNotice {
        room: Some(room.to_string()),
        text: format!("{skipped} lines skipped: the room outran your connection"),
    }
    .to_frame()
}

async fn next_room_event(place: &mut Place) -> Result<Arc<RoomEvent>, broadcast::error::RecvError> {
    match place {
        Place::Room { events, .. } => events.recv().await,
        Place::Direct { .. } | Place::Nowhere => std::future::pending().await,
    }
}

/// Why a join failed: a refusal to report, or a broken connection.
#[derive(Debug, thiserror::Error)]
pub enum JoinFailure {
    #[error(transparent)]
    Refused(#[from] ChatError),
    #[error(transparent)]
    Io(#[from] io::Error),
}
