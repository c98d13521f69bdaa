//! A registered IRC client: its rooms (channels), its inbox, and the loop that reads its
//! commands (under the flood limit) and writes what reaches it, until it quits, vanishes, is
//! dropped for not reading, loses its chat permission, or the server stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::caps::Caps;
use super::registration::Registered;
use super::wire::{Incoming, Wire, WriteFailed};
use crate::auth::SessionIdentity;
use crate::server::ServerState;
use crate::services::CloseReason;
use crate::services::chat::flood::FloodGate;
use crate::services::chat::hub::{Delivery, JoinMark, Participant, Receipt, Room, RoomEvent};

/// Room events gathered into one write at most.
const WRITE_BATCH: usize = 64;

/// A channel the client is in: a ferry room and its broadcast ring.
pub(super) struct Channel {
    /// `#room`.
    pub(super) name: String,
    pub(super) room: Arc<Room>,
    pub(super) events: broadcast::Receiver<Arc<RoomEvent>>,
    /// Where the join stands: events before it are skipped (see `Joined`).
    pub(super) mark: JoinMark,
}

/// How a client's time ended.
pub(super) enum End {
    /// It sent QUIT.
    Quit,
    /// Its connection ended or broke.
    Gone,
    /// It took nothing for the send timeout (or its inbox overflowed).
    NotReading,
    /// The server ends it, saying why.
    Close(String),
}

/// A registered client.
pub(super) struct Client<'a> {
    pub(super) state: &'a Arc<ServerState>,
    pub(super) nick: String,
    pub(super) identity: SessionIdentity,
    pub(super) participant: Participant,
    inbox: mpsc::Receiver<Delivery>,
    pub(super) caps: Caps,
    pub(super) channels: Vec<Channel>,
    flood: FloodGate,
    pub(super) away: Option<String>,
    /// Direct messages written, confirmed to their senders once flushed.
    pub(super) receipts: Vec<Receipt>,
    /// The last rename told (by whom, to what): a member renamed in several shared rooms is
    /// one NICK line, not one per room.
    pub(super) last_rename: Option<(u64, String)>,
    /// Ids for history batches and direct messages.
    pub(super) next_id: u64,
}

enum Step {
    Nothing,
    Close(CloseReason),
    Kicked,
    Room(usize, Result<Arc<RoomEvent>, broadcast::error::RecvError>),
    Inbox(Option<Delivery>),
    Read(std::io::Result<Incoming>),
}

impl<'a> Client<'a> {
    pub(super) fn new(state: &'a Arc<ServerState>, registered: Registered) -> Client<'a> {
        let chat = &state.chat.config;
        Client {
            state,
            nick: registered.nick,
            identity: registered.identity,
            participant: registered.participant,
            inbox: registered.inbox,
            caps: registered.caps,
            channels: Vec::new(),
            flood: FloodGate::new(chat.flood_burst, chat.flood_per_second, Instant::now()),
            away: None,
            receipts: Vec::new(),
            last_rename: None,
            next_id: 1,
        }
    }

    /// Runs until the client's time ends; leaves its rooms and the directory on every path.
    pub(super) async fn run<S>(
        mut self,
        wire: &mut Wire<S>,
        mut closing: Pin<&mut (dyn Future<Output = CloseReason> + Send)>,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let end = loop {
            let now = Instant::now();
            let read_at = self.flood.ready_at(now);
            let step = tokio::select! {
                biased;
                reason = closing.as_mut() => Step::Close(reason),
                _ = self.participant.kicked().cancelled() => Step::Kicked,
                (i, event) = next_event(&mut self.channels) => Step::Room(i, event),
                delivery = self.inbox.recv() => Step::Inbox(delivery),
                _ = tokio::time::sleep_until(read_at), if read_at > now => Step::Nothing,
                read = wire.next(), if read_at <= now => Step::Read(read),
            };
            let ended = match step {
                Step::Nothing => None,
                Step::Close(reason) => Some(End::Close(reason.to_string())),
                Step::Kicked => Some(End::NotReading),
                Step::Room(i, event) => self.room_events(i, event, &mut wire.out),
                Step::Inbox(None) => Some(End::Close("the chat closed".into())),
                Step::Inbox(Some(Delivery::Ended { reason })) => Some(End::Close(reason)),
                Step::Inbox(Some(delivery)) => {
                    self.delivery(delivery, &mut wire.out);
                    None
                }
                Step::Read(Err(_)) | Step::Read(Ok(Incoming::Closed)) => Some(End::Gone),
                Step::Read(Ok(Incoming::Line(text))) => {
                    self.flood.take(Instant::now());
                    self.line(&text, &mut wire.out).await
                }
                Step::Read(Ok(refused)) => {
                    self.flood.take(Instant::now());
                    wire.refuse(&refused);
                    None
                }
            };
            match wire.flush().await {
                Ok(()) => self.receipts.clear(),
                Err(WriteFailed::NotReading) => break End::NotReading,
                Err(WriteFailed::Broken) => break End::Gone,
            }
            if let Some(end) = ended {
                break end;
            }
        };
        let dropped = matches!(end, End::NotReading);
        // The nick first, as for a native member: whoever hears the PART may take it at once.
        self.state.chat.unregister(&self.participant, &self.nick);
        for channel in self.channels.drain(..) {
            self.state
                .chat
                .leave_room(&channel.room, &self.participant, &self.nick, dropped);
        }
        end
    }

    /// A room event, and whatever else that room has queued (up to a batch).
    fn room_events(
        &mut self,
        i: usize,
        first: Result<Arc<RoomEvent>, broadcast::error::RecvError>,
        out: &mut super::line::Out,
    ) -> Option<End> {
        let mut next = Some(first);
        let mut written = 0;
        let name = self.channels[i].name.clone();
        while let Some(event) = next.take() {
            match event {
                Ok(event) => {
                    let seen = event.before(self.channels[i].mark);
                    if !seen {
                        self.room_event(&name, &event, out);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    self.state.chat.counters.lines_skipped.inc_by(skipped);
                    out.server(
                        "NOTICE",
                        &[
                            &name,
                            &format!("{skipped} lines skipped: the room outran your connection"),
                        ],
                    );
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Some(End::Close("the chat closed".into()));
                }
            }
            written += 1;
            if written < WRITE_BATCH {
                next = match self.channels[i].events.try_recv() {
                    Ok(event) => Some(Ok(event)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
        }
        None
    }
}

/// The next event of any channel, with the channel's index; never when in none.
async fn next_event(
    channels: &mut [Channel],
) -> (usize, Result<Arc<RoomEvent>, broadcast::error::RecvError>) {
    match channels {
        [] => std::future::pending().await,
        [only] => (0, only.events.recv().await),
        many => {
            let waits = many
                .iter_mut()
                .enumerate()
                .map(|(i, channel)| Box::pin(async move { (i, channel.events.recv().await) }));
            futures_util::future::select_all(waits).await.0
        }
    }
}
