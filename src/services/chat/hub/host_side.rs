//! The hub as the host of an engine whose stream carries every change (Redis): what the
//! engine's subscriber asks of it (the rooms to catch up, the engine lost or back, what this
//! server holds for a reconciliation) and hands it (records, deliveries from other servers).

use std::sync::Arc;

use super::room::REMOTE;
use super::{ChatHub, Delivery, Room, RoomChange, lock};
use crate::services::chat::engine::host::{CatchingUp, Host};
use crate::services::chat::engine::record::Record;
use crate::services::chat::offset::StreamId;

impl ChatHub {
    /// This server's room `name`, if it has members here.
    pub(super) fn room_named(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every room of this server, now.
    fn rooms_here(&self) -> Vec<Arc<Room>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every room here, each holding live records back until it has read back what it missed.
    fn rooms_for_catch_up(&self) -> Vec<Arc<Room>> {
        let rooms = self.rooms_here();
        for room in &rooms {
            room.begin_catch_up();
        }
        rooms
    }

    /// The engine became unreachable, or answers again: every room here is told.
    fn cluster_state_changed(&self, up: bool) {
        let rooms = self.rooms_here();
        for room in rooms {
            room.notice(REMOTE, RoomChange::Engine { up });
        }
    }

    /// What this server holds, for the cluster's reconciliation: its nicks and its members of
    /// each room.
    fn local_state(&self) -> serde_json::Value {
        let nicks: Vec<serde_json::Value> = self
            .directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(skeleton, (nick, p))| serde_json::json!([skeleton, p.id, nick]))
            .collect();
        let rooms: serde_json::Map<String, serde_json::Value> = self
            .rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|room| {
                let members: Vec<serde_json::Value> = lock(&room.members)
                    .by_nick
                    .iter()
                    .filter(|(_, id)| **id != REMOTE)
                    .map(|(nick, id)| serde_json::json!([nick, id]))
                    .collect();
                (room.name.clone(), serde_json::Value::Array(members))
            })
            .collect();
        serde_json::json!({ "nicks": nicks, "rooms": rooms })
    }
}

impl Host for ChatHub {
    fn engine_state_changed(&self, up: bool) {
        self.cluster_state_changed(up);
    }

    fn rooms_to_catch_up(&self) -> Vec<Arc<dyn CatchingUp>> {
        self.rooms_for_catch_up()
            .into_iter()
            .map(|room| room as Arc<dyn CatchingUp>)
            .collect()
    }

    fn apply(&self, room: &str, node: &str, epoch: &str, id: StreamId, record: Record) {
        if let Some(room) = self.room_named(room) {
            room.apply(node, epoch, id, record);
        }
    }

    /// A recipient that is gone drops the delivery, and with it the receipt: its sender is
    /// acked, as on one server.
    fn deliver(&self, pid: u64, delivery: Delivery) {
        if let Some(recipient) = self.local_participant(pid) {
            recipient.deliver(delivery);
        }
    }

    fn evict(&self, nick: &str, reason: &str) {
        ChatHub::evict(self, nick, reason);
    }

    fn local_state(&self) -> serde_json::Value {
        ChatHub::local_state(self)
    }
}

impl CatchingUp for Room {
    fn name(&self) -> &str {
        &self.name
    }

    fn applied(&self) -> Option<StreamId> {
        Room::applied(self)
    }

    fn catch_up(&self, node: &str, epoch: &str, entries: Vec<(StreamId, Record)>, done: bool) {
        Room::catch_up(self, node, epoch, entries, done);
    }
}
