//! Pages of a room's past read from its stream, for scrollback (IRC's `CHATHISTORY`): the
//! stream holds changes beside lines, so a page reads a few records more than it shows.

use redis::Value;

use super::Cluster;
use super::record::{Record, StreamId};
use super::subscriber::parse_entry;
use crate::protocol::Refusal;

/// The room's stream key (as `engine.lua` names it).
fn log_key(room: &str) -> String {
    format!("ferry:room:{room}:log")
}

/// Records read per line asked for: joins, leaves and other changes share the stream.
const SCAN: usize = 4;

fn lines(answer: &Value) -> Vec<(StreamId, Record)> {
    match answer {
        Value::Array(entries) => entries
            .iter()
            .filter_map(parse_entry)
            .filter(|(_, r)| matches!(r, Record::Say { .. }))
            .collect(),
        _ => Vec::new(),
    }
}

impl Cluster {
    /// Up to `n` of the room's latest lines said before `before_ms`, oldest first.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn older(
        &self,
        room: &str,
        before_ms: u64,
        n: usize,
    ) -> Result<Vec<(StreamId, Record)>, Refusal> {
        let Some(last_ms) = before_ms.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(log_key(room))
            .arg(format!("{last_ms}-{}", u64::MAX))
            .arg("-")
            .arg("COUNT")
            .arg(n.saturating_mul(SCAN).saturating_add(16));
        let answer = self.link.ask(cmd).await?;
        let mut found: Vec<_> = lines(&answer).into_iter().take(n).collect();
        found.reverse();
        Ok(found)
    }

    /// Up to `n` of the room's earliest lines said after `after_ms`, oldest first.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn newer(
        &self,
        room: &str,
        after_ms: u64,
        n: usize,
    ) -> Result<Vec<(StreamId, Record)>, Refusal> {
        let Some(first_ms) = after_ms.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(log_key(room))
            .arg(format!("{first_ms}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(n.saturating_mul(SCAN).saturating_add(16));
        let answer = self.link.ask(cmd).await?;
        Ok(lines(&answer).into_iter().take(n).collect())
    }
}
