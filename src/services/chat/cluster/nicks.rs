//! Nicks across servers: claimed in one Redis hash (unique by what they look like), released,
//! renamed, found; and reaching whoever holds one, on their server, or keeping a direct
//! message for a signed-out user.

use redis::Value;

use super::link::{self, Link};
use super::record::{self, Record};
use super::{Cluster, text};
use crate::protocol::Refusal;
use crate::services::chat::names;

impl Cluster {
    /// Sends `message` to whoever holds `nick`, on their server; `done` learns whether someone
    /// did. With `keep` (the configured user `nick` names, the most kept for them, and the
    /// message as kept), a message no one holds the nick for is kept in Redis for that user.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub(super) fn route(
        &self,
        nick: &str,
        message: record::NodeMessage,
        done: link::Done,
        keep: Option<(&str, usize, &record::KeptDirect)>,
    ) -> Result<(), Refusal> {
        let (skeleton, json) = (names::skeleton(nick), message.to_json());
        let mut args = vec![skeleton.as_str(), json.as_str(), self.link.node.as_str()];
        let kept = keep.map(|(user, most, kept)| {
            (
                user.to_string(),
                most.to_string(),
                serde_json::to_string(kept).unwrap_or_default(),
            )
        });
        if let Some((user, most, json)) = &kept {
            args.extend([user.as_str(), most.as_str(), json.as_str()]);
        }
        self.link.send(self.link.op("route", &args), done)
    }

    /// Claims `nick` for participant `pid` across servers (`force` for the bot, whose lease
    /// decides).
    ///
    /// # Errors
    /// Someone on another server holds it (or one like it), or Redis is unreachable.
    pub async fn claim(&self, pid: u64, nick: &str, force: bool) -> Result<(), Refusal> {
        let answer = self
            .link
            .ask(self.link.op(
                "claim",
                &[
                    &self.link.node,
                    &pid.to_string(),
                    &names::skeleton(nick),
                    nick,
                    if force { "1" } else { "0" },
                ],
            ))
            .await?;
        match text(&answer) {
            Some(holder) => Err(super::names::nick_taken(nick, &holder)),
            None => Ok(()),
        }
    }

    /// Gives `nick` up (if `pid` still holds it).
    pub fn release(&self, pid: u64, nick: &str) {
        let _ = self.link.send(
            self.link.op(
                "release",
                &[&self.link.node, &pid.to_string(), &names::skeleton(nick)],
            ),
            link::Done::Nothing,
        );
    }

    /// Renames `old` to `new` for participant `pid`, in its `rooms`, everywhere.
    ///
    /// # Errors
    /// Someone on another server holds `new` (or one like it), or Redis is unreachable.
    pub async fn rename(
        &self,
        pid: u64,
        old: &str,
        new: &str,
        rooms: &[String],
    ) -> Result<(), Refusal> {
        let record = Record::Nick {
            n: self.link.node.clone(),
            p: pid,
            f: old.to_string(),
            t: new.to_string(),
        }
        .to_json();
        let (pid, old_skel, new_skel) =
            (pid.to_string(), names::skeleton(old), names::skeleton(new));
        let mut args: Vec<&str> = vec![
            &self.link.node,
            &pid,
            &old_skel,
            &new_skel,
            old,
            new,
            &record,
        ];
        args.extend(rooms.iter().map(String::as_str));
        let answer = self.link.ask(self.link.op("nick", &args)).await?;
        match text(&answer) {
            Some(holder) => Err(super::names::nick_taken(new, &holder)),
            None => Ok(()),
        }
    }

    /// Who holds `nick` anywhere (their nick as they spell it), if anyone.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn find(&self, nick: &str) -> Result<Option<String>, Refusal> {
        let answer = self
            .link
            .ask(self.link.op("find", &[&names::skeleton(nick)]))
            .await?;
        Ok(text(&answer).and_then(|held| held.splitn(3, ' ').nth(2).map(str::to_string)))
    }
}

/// Hands over, oldest first, and forgets the direct messages kept in Redis for `user`.
///
/// # Errors
/// Redis is unreachable (they stay kept).
pub(super) async fn take_kept(link: &Link, user: &str) -> Result<Vec<record::KeptDirect>, Refusal> {
    let answer = link.ask(link.op("take", &[user])).await?;
    Ok(match answer {
        Value::Array(items) => items
            .iter()
            .filter_map(text)
            .filter_map(|json| serde_json::from_str(&json).ok())
            .collect(),
        _ => Vec::new(),
    })
}
