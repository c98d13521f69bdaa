//! The Redis engine behind the hub's one [`Engine`] interface. Every change of a room (a
//! line, a join, a leave, a rename, a topic) is recorded in the room's stream and comes back
//! to every server's rooms through the subscriber and the [`Host`](super::host::Host), so
//! this engine drops what the hub would tell its own members ([`Tell`]) and confirms lines and
//! topics to their senders once Redis took them.

use std::sync::Arc;

use super::Cluster;
use super::link::Done;
use super::record::{KeptDirect, NodeMessage, Record};
use crate::protocol::{Refusal, RoomInfo};
use crate::services::chat::engine::{
    BoxFuture, Confirmed, Engine, Everywhere, JoinOptions, Kept, MAX_CATCH_UP, Past, Routed, Said,
    Settled, TakeDirects, Tell,
};
use crate::services::chat::offset::{Offset, StreamId};
use crate::services::chat::participant::Participant;

/// What to tell `participant` when Redis took (or did not take) its request `id`.
fn outcome(participant: &Participant, id: Option<u64>) -> Done {
    match id {
        Some(id) => Done::Recorded {
            to: participant.clone(),
            id,
        },
        None => Done::RefusedOnly {
            to: participant.clone(),
        },
    }
}

/// A stream's line records as lines.
fn said_lines(records: Vec<(StreamId, Record)>) -> Vec<(StreamId, Said)> {
    records
        .into_iter()
        .filter_map(|(id, record)| Some((id, record.into_said(id)?)))
        .collect()
}

impl Engine for Cluster {
    fn describe(&self) -> String {
        format!(
            "Redis at {} (cluster node {}, id {}; files and exec stay on this server)",
            self.link.redis(),
            self.name,
            self.link.node
        )
    }

    fn epoch(&self) -> String {
        Cluster::epoch(self)
    }

    fn held_bytes(&self) -> usize {
        0
    }

    fn server_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn reachable(&self) -> Option<bool> {
        Some(self.link.is_up())
    }

    fn claim<'a>(
        &'a self,
        pid: u64,
        nick: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(Cluster::claim(self, pid, nick, force))
    }

    fn release(&self, pid: u64, nick: &str) {
        Cluster::release(self, pid, nick);
    }

    fn rename<'a>(
        &'a self,
        pid: u64,
        old: &'a str,
        new: &'a str,
        rooms: &'a [String],
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(Cluster::rename(self, pid, old, new, rooms))
    }

    fn find<'a>(&'a self, nick: &'a str) -> BoxFuture<'a, Result<Option<String>, Refusal>> {
        Box::pin(Cluster::find(self, nick))
    }

    /// To the recipient's server's channel; a direct message no one holds the nick for is
    /// kept in Redis for the user it names, or refused as `not_online` by the link's answer.
    fn route(&self, to: &str, routed: Routed, _not_online: Refusal) -> Result<(), Refusal> {
        let node = self.link.node.clone();
        match routed {
            Routed::Direct {
                from,
                from_nick,
                text,
                action,
                id,
                keep,
            } => {
                let kept = KeptDirect {
                    f: from_nick.clone(),
                    t: text.clone(),
                    a: action,
                    ms: None,
                };
                let message = NodeMessage::Direct {
                    n: node,
                    p: from.id,
                    f: from_nick,
                    t: text,
                    a: action,
                    ack: Some(id),
                };
                let keeping = keep
                    .as_ref()
                    .map(|(user, most)| (user.as_str(), *most, &kept));
                let done = Done::Routed {
                    to: from,
                    id,
                    nick: to.to_string(),
                    keep: keep.clone(),
                };
                Cluster::route(self, to, message, done, keeping)
            }
            Routed::Opened { from, from_nick } => Cluster::route(
                self,
                to,
                NodeMessage::Opened {
                    n: node,
                    p: from.id,
                    f: from_nick,
                },
                Done::Nothing,
                None,
            ),
        }
    }

    /// Read from Redis on a task of its own; Redis unreachable: they stay kept for the next
    /// sign-in.
    fn take_directs(&self, user: &str, take: TakeDirects) {
        let link = Arc::clone(&self.link);
        let user = user.to_string();
        tokio::spawn(async move {
            let kept = super::nicks::take_kept(&link, &user)
                .await
                .unwrap_or_default();
            take(kept.into_iter().map(KeptDirect::into_said).collect());
        });
    }

    /// The room followed here, the join recorded in its stream, and the history (or the lines
    /// since the client's offset) read from it.
    fn join<'a>(
        &'a self,
        room: &'a str,
        pid: u64,
        nick: &'a str,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<Past, Refusal>> {
        Box::pin(async move {
            self.subscribe(room).await?;
            let joined = Cluster::join(self, room, pid, nick, options.history).await?;
            let mut lines = joined.lines;
            let mut recovered = None;
            if let Some(since) = &options.since {
                let epoch = Cluster::epoch(self);
                let from = Offset::parse(since).filter(|o| o.epoch == epoch);
                let caught = match from {
                    Some(from) => self
                        .lines_since(room, from.id, MAX_CATCH_UP)
                        .await?
                        .map(|all| all.into_iter().filter(|(id, _)| *id <= joined.id).collect()),
                    None => None,
                };
                recovered = Some(caught.is_some());
                if let Some(caught) = caught {
                    lines = caught;
                }
            }
            Ok(Past {
                lines: said_lines(lines),
                last: Some(joined.id),
                recovered,
                everywhere: Some(Everywhere {
                    node: self.link.node.clone(),
                    members: joined.members,
                    topic: joined.topic,
                }),
            })
        })
    }

    fn say(
        &self,
        room: &str,
        origin: &Participant,
        said: Said,
        id: Option<u64>,
        _: Kept,
    ) -> Result<Confirmed, Refusal> {
        let record = Record::Say {
            n: self.link.node.clone(),
            p: origin.id,
            f: said.from,
            t: said.text,
            a: said.action,
        };
        self.link.send(
            self.link
                .op("say", &[room, &record.to_json(), &self.link.node]),
            outcome(origin, id),
        )?;
        Ok(Confirmed::Later)
    }

    fn set_topic(
        &self,
        room: &str,
        origin: &Participant,
        by: &str,
        topic: Option<&str>,
        id: Option<u64>,
        _: Settled,
    ) -> Result<Confirmed, Refusal> {
        let record = Record::Topic {
            n: self.link.node.clone(),
            p: origin.id,
            f: by.to_string(),
            t: topic.map(str::to_string),
        };
        self.link.send(
            self.link.op(
                "topic",
                &[
                    room,
                    &record.to_json(),
                    topic.unwrap_or(""),
                    &self.link.node,
                ],
            ),
            outcome(origin, id),
        )?;
        Ok(Confirmed::Later)
    }

    /// Redis away: the reconciliation when it is back removes the member there.
    fn leave(&self, room: &str, pid: u64, nick: &str, dropped: bool) {
        let record = Record::Leave {
            n: self.link.node.clone(),
            p: pid,
            f: nick.to_string(),
            dropped,
            gone: false,
        };
        let pid = pid.to_string();
        let _ = self.link.send(
            self.link.op(
                "leave",
                &[room, &self.link.node, &pid, nick, &record.to_json()],
            ),
            Done::Nothing,
        );
    }

    fn tell_now(&self, _: Tell) {}

    fn tell_in_order(&self, _: Tell) {}

    /// A room's topic comes with its first join here (its seed).
    fn topic(&self, _: &str) -> Option<String> {
        None
    }

    fn room_emptied(&self, room: &str) {
        self.unsubscribe(room);
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Option<Vec<RoomInfo>>, Refusal>> {
        Box::pin(async move { Cluster::rooms(self).await.map(Some) })
    }

    fn older<'a>(
        &'a self,
        room: &'a str,
        before_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>> {
        Box::pin(async move { Ok(said_lines(Cluster::older(self, room, before_ms, n).await?)) })
    }

    fn newer<'a>(
        &'a self,
        room: &'a str,
        after_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>> {
        Box::pin(async move { Ok(said_lines(Cluster::newer(self, room, after_ms, n).await?)) })
    }

    /// The bot runs on one server at a time: the one holding its lease in Redis.
    fn hold_bot(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let link = &self.link;
            let timeout = self.config.node_timeout_ms.to_string();
            matches!(
                link.ask(link.op("lease", &[&link.node, &timeout])).await,
                Ok(redis::Value::Int(1))
            )
        })
    }

    fn bot_renewal(&self) -> Option<std::time::Duration> {
        Some(self.config.heartbeat())
    }

    /// This server's members leave every room at once (the others are told `NICK left`),
    /// rather than when its heartbeat lapses.
    fn depart(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let depart = self.link.op("depart", &[&self.link.node]);
            let _ =
                tokio::time::timeout(self.config.request_timeout(), self.link.ask(depart)).await;
        })
    }

    /// The engine's tasks stop.
    fn close(&self) {
        self.stopped.cancel();
    }
}
