//! One member's chat exchange on the server: reads its requests (under the flood limit) and
//! writes what reaches it (room events, direct messages, acks), until it leaves, vanishes, is
//! dropped for not reading, or the server shuts down.

mod place;
mod requests;
mod writes;

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::flood::FloodGate;
use super::hub::{ChatHub, Delivery, Participant, RoomEvent};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ChatJoined, Goodbye, Message};
use crate::services::{CloseReason, RequestError};
use place::{Destination, Entered, Place, enter, next_room_event};

/// Room events gathered into one write at most, so a busy room costs one write per batch.
const WRITE_BATCH: usize = 64;

/// How the exchange ended: `Ok` when the member sent `chat_leave` (the session goes on);
/// otherwise why the session must end.
type Ending = Result<(), RequestError>;

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
    /// Lines and topics handed to a cluster's Redis and not yet confirmed: past
    /// [`MAX_UNCONFIRMED`] the member's next request waits (TCP pushes back on it), so the
    /// confirmations always fit its inbox.
    unconfirmed: usize,
}

/// Changes a member may have waiting for a cluster's Redis at once.
const MAX_UNCONFIRMED: usize = 64;

/// What a join request asked for.
pub struct JoinRequest {
    /// The room to enter.
    pub room: Option<String>,
    /// The nick to talk with directly, instead of a room.
    pub with: Option<String>,
    /// The nick to use.
    pub nick: String,
    /// Replay the room's recent lines first.
    pub history: bool,
    /// The session's user, `None` when anonymous.
    pub user: Option<String>,
    /// In a cluster: catch up from this offset.
    pub since: Option<String>,
}

impl<'a> Member<'a> {
    /// Registers the member and joins its first place, answering `chat_joined` (and the room's
    /// history) on `conn`.
    ///
    /// # Errors
    /// The refusal to answer with; nothing is left registered.
    pub async fn join<S>(
        hub: &'a ChatHub,
        conn: &mut Connection<S>,
        request: JoinRequest,
    ) -> Result<Member<'a>, RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (participant, inbox) = hub.register(&request.nick, request.user.as_deref()).await?;
        let to = Destination {
            room: request.room,
            with: request.with,
            since: request.since,
        };
        let place = match enter(hub, &participant, &request.nick, to).await {
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
            unconfirmed: 0,
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
        conn.write_message(&Message::ChatJoined(ChatJoined {
            room,
            with,
            nick: self.nick.clone(),
            members: joined.members,
            topic: match &self.place {
                Place::Room { room, .. } => room.topic(),
                _ => None,
            },
            recovered: joined.recovered,
            replayed: with_history.then(|| u32::try_from(joined.history.len()).unwrap_or(u32::MAX)),
        }))
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
    ///
    /// # Errors
    /// Why the session must end; `Ok` when the member left the exchange.
    pub async fn run<S>(
        mut self,
        conn: &mut Connection<S>,
        mut closing: std::pin::Pin<&mut (dyn std::future::Future<Output = CloseReason> + Send)>,
    ) -> Ending
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let send_timeout = self.hub.config.send_timeout();
        let ending = loop {
            let now = Instant::now();
            let read_at = self.flood.ready_at(now);
            let may_read =
                self.unconfirmed < MAX_UNCONFIRMED.min(self.hub.config.member_queue / 2).max(1);
            let step = tokio::select! {
                biased;
                reason = closing.as_mut() => {
                    let goodbye = Message::Goodbye(Goodbye { reason: reason.to_string() });
                    let _ = tokio::time::timeout(send_timeout, conn.write_message(&goodbye)).await;
                    break Err(RequestError::Closed(reason));
                }
                _ = self.participant.kicked().cancelled() => Step::Kicked,
                event = next_room_event(&mut self.place) => Step::Room(event),
                delivery = self.inbox.recv() => Step::Inbox(delivery),
                _ = tokio::time::sleep_until(read_at), if read_at > now => Step::Nothing,
                request = conn.read_message(), if read_at <= now && may_read => Step::Request(request),
            };
            // A write that cannot finish within the send timeout means the client stopped
            // reading: it is dropped rather than allowed to stall or buffer.
            match tokio::time::timeout(send_timeout, self.step(conn, step)).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(ending))) => break ending,
                Ok(Err(e)) => break Err(e.into()),
                Err(_) => break Err(RequestError::NotReading),
            }
        };
        // The nick is given up before the room is told: in a cluster both go through one ordered
        // queue, so whoever hears `NICK left` may take the nick on any server at once.
        self.hub.unregister(&self.participant, &self.nick);
        self.leave(matches!(ending, Err(RequestError::NotReading)));
        ending
    }

    /// Leaves the room it is in, if any (`dropped` when for not reading).
    fn leave(&mut self, dropped: bool) {
        if let Place::Room { room, .. } = &self.place {
            self.hub
                .leave_room(room, &self.participant, &self.nick, dropped);
        }
        self.place = Place::Nowhere;
    }
}

/// What happened in one turn of the member's loop.
pub(super) enum Step {
    Nothing,
    Kicked,
    Room(Result<Arc<RoomEvent>, broadcast::error::RecvError>),
    Inbox(Option<Delivery>),
    Request(Result<Message, ConnectionError>),
}

#[cfg(test)]
mod tests;
