//! The hub's side of the cluster engine: the cluster half of a join, and what the engine's
//! subscriber asks of the hub (a room by name, the rooms to catch up, Redis lost or back, what
//! this server holds for a reconciliation).

use std::sync::Arc;

use super::room::REMOTE;
use super::{ChatHub, JoinOptions, Participant, Room, RoomChange, Said, lock};
use crate::protocol::Refusal;
use crate::services::chat::cluster::Cluster;
use crate::services::chat::cluster::host::{CatchingUp, Host};
use crate::services::chat::cluster::record::{NodeMessage, Record};
use crate::services::chat::cluster::record::{Offset, StreamId};

use super::MAX_CATCH_UP;

impl ChatHub {
    /// The cluster half of a join: the room followed here, the join recorded in its stream,
    /// and the history (or the lines since the client's offset) read from it.
    pub(super) async fn join_everywhere(
        &self,
        cluster: &Cluster,
        room: &Arc<Room>,
        participant: &Participant,
        nick: &str,
        options: &JoinOptions,
    ) -> Result<(StreamId, Vec<String>, Vec<(StreamId, Said)>, Option<bool>), Refusal> {
        if room.applied().is_none() {
            cluster.subscribe(&room.name).await?;
        }
        let joined = cluster
            .join(&room.name, participant.id, nick, options.history)
            .await?;
        room.seed(
            &cluster.link.node,
            &cluster.epoch(),
            joined.id,
            &joined.members,
            joined.topic.clone(),
        );
        let mut lines = joined.lines;
        let mut recovered = None;
        if let Some(since) = &options.since {
            let from = Offset::parse(since).filter(|o| o.epoch == cluster.epoch());
            let caught = match from {
                Some(from) => cluster
                    .lines_since(&room.name, from.id, MAX_CATCH_UP)
                    .await?
                    .map(|all| all.into_iter().filter(|(id, _)| *id <= joined.id).collect()),
                None => None,
            };
            recovered = Some(caught.is_some());
            if let Some(caught) = caught {
                lines = caught;
            }
        }
        let lines = lines
            .into_iter()
            .filter_map(|(id, record)| Some((id, record.into_said(id)?)))
            .collect();
        Ok((joined.id, joined.members, lines, recovered))
    }

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

    /// Redis became unreachable, or answers again: every room here is told (once per change).
    fn cluster_state_changed(&self, up: bool) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        if !cluster.link.set_up(up) {
            return;
        }
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
    fn cluster(&self) -> Option<&Arc<Cluster>> {
        ChatHub::cluster(self)
    }

    fn attach(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    fn closed(&self) -> &tokio_util::sync::CancellationToken {
        ChatHub::closed(self)
    }

    fn engine_state_changed(&self, up: bool) {
        self.cluster_state_changed(up);
    }

    fn rooms_to_catch_up(&self) -> Vec<Arc<dyn CatchingUp>> {
        self.rooms_for_catch_up()
            .into_iter()
            .map(|room| room as Arc<dyn CatchingUp>)
            .collect()
    }

    fn apply(&self, room: &str, id: StreamId, record: Record) {
        if let (Some(cluster), Some(room)) = (ChatHub::cluster(self), self.room_named(room)) {
            room.apply(&cluster.link.node, &cluster.epoch(), id, record);
        }
    }

    fn deliver(&self, pid: u64, message: NodeMessage) {
        self.deliver_from_node(pid, message);
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
