//! The hub's side of the engine that keeps a single server's lines: the engine half of a
//! join (history, or what followed a client's offset), the notices that wait for the lines
//! before them, and what happens once a line is kept.

use std::sync::Arc;

use super::{
    ChatHub, Delivery, JoinOptions, Kept, MAX_CATCH_UP, Participant, Room, RoomChange, Said,
};
use crate::protocol::Refusal;
use crate::services::chat::engine::Confirmed;
use crate::services::chat::offset::{Offset, StreamId};

impl ChatHub {
    /// The single-server half of a join, after the joiner is subscribed: the room's latest
    /// lines (or those after the client's `since`) from the engine, and the position up to
    /// which live lines are already among them.
    #[allow(clippy::type_complexity)]
    pub(super) fn join_here(
        &self,
        room: &Room,
        options: &JoinOptions,
    ) -> Result<(Vec<(StreamId, Said)>, Option<StreamId>, Option<bool>), Refusal> {
        let recent = self.engine.recent(&room.name, options.history)?;
        let mut lines = recent.lines;
        let mut recovered = None;
        if let Some(since) = &options.since {
            let epoch = self.engine.epoch();
            let caught = match Offset::parse(since).filter(|o| o.epoch == epoch) {
                Some(from) => self
                    .engine
                    .since(&room.name, from.id, MAX_CATCH_UP)?
                    .map(|all| {
                        all.into_iter()
                            .filter(|(id, _)| recent.last.is_some_and(|last| *id <= last))
                            .collect()
                    }),
                None => None,
            };
            recovered = Some(caught.is_some());
            if let Some(caught) = caught {
                lines = caught;
            }
        }
        Ok((lines, recent.last, recovered))
    }

    /// Tells `room` of `change` (on one server) once the lines said before it are kept, so
    /// members hear both in the order they happened; `joins` is the room's count of joins when
    /// the change happened, so a member who joined meanwhile is not told of it.
    pub(super) fn notice_in_order(
        &self,
        room: &Arc<Room>,
        origin: u64,
        change: RoomChange,
        joins: u64,
    ) {
        let room = Arc::clone(room);
        self.engine.in_order(Box::new(move || {
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
        if confirmed == Confirmed::Now {
            return;
        }
        match (id, kept) {
            (Some(id), kept) => {
                participant.deliver(Delivery::Recorded {
                    id,
                    refused: kept.err().map(|r| r.answering(Some(id))),
                });
            }
            (None, Err(refusal)) => {
                participant.deliver(Delivery::Refused(refusal));
            }
            (None, Ok(_)) => {}
        }
    })
}
