//! Where a member is — a room or a direct conversation — and how it gets there.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::super::hub::{ChatHub, JoinMark, JoinOptions, Participant, Room, RoomEvent};
use super::super::names;
use crate::protocol::{ChatNotice, ErrorCode, Message, Refusal};

/// Where a member is: in a room, or in a direct conversation.
pub(super) enum Place {
    Room {
        room: Arc<Room>,
        events: broadcast::Receiver<Arc<RoomEvent>>,
        /// Where the join stands: events before it are skipped (see `Joined`).
        mark: JoinMark,
    },
    Direct {
        with: String,
    },
    /// Between leaving one place and entering the next, and after the end.
    Nowhere,
}

/// What entering a place yields for the `chat_joined` answer.
pub(super) struct Entered {
    pub(super) members: Vec<String>,
    pub(super) history: Vec<bytes::Bytes>,
    pub(super) recovered: Option<bool>,
}

/// Where a member asks to go.
pub(super) struct Destination {
    pub(super) room: Option<String>,
    pub(super) with: Option<String>,
    /// In a cluster: the offset to catch up from.
    pub(super) since: Option<String>,
}

/// Joins a room or opens a direct conversation.
pub(super) async fn enter(
    hub: &ChatHub,
    participant: &Participant,
    nick: &str,
    to: Destination,
) -> Result<(Place, Entered), Refusal> {
    match (to.room, to.with) {
        (Some(name), None) => {
            let options = JoinOptions {
                history: hub.config.history_messages,
                since: to.since,
            };
            let joined = hub.join_room(&name, participant, nick, options).await?;
            Ok((
                Place::Room {
                    room: joined.room,
                    events: joined.events,
                    mark: joined.mark,
                },
                Entered {
                    members: joined.members,
                    history: joined.history,
                    recovered: joined.recovered,
                },
            ))
        }
        (None, Some(with)) => {
            names::validate("nick", &with, hub.config.max_nick_chars)?;
            hub.open_direct(participant, nick, &with).await?;
            Ok((
                Place::Direct { with: with.clone() },
                Entered {
                    members: vec![nick.to_string(), with],
                    history: Vec::new(),
                    recovered: None,
                },
            ))
        }
        _ => Err(Refusal::new(
            ErrorCode::BadMessage,
            "'chat_join' needs exactly one of 'room' and 'with'",
        )),
    }
}

/// The notice telling a member that `skipped` lines of `room` passed it by.
pub(super) fn skipped_notice(room: &str, skipped: u64) -> Vec<u8> {
    tracing::debug!(room, skipped, "a member lagged its room");
    Message::ChatNotice(ChatNotice {
        room: Some(room.to_string()),
        text: format!("{skipped} lines skipped: the room outran your connection"),
    })
    .to_frame()
}

/// The next room event, or never when not in a room.
pub(super) async fn next_room_event(
    place: &mut Place,
) -> Result<Arc<RoomEvent>, broadcast::error::RecvError> {
    match place {
        Place::Room { events, .. } => events.recv().await,
        Place::Direct { .. } | Place::Nowhere => std::future::pending().await,
    }
}
