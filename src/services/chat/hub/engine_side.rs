//! The hub's side of the engine: the notices that wait for the lines before them, and what
//! happens once a line is kept.

use std::sync::Arc;

use super::{ChatHub, Kept, Participant, Room, RoomChange, Said};
use crate::services::chat::engine::Confirmed;

impl ChatHub {
    /// Tells `room` of `change` once the lines said before it are kept, so members hear both
    /// in the order they happened (an engine whose stream carries the change tells them
    /// itself); `joins` is the room's count of joins when the change happened, so a member who
    /// joined meanwhile is not told of it.
    pub(super) fn notice_in_order(
        &self,
        room: &Arc<Room>,
        origin: u64,
        change: RoomChange,
        joins: u64,
    ) {
        let room = Arc::clone(room);
        self.engine.tell_in_order(Box::new(move || {
            room.notice_after_joins(origin, change, joins);
        }));
    }
}

/// What the hub does once the engine kept a line: the room hears it with its position, and
/// its sender is told (when the engine confirms later: request `id`, or only a refusal).
pub(super) fn when_kept(
    room: Arc<Room>,
    participant: Participant,
    id: Option<u64>,
    said: Said,
    epoch: String,
) -> Kept {
    Box::new(move |kept, confirmed| {
        if let Ok(position) = &kept {
            room.broadcast_line(participant.id, said, Some((*position, &epoch)));
        }
        if confirmed == Confirmed::Later {
            participant.confirm(id, kept.err());
        }
    })
}
