//! What reaches an IRC client from the rest of ferry, in IRC's words: a room's lines and
//! changes (JOIN, PART, NICK, TOPIC), direct messages, and history on join.

use std::time::SystemTime;

use super::client::Client;
use super::line::Out;
use crate::services::chat::hub::{Delivery, RoomChange, RoomEvent, Said};

impl Client<'_> {
    /// One room event for `channel` (`#room`); the client's own are skipped (it was told when
    /// it acted).
    pub(super) fn room_event(&mut self, channel: &str, event: &RoomEvent, out: &mut Out) {
        if event.origin == self.participant.id {
            return;
        }
        // Counted as queued for the client: IRC output goes out in the session's next write.
        self.state.chat.counters.deliveries.inc();
        if let Some(said) = event.said() {
            // The same bytes for every IRC member that asked for the same tags: encoded once.
            let variant = usize::from(out.server_time);
            let bytes = event.encoded_for_door(variant, || {
                let mut once = Out {
                    server_time: out.server_time,
                    ..Out::default()
                };
                once.said(None, said.at, &said.from, channel, &said.text, said.action);
                once.bytes.into()
            });
            out.bytes.extend_from_slice(&bytes);
            return;
        }
        match event.change() {
            Some(RoomChange::Joined(nick)) => out.from(nick, "JOIN", &[channel]),
            Some(RoomChange::Left(nick)) => out.from(nick, "PART", &[channel]),
            Some(RoomChange::Dropped(nick)) => {
                out.from(nick, "PART", &[channel, "dropped: not reading"]);
            }
            Some(RoomChange::Gone(nick)) => {
                out.from(nick, "PART", &[channel, "their server stopped answering"]);
            }
            Some(change @ RoomChange::Engine { .. }) => {
                out.server("NOTICE", &[channel, &change.text()]);
            }
            Some(RoomChange::Renamed { old, new }) => {
                let told = (event.origin, new.clone());
                if self.last_rename.as_ref() != Some(&told) {
                    out.from(old, "NICK", &[new]);
                    self.last_rename = Some(told);
                }
            }
            Some(RoomChange::Topic { by, topic }) => {
                out.from(by, "TOPIC", &[channel, topic.as_deref().unwrap_or("")]);
            }
            None => {}
        }
    }

    /// Something in the client's inbox.
    pub(super) fn delivery(&mut self, delivery: Delivery, out: &mut Out) {
        match delivery {
            Delivery::Direct {
                from_nick,
                text,
                action,
                receipt,
                ..
            } => {
                out.said(
                    None,
                    SystemTime::now(),
                    &from_nick,
                    &self.nick,
                    &text,
                    action,
                );
                // Confirmed to the sender once written (see `Client::run`).
                self.receipts.extend(receipt);
            }
            Delivery::Kept(said) => out.said(
                None,
                said.at,
                &said.from,
                &self.nick,
                &said.text,
                said.action,
            ),
            Delivery::Notice(text) => out.server("NOTICE", &[&self.nick, &text]),
            Delivery::Opened { from_nick, .. } => out.server(
                "NOTICE",
                &[
                    &self.nick,
                    &format!("{from_nick} opened a direct conversation with you"),
                ],
            ),
            Delivery::Ack { .. } => {}
            Delivery::Refused(refusal)
            | Delivery::Recorded {
                refused: Some(refusal),
                ..
            } => {
                out.server("FAIL", &["PRIVMSG", "UNAVAILABLE", &refusal.message]);
            }
            Delivery::Recorded { refused: None, .. } => {}
            // The client's loop ends the session on it (`Client::run`).
            Delivery::Ended { .. } => {}
        }
    }

    /// A room's recent lines after a JOIN: in a `chathistory` batch when the client took
    /// `batch` (each line with its time when it took `server-time`), else as plain lines.
    pub(super) fn replay(&mut self, channel: &str, lines: &[Said], out: &mut Out) {
        if !lines.is_empty() {
            self.history_batch(channel, lines, out);
        }
    }

    /// `lines` in one `chathistory` batch (when the client took `batch`; an empty one too,
    /// which is how `CHATHISTORY` says "nothing").
    pub(super) fn history_batch(&mut self, channel: &str, lines: &[Said], out: &mut Out) {
        let id = self.caps.batch.then(|| {
            self.next_id += 1;
            format!("history{}", self.next_id)
        });
        if let Some(id) = &id {
            out.server("BATCH", &[&format!("+{id}"), "chathistory", channel]);
        }
        for said in lines {
            out.said(
                id.as_deref(),
                said.at,
                &said.from,
                channel,
                &said.text,
                said.action,
            );
        }
        if let Some(id) = &id {
            out.server("BATCH", &[&format!("-{id}")]);
        }
    }
}
