//! Where a member is — a room or a direct conversation — and how it gets there.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::super::hub::{ChatHub, Delivery, Participant, Room, RoomEvent};
use super::super::names;
use crate::protocol::{ChatNotice, ErrorCode, Message, Refusal};

/// Where a member is: in a room, or in a direct conversation.
pub(super) enum Place {
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

/// What entering a place yields for the `chat_joined` answer.
pub(super) struct Entered {
    pub(super) members: Vec<String>,
    pub(super) history: Vec<bytes::Bytes>,
}

/// Joins a room or opens a direct conversation.
pub(super) fn enter(
    hub: &ChatHub,
    participant: &Participant,
    nick: &str,
    room: Option<String>,
    with: Option<String>,
) -> Result<(Place, Entered), Refusal> {
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
