//! A running chat: input lines become requests (or local commands), and what the server sends
//! is shown, each request matched to its answer by id.

use std::collections::HashMap;
use std::process::ExitCode;

use tokio::sync::mpsc;

use super::Input;
use super::printer::Printer;
use ferry::client::chat::{ChatReceiver, ChatSender};
use ferry::protocol::{
    ChatAck, ChatJoined, ChatMembers, ChatMessage, ChatNotice, ChatRooms, Goodbye, Message, Refusal,
};

/// What a request awaiting its answer was, to say what became of it.
pub(super) enum Asked {
    /// A line (or an action) for the room: echoed with the nick once the server took it.
    Said { text: String, action: bool },
    /// A direct message (`/msg`): echoed with its recipient once the server took it.
    Direct { to: String, text: String },
    /// A new nick: confirmed once taken.
    Nick(String),
    /// `/topic` without text: the answer shows the topic.
    Topic,
    /// `/topic TEXT`: confirmed once set.
    TopicSet(String),
    /// Anything else.
    Other,
}

/// The running chat: what was sent and not yet confirmed, and how to print.
pub(super) struct Session {
    pub(super) sender: ChatSender,
    pub(super) printer: Printer,
    /// The nick the server knows us by.
    pub(super) nick: String,
    /// The room we are in (none in a direct conversation).
    pub(super) room: Option<String>,
    /// Requests awaiting `chat_ack`, `chat_members`, `chat_rooms` or an `error`, by id.
    pub(super) pending: HashMap<u64, Asked>,
    /// `/join`s awaiting `chat_joined` or an error.
    pub(super) pending_joins: usize,
    /// Lines the server refused.
    pub(super) failures: usize,
    /// History lines still to come after `chat_joined` (its `replayed`): after the last, a
    /// marker says that live lines follow.
    pub(super) replay_left: u32,
}

impl Session {
    pub(super) async fn run(
        mut self,
        mut receiver: ChatReceiver,
        mut inputs: mpsc::Receiver<Input>,
    ) -> anyhow::Result<ExitCode> {
        let mut input_done = false;
        let mut quit = false;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            // Leaving waits for what was asked and for the history `chat_joined` promised, so
            // `printf 'q\n' | ferry chat --room R` prints the room's recent lines whole.
            let answered = self.pending.is_empty() && self.pending_joins == 0;
            if input_done && answered && self.replay_left == 0 {
                break;
            }
            tokio::select! {
                input = inputs.recv(), if !input_done => match input {
                    Some(Input::Line(line)) => {
                        quit = self.line(&line).await?;
                        input_done = quit;
                    }
                    Some(Input::End) | None => input_done = true,
                },
                message = receiver.next() => match message? {
                    Some(message) => self.incoming(message)?,
                    None => anyhow::bail!("the server closed the connection"),
                },
                _ = &mut interrupted => break,
            }
        }
        let _ = self.sender.leave().await;
        let _ = self.sender.close().await;
        self.printer.finish();
        // Leaving on purpose is success whatever was refused on the way; a script that fed
        // lines learns from the status whether all of them went through.
        Ok(if quit || self.failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// Sends one input line; returns whether the user asked to leave.
    async fn line(&mut self, line: &str) -> anyhow::Result<bool> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(false);
        }
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let (id, asked) = match command {
            _ if is_leave(line) => return Ok(true),
            "/help" => {
                for help in HELP {
                    self.printer.err(help);
                }
                return Ok(false);
            }
            "/who" => (self.sender.who().await?, Asked::Other),
            "/list" => (self.sender.list().await?, Asked::Other),
            "/me" if !rest.is_empty() => (
                self.sender.act(rest).await?,
                Asked::Said {
                    text: rest.to_string(),
                    action: true,
                },
            ),
            "/topic" if rest.is_empty() => (self.sender.topic(None).await?, Asked::Topic),
            "/topic" => (
                self.sender.topic(Some(rest)).await?,
                Asked::TopicSet(rest.to_string()),
            ),
            "/nick" if !rest.is_empty() => {
                (self.sender.nick(rest).await?, Asked::Nick(rest.to_string()))
            }
            "/join" if !rest.is_empty() => {
                self.sender.join(rest).await?;
                self.pending_joins += 1;
                return Ok(false);
            }
            "/msg" => match rest.split_once(' ') {
                Some((to, text)) if !text.trim().is_empty() => (
                    self.sender.direct(to, text.trim()).await?,
                    Asked::Direct {
                        to: to.to_string(),
                        text: text.trim().to_string(),
                    },
                ),
                _ => {
                    self.printer.err("usage: /msg NICK TEXT");
                    return Ok(false);
                }
            },
            c if c.starts_with('/') => {
                self.printer
                    .err(&format!("unknown command '{c}': /help lists the commands"));
                return Ok(false);
            }
            _ => (
                self.sender.say(line).await?,
                Asked::Said {
                    text: line.to_string(),
                    action: false,
                },
            ),
        };
        self.pending.insert(id, asked);
        Ok(false)
    }

    /// Where a line is shown: `[room]`, or `[direct]`.
    fn place(room: Option<&String>) -> String {
        room.map_or_else(|| "[direct]".to_string(), |r| format!("[{r}]"))
    }

    fn incoming(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::ChatMessage(ChatMessage {
                room,
                from,
                text,
                action,
                history,
                at,
                ..
            }) => {
                let place = Self::place(room.as_ref());
                let earlier = match (history, at.as_deref()) {
                    (false, _) => String::new(),
                    (true, Some(at)) => format!(" ({})", when(at)),
                    (true, None) => " (earlier)".to_string(),
                };
                let said = if action {
                    format!("* {from} {text}")
                } else {
                    format!("{from}: {text}")
                };
                self.printer.out(&format!("{place}{earlier} {said}"));
                if history && self.replay_left > 0 {
                    self.replay_left -= 1;
                    if self.replay_left == 0 {
                        self.printer.err("--- history above, live from here ---");
                    }
                }
            }
            Message::ChatNotice(ChatNotice { room, text }) => {
                let place = room.map_or_else(|| "[direct]".to_string(), |r| format!("[{r}]"));
                self.printer.out(&format!("{place} * {text}"));
            }
            Message::ChatAck(ChatAck { id }) => match self.pending.remove(&id) {
                // Our own line, as the room saw it (on a terminal; a pipe has what it sent).
                Some(Asked::Said { text, action }) if self.printer.is_terminal() => {
                    let place = Self::place(self.room.as_ref());
                    let said = if action {
                        format!("* {} {text}", self.nick)
                    } else {
                        format!("{}: {text}", self.nick)
                    };
                    self.printer.out(&format!("{place} {said}"));
                }
                Some(Asked::Direct { to, text }) if self.printer.is_terminal() => {
                    self.printer
                        .out(&format!("[-> {to}] {}: {text}", self.nick));
                }
                Some(Asked::TopicSet(topic)) => {
                    let place = Self::place(self.room.as_ref());
                    self.printer.out(&format!("{place} topic set: {topic}"));
                }
                Some(Asked::Nick(nick)) => {
                    self.printer.err(&format!("you are now known as {nick}"));
                    self.nick = nick;
                }
                _ => {}
            },
            Message::ChatRooms(ChatRooms { id, rooms }) => {
                let asked = self.pending.remove(&id);
                if matches!(asked, Some(Asked::Topic)) {
                    let topic = rooms.first().and_then(|r| r.topic.clone());
                    let place = Self::place(self.room.as_ref());
                    match topic {
                        Some(topic) => self.printer.out(&format!("{place} topic: {topic}")),
                        None => self.printer.out(&format!("{place} no topic is set")),
                    }
                } else if rooms.is_empty() {
                    self.printer.out("no rooms");
                } else {
                    for room in rooms {
                        let topic = room.topic.map(|t| format!(": {t}")).unwrap_or_default();
                        self.printer
                            .out(&format!("[{}] {} here{topic}", room.room, room.members));
                    }
                }
            }
            Message::ChatMembers(ChatMembers { id, room, nicks }) => {
                self.pending.remove(&id);
                let place = if room.is_empty() {
                    "direct".to_string()
                } else {
                    room
                };
                self.printer
                    .out(&format!("[{place}] members: {}", nicks.join(", ")));
            }
            Message::ChatJoined(ChatJoined {
                room,
                nick,
                members,
                topic,
                replayed,
                ..
            }) => {
                self.pending_joins = self.pending_joins.saturating_sub(1);
                self.replay_left = replayed.unwrap_or(0);
                let name = room.clone().unwrap_or_default();
                self.printer.err(&format!(
                    "now in room {name} as {nick}; here: {}",
                    members.join(", ")
                ));
                if let Some(topic) = topic {
                    self.printer.err(&format!("topic: {topic}"));
                }
                self.room = room;
                self.nick = nick;
            }
            Message::Error(Refusal { message, id, .. }) => {
                self.failures += 1;
                let lost = match id {
                    Some(id) => self.pending.remove(&id),
                    None => {
                        self.pending_joins = self.pending_joins.saturating_sub(1);
                        None
                    }
                };
                match lost {
                    // On a terminal the typed line was erased for its echo: say what was lost.
                    Some(Asked::Said { text, .. } | Asked::Direct { text, .. })
                        if self.printer.is_terminal() =>
                    {
                        self.printer.err(&format!("not sent: {text}: {message}"));
                    }
                    _ => self.printer.err(&message),
                }
            }
            Message::Goodbye(Goodbye { reason }) => {
                anyhow::bail!("server closed the session: {reason}")
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether the server's confirmation of an input line shows it again (a line, `/me`, `/msg`),
/// so the typed copy may go from a terminal.
pub(super) fn echoed_on_ack(line: &str) -> bool {
    let command = line.split_whitespace().next().unwrap_or_default();
    !line.trim().is_empty()
        && !is_leave(line)
        && (!command.starts_with('/') || matches!(command, "/me" | "/msg"))
}

/// A history line's time, `2026-12-07T06:45:00.123Z` as `2026-12-07 06:45 UTC`; what does not
/// look like that is shown as it came (the printer escapes it).
fn when(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(date), Some(time)) if at.as_bytes().get(10) == Some(&b'T') => {
            format!("{date} {time} UTC")
        }
        _ => at.to_string(),
    }
}

/// Whether an input line asks to leave: `q`, or `/quit`, `/part` or `/exit` (with or without
/// a reason).
pub(super) fn is_leave(line: &str) -> bool {
    let line = line.trim();
    let command = line.split_whitespace().next().unwrap_or_default();
    line == "q" || matches!(command, "/quit" | "/part" | "/exit")
}

/// What `/help` says.
const HELP: [&str; 10] = [
    "TEXT            say TEXT in the room (or to your partner)",
    "/me ACTION      act: shown as '* you ACTION'",
    "/msg NICK TEXT  a direct message to NICK",
    "/who            who is in the room",
    "/list           the rooms, how many are in each, their topics",
    "/join ROOM      move to another room",
    "/topic [TEXT]   show the room's topic, or set it",
    "/nick NEW       change your nick",
    "/part, /quit, q leave",
    "/help           this list",
];
