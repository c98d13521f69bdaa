//! Rooms in Redis: entering one (the join recorded in its stream, with its members, topic and
//! latest lines then), reading back the lines after an offset, and every room with members
//! anywhere.

use redis::Value;

use super::record::{Record, StreamId};
use super::{Cluster, internal, subscriber, text};
use crate::protocol::{ErrorCode, Refusal, RoomInfo};

/// What joining a room through the engine returned.
pub struct ClusterJoin {
    /// The join record's ID.
    pub id: StreamId,
    /// Members of the room then, everywhere.
    pub members: Vec<String>,
    /// Its topic then.
    pub topic: Option<String>,
    /// Lines before the join, oldest first, at most the history asked for.
    pub lines: Vec<(StreamId, Record)>,
}

impl Cluster {
    /// Enters `nick` (participant `pid`) in room `room` everywhere.
    ///
    /// # Errors
    /// Redis is unreachable, or another server's member holds the nick in the room.
    pub async fn join(
        &self,
        room: &str,
        pid: u64,
        nick: &str,
        history: usize,
    ) -> Result<ClusterJoin, Refusal> {
        let record = Record::Join {
            n: self.link.node.clone(),
            p: pid,
            f: nick.to_string(),
        };
        // Notices share the stream with lines: scan past some of them for the history.
        let scan = (history * 4 + 1).to_string();
        let answer = self
            .link
            .ask(self.link.op(
                "join",
                &[
                    room,
                    &self.link.node,
                    &pid.to_string(),
                    nick,
                    &record.to_json(),
                    &scan,
                ],
            ))
            .await?;
        let Value::Array(parts) = answer else {
            return Err(internal("join"));
        };
        if text(parts.first().unwrap_or(&Value::Nil)).as_deref() != Some("ok") {
            return Err(Refusal::new(
                ErrorCode::NickInUse,
                format!("the nick '{nick}' is already used in room '{room}'"),
            ));
        }
        let id = parts
            .get(1)
            .and_then(text)
            .and_then(|t| StreamId::parse(&t))
            .ok_or_else(|| internal("join"))?;
        let mut members: Vec<String> = match parts.get(2) {
            Some(Value::Array(m)) => m.iter().filter_map(text).collect(),
            _ => Vec::new(),
        };
        members.sort();
        let topic = parts.get(3).and_then(text).filter(|t| !t.is_empty());
        let mut lines: Vec<(StreamId, Record)> = match parts.get(4) {
            Some(Value::Array(entries)) => entries
                .iter()
                .filter_map(subscriber::parse_entry)
                .filter(|(_, r)| matches!(r, Record::Say { .. }))
                .take(history)
                .collect(),
            _ => Vec::new(),
        };
        lines.reverse();
        Ok(ClusterJoin {
            id,
            members,
            topic,
            lines,
        })
    }

    /// The lines of room `room` after `after`; `None` when some of them are no longer kept, or
    /// when `max` records or more follow it.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn lines_since(
        &self,
        room: &str,
        after: StreamId,
        max: usize,
    ) -> Result<Option<Vec<(StreamId, Record)>>, Refusal> {
        let answer = self
            .link
            .ask(
                self.link
                    .op("since", &[room, &after.to_string(), &max.to_string()]),
            )
            .await?;
        let (oldest, entries) = subscriber::parse_since(&answer);
        if entries.len() >= max {
            return Ok(None);
        }
        // XTRIM only ever removes the oldest entries: when the oldest kept one is not newer
        // than `after`, everything after `after` is still there. Otherwise some of it may
        // have been trimmed (or the stream expired), and the client is told so.
        let complete = oldest.is_some_and(|oldest| oldest <= after);
        if !complete {
            return Ok(None);
        }
        Ok(Some(
            entries
                .into_iter()
                .filter(|(_, r)| matches!(r, Record::Say { .. }))
                .collect(),
        ))
    }

    /// Every room with members anywhere, sorted by name.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, Refusal> {
        let answer = self.link.ask(self.link.op("rooms", &[])).await?;
        let Value::Array(rows) = answer else {
            return Ok(Vec::new());
        };
        let mut rooms: Vec<RoomInfo> = rows
            .iter()
            .filter_map(|row| match row {
                Value::Array(cols) => Some(RoomInfo {
                    room: text(cols.first()?)?,
                    members: match cols.get(1)? {
                        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                        _ => 0,
                    },
                    topic: cols.get(2).and_then(text).filter(|t| !t.is_empty()),
                }),
                _ => None,
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        Ok(rooms)
    }
}
