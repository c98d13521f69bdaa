//! A room's membership: joining (the member list and the subscription taken together, the
//! history from the engine or the cluster, the room made on first join) and leaving (the room
//! told, in order, and removed with its last member here).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::{
    ChatHub, JoinMark, JoinOptions, Participant, Room, RoomChange, RoomEvent, Said, history_frame,
    lock, names,
};
use crate::protocol::{ErrorCode, Refusal};

/// What a member receives when it joins a room.
pub struct Joined {
    /// The room joined.
    pub room: Arc<Room>,
    /// Its broadcast ring, from now on.
    pub events: broadcast::Receiver<Arc<RoomEvent>>,
    /// Its members, the joiner included.
    pub members: Vec<String>,
    /// Recent messages, already encoded with `history: true`.
    pub history: Vec<Bytes>,
    /// The same recent messages as lines, for doors that encode their own (IRC).
    pub lines: Vec<Said>,
    /// Where the join stands among the room's events: those before it are already in
    /// `history` or in `members`, and the member skips them ([`RoomEvent::before`]).
    pub mark: JoinMark,
    /// Answering a join with `since`: whether every line after it followed.
    pub recovered: Option<bool>,
}

impl ChatHub {
    /// Adds `participant` as `nick` to room `name`, creating the room if needed, and announces
    /// it. The member list and the subscription are taken together, so no event is missed (in a
    /// cluster: the join's position in the stream says which events the history holds).
    ///
    /// # Errors
    /// An invalid room name, `nick` already in the room, or a cluster's Redis unreachable.
    pub async fn join_room(
        &self,
        name: &str,
        participant: &Participant,
        nick: &str,
        options: JoinOptions,
    ) -> Result<Joined, Refusal> {
        names::validate("room", name, self.config.max_room_chars)?;
        let (room, events, list, number) = loop {
            let room = self.room(name)?;
            let mut members = lock(&room.members);
            if members.closed {
                // The last member left between lookup and lock: finish its removal, retry.
                drop(members);
                self.remove_room(&room);
                continue;
            }
            if members.by_nick.contains_key(nick) {
                return Err(Refusal::new(
                    ErrorCode::NickInUse,
                    format!("the nick '{nick}' is already used in room '{name}'"),
                ));
            }
            members.by_nick.insert(nick.to_string(), participant.id);
            members.joins += 1;
            let number = members.joins;
            let events = room.events.subscribe();
            let list = members.by_nick.keys().cloned().collect();
            drop(members);
            break (room, events, list, number);
        };
        let past = match self
            .engine
            .join(&room.name, participant.id, nick, &options)
            .await
        {
            Ok(past) => past,
            Err(refusal) => {
                self.leave_here(&room, participant, nick);
                return Err(refusal);
            }
        };
        let epoch = self.engine.epoch();
        let members = match past.everywhere {
            // The room as the engine's stream had it at the join: its records follow from there.
            Some(everywhere) => {
                if let Some(at) = past.last {
                    room.seed(
                        &everywhere.node,
                        &epoch,
                        at,
                        &everywhere.members,
                        everywhere.topic,
                    );
                }
                everywhere.members
            }
            None => list,
        };
        let history = past
            .lines
            .iter()
            .map(|(id, said)| history_frame(&room.name, said, Some(id.offset_in(&epoch))))
            .collect();
        // At once, not after pending lines: a notice delayed past a later joiner's arrival
        // would tell that joiner of a member its list already holds. The joiner has said
        // nothing yet, so none of its own lines can come first.
        let told = Arc::clone(&room);
        let (pid, joined) = (participant.id, nick.to_string());
        self.engine.tell_now(Box::new(move || {
            told.notice(pid, RoomChange::Joined(joined));
        }));
        Ok(Joined {
            events,
            members,
            history,
            lines: past.lines.into_iter().map(|(_, said)| said).collect(),
            room,
            mark: JoinMark {
                after: past.last,
                number,
            },
            recovered: past.recovered,
        })
    }

    fn room(&self, name: &str) -> Result<Arc<Room>, Refusal> {
        if let Some(room) = self
            .rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Arc::clone(room));
        }
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        if !rooms.contains_key(name) && rooms.len() >= self.config.max_rooms {
            return Err(Refusal::new(
                ErrorCode::ServerBusy,
                format!(
                    "the server already holds {} rooms, its limit; join an existing room",
                    self.config.max_rooms
                ),
            ));
        }
        Ok(Arc::clone(rooms.entry(name.to_string()).or_insert_with(
            || {
                Arc::new(Room {
                    sync: Mutex::default(),
                    name: name.to_string(),
                    events: broadcast::channel(self.config.room_queue).0,
                    members: Mutex::default(),
                    recent: Mutex::default(),
                    frames_budget: Arc::clone(&self.frames_budget),
                    room_bytes: self.config.room_bytes,
                    room_queue: self.config.room_queue,
                    // In a cluster the room's seed sets it.
                    topic: Mutex::new(self.engine.topic(name)),
                })
            },
        )))
    }

    /// Removes `nick` from `room`, telling the room why (`dropped` for not reading); removes
    /// the room when it is empty (of this server's members).
    pub fn leave_room(
        &self,
        room: &Arc<Room>,
        participant: &Participant,
        nick: &str,
        dropped: bool,
    ) {
        if dropped {
            self.counters.members_dropped.inc();
        }
        let (now_empty, joins) = self.leave_here(room, participant, nick);
        self.engine.leave(&room.name, participant.id, nick, dropped);
        if !now_empty {
            let change = if dropped {
                RoomChange::Dropped(nick.to_string())
            } else {
                RoomChange::Left(nick.to_string())
            };
            self.notice_in_order(room, participant.id, change, joins);
        }
    }

    /// Removes `nick` from this server's view of `room`, and the room when no member of this
    /// server is left in it; returns whether it was, and the room's joins then.
    fn leave_here(&self, room: &Arc<Room>, participant: &Participant, nick: &str) -> (bool, u64) {
        let (now_empty, joins) = {
            let mut members = lock(&room.members);
            if members.by_nick.get(nick) == Some(&participant.id) {
                members.by_nick.remove(nick);
            }
            members.closed = members.none_here();
            (members.closed, members.joins)
        };
        if now_empty {
            self.remove_room(room);
        }
        (now_empty, joins)
    }

    fn remove_room(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
            self.engine.room_emptied(&room.name);
        }
    }
}
