//! The commands of a registered client, each turned into what the chat hub does for a native
//! member: JOIN/PART are joining and leaving rooms, PRIVMSG/NOTICE are lines and direct
//! messages, NICK a rename, TOPIC a room's topic; NAMES, WHO, WHOIS, LIST and MOTD answer from
//! the hub (ISON and USERHOST too, in `lookups`). Replies and errors are the numerics the Modern IRC Client Protocol gives.

use super::client::{Channel, Client, End};
use super::line::{self, Out, SERVER};
use super::numeric::*;
use super::registration::valid_nick;
use crate::protocol::ErrorCode;
use crate::services::chat::hub::JoinOptions;

/// Channels one client may be in at once.
const MAX_CHANNELS: usize = 32;
/// Bytes of nicks in one 353 line, well inside 512 with the rest of the line.
const NAMES_BYTES: usize = 400;

impl Client<'_> {
    /// One line from the client.
    pub(super) async fn line(&mut self, text: &str, out: &mut Out) -> Option<End> {
        let command = line::parse(text)?;
        let p = &command.params;
        let first = p.first().copied();
        match command.name.as_str() {
            "PRIVMSG" | "NOTICE" => self.message(&command.name, p, out),
            "JOIN" => match first {
                Some(list) => self.join(list, out).await,
                None => out.numeric(ERR_NEEDMOREPARAMS, &["JOIN", "Not enough parameters"]),
            },
            "PART" => match first {
                Some(list) => self.part(list, p.get(1).copied(), out),
                None => out.numeric(ERR_NEEDMOREPARAMS, &["PART", "Not enough parameters"]),
            },
            "NICK" => match first {
                Some(nick) if !nick.is_empty() => self.rename(nick, out).await,
                _ => out.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]),
            },
            "NAMES" => {
                for channel in first.unwrap_or("").split(',').filter(|c| !c.is_empty()) {
                    self.names(channel, out);
                }
            }
            "WHO" => self.who(first.unwrap_or("*"), out).await,
            "WHOIS" => match p.last() {
                Some(nick) => self.whois(nick, out).await,
                None => out.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]),
            },
            "LIST" => self.list(out).await,
            "ISON" => self.ison(p, out).await,
            "CHATHISTORY" => self.chathistory(p, out).await,
            "USERHOST" => self.userhost(p, out).await,
            "TOPIC" => match first {
                Some(channel) => self.topic(channel, p.get(1).copied(), out),
                None => out.numeric(ERR_NEEDMOREPARAMS, &["TOPIC", "Not enough parameters"]),
            },
            "MOTD" => motd(out),
            "AWAY" => match first.filter(|m| !m.is_empty()) {
                Some(message) => {
                    self.away = Some(message.to_string());
                    out.numeric(RPL_NOWAWAY, &["You have been marked as being away"]);
                }
                None => {
                    self.away = None;
                    out.numeric(RPL_UNAWAY, &["You are no longer marked as being away"]);
                }
            },
            "MODE" => self.mode(p, out),
            "PING" => out.server("PONG", &[SERVER, first.unwrap_or("")]),
            "CAP" => self.cap(p, out),
            "PONG" | "TAGMSG" => {}
            "USER" | "PASS" => out.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]),
            "AUTHENTICATE" => {
                out.numeric(
                    ERR_SASLALREADY,
                    &["You have already authenticated using SASL"],
                );
            }
            "QUIT" => return Some(End::Quit),
            other => out.numeric(ERR_UNKNOWNCOMMAND, &[other, "Unknown command"]),
        }
        None
    }

    pub(super) fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    async fn join(&mut self, list: &str, out: &mut Out) {
        if list == "0" {
            let all: Vec<String> = self.channels.iter().map(|c| c.name.clone()).collect();
            return self.part(&all.join(","), None, out);
        }
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let Some(room) = name.strip_prefix('#') else {
                out.numeric(
                    ERR_NOSUCHCHANNEL,
                    &[name, "No such channel: channel names start with #"],
                );
                continue;
            };
            if self.channel(name).is_some() {
                continue;
            }
            if self.channels.len() >= MAX_CHANNELS {
                out.numeric(405, &[name, "You have joined too many channels"]);
                continue;
            }
            let options = JoinOptions {
                history: self.state.chat.config.history_messages,
                since: None,
            };
            match self
                .state
                .chat
                .join_room(room, &self.participant, &self.nick, options)
                .await
            {
                Ok(joined) => {
                    out.from(&self.nick, "JOIN", &[name]);
                    if let Some(topic) = joined.room.topic() {
                        out.numeric(RPL_TOPIC, &[name, &topic]);
                    }
                    names_reply(name, &joined.members, out);
                    self.replay(name, &joined.lines, out);
                    self.channels.push(Channel {
                        name: name.to_string(),
                        room: joined.room,
                        events: joined.events,
                        mark: joined.mark,
                    });
                }
                Err(refusal) => {
                    let code = if refusal.code == ErrorCode::ServerBusy {
                        405
                    } else {
                        ERR_NOSUCHCHANNEL
                    };
                    out.numeric(code, &[name, &refusal.message]);
                }
            }
        }
    }

    fn part(&mut self, list: &str, reason: Option<&str>, out: &mut Out) {
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let Some(at) = self.channels.iter().position(|c| c.name == name) else {
                out.numeric(ERR_NOTONCHANNEL, &[name, "You're not on that channel"]);
                continue;
            };
            let channel = self.channels.remove(at);
            self.state
                .chat
                .leave_room(&channel.room, &self.participant, &self.nick, false);
            match reason {
                Some(reason) => out.from(&self.nick, "PART", &[name, reason]),
                None => out.from(&self.nick, "PART", &[name]),
            }
        }
    }

    async fn rename(&mut self, new: &str, out: &mut Out) {
        if new == self.nick {
            return;
        }
        if let Err(why) = valid_nick(new, self.state) {
            return out.numeric(ERR_ERRONEUSNICKNAME, &[new, &why]);
        }
        let rooms = self.channels.iter().map(|c| &c.room);
        let renamed = self
            .state
            .chat
            .rename(
                &self.participant,
                rooms,
                &self.nick,
                new,
                self.identity.user.as_deref(),
            )
            .await;
        match renamed {
            Ok(()) => {
                out.from(&self.nick, "NICK", &[new]);
                self.nick = new.to_string();
                out.nick = new.to_string();
            }
            Err(refusal) if refusal.code == ErrorCode::NickInUse => {
                out.numeric(ERR_NICKNAMEINUSE, &[new, &refusal.message]);
            }
            Err(refusal) => out.numeric(ERR_ERRONEUSNICKNAME, &[new, &refusal.message]),
        }
    }

    fn names(&self, name: &str, out: &mut Out) {
        match self.room_named(name) {
            Some(nicks) => names_reply(name, &nicks, out),
            None => out.numeric(RPL_ENDOFNAMES, &[name, "End of /NAMES list"]),
        }
    }

    /// The members of `#room`, if it exists (joined or not: rooms are public in ferry).
    fn room_named(&self, name: &str) -> Option<Vec<String>> {
        if let Some(channel) = self.channel(name) {
            return Some(channel.room.nicks());
        }
        self.state.chat.nicks_in(name.strip_prefix('#')?)
    }

    async fn who(&self, mask: &str, out: &mut Out) {
        let (channel, nicks) = if mask.starts_with('#') {
            (mask, self.room_named(mask).unwrap_or_default())
        } else if let Ok(nick) = self.state.chat.find(mask).await {
            ("*", vec![nick])
        } else {
            ("*", Vec::new())
        };
        for nick in &nicks {
            out.numeric(
                RPL_WHOREPLY,
                &[
                    channel,
                    nick,
                    SERVER,
                    SERVER,
                    nick,
                    "H",
                    &format!("0 {nick}"),
                ],
            );
        }
        out.numeric(RPL_ENDOFWHO, &[mask, "End of WHO list"]);
    }

    async fn whois(&self, nick: &str, out: &mut Out) {
        if self.state.chat.find(nick).await.is_err() {
            out.numeric(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
        } else {
            out.numeric(RPL_WHOISUSER, &[nick, nick, SERVER, "*", nick]);
            out.numeric(RPL_WHOISSERVER, &[nick, SERVER, "ferry"]);
            if nick == self.nick {
                let channels: Vec<String> = self.channels.iter().map(|c| c.name.clone()).collect();
                if !channels.is_empty() {
                    out.numeric(RPL_WHOISCHANNELS, &[nick, &channels.join(" ")]);
                }
                if let Some(away) = &self.away {
                    out.numeric(RPL_AWAY, &[nick, away]);
                }
            }
        }
        out.numeric(RPL_ENDOFWHOIS, &[nick, "End of /WHOIS list"]);
    }

    async fn list(&self, out: &mut Out) {
        out.numeric(RPL_LISTSTART, &["Channel", "Users  Name"]);
        for info in self.state.chat.list_rooms().await.unwrap_or_default() {
            out.numeric(
                RPL_LIST,
                &[
                    &format!("#{}", info.room),
                    &info.members.to_string(),
                    info.topic.as_deref().unwrap_or(""),
                ],
            );
        }
        out.numeric(RPL_LISTEND, &["End of /LIST"]);
    }

    fn topic(&mut self, name: &str, topic: Option<&str>, out: &mut Out) {
        let Some(channel) = self.channel(name) else {
            return out.numeric(ERR_NOTONCHANNEL, &[name, "You're not on that channel"]);
        };
        match topic {
            None => match channel.room.topic() {
                Some(topic) => out.numeric(RPL_TOPIC, &[name, &topic]),
                None => out.numeric(RPL_NOTOPIC, &[name, "No topic is set"]),
            },
            Some(topic) => {
                let max = self.state.chat.config.max_message_bytes;
                if topic.len() > max {
                    return out.numeric(
                        ERR_INPUTTOOLONG,
                        &[&format!("A topic is at most {max} bytes")],
                    );
                }
                let set = self.state.chat.set_topic(
                    &channel.room,
                    &self.participant,
                    &self.nick,
                    topic.trim(),
                    None,
                );
                match set {
                    Ok(_) => out.from(&self.nick, "TOPIC", &[name, topic.trim()]),
                    Err(refusal) => out.server("FAIL", &["TOPIC", "UNAVAILABLE", &refusal.message]),
                }
            }
        }
    }

    /// Modes: ferry has none. Queries are answered empty; changes to a channel are refused.
    fn mode(&self, p: &[&str], out: &mut Out) {
        match p {
            [] => out.numeric(ERR_NEEDMOREPARAMS, &["MODE", "Not enough parameters"]),
            [target, ..] if !target.starts_with('#') => {
                if *target == self.nick {
                    out.numeric(RPL_UMODEIS, &["+"]);
                } else {
                    out.numeric(
                        ERR_UMODEUNKNOWNFLAG,
                        &["Cannot change mode for other users"],
                    );
                }
            }
            [channel] => out.numeric(RPL_CHANNELMODEIS, &[channel, "+"]),
            [channel, "b" | "+b", ..] => out.numeric(368, &[channel, "End of channel ban list"]),
            [channel, ..] => out.numeric(
                ERR_CHANOPRIVSNEEDED,
                &[channel, "ferry rooms have no modes"],
            ),
        }
    }

    fn cap(&mut self, p: &[&str], out: &mut Out) {
        match p.first().map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("LS") => out.server("CAP", &[&self.nick, "LS", super::caps::OFFERED]),
            Some("LIST") => out.server("CAP", &[&self.nick, "LIST", &self.caps.list()]),
            Some("REQ") => {
                let list = p.get(1).copied().unwrap_or("");
                let verdict = if self.caps.request(list) {
                    "ACK"
                } else {
                    "NAK"
                };
                out.server_time = self.caps.server_time;
                out.batch = self.caps.batch;
                out.server("CAP", &[&self.nick, verdict, list]);
            }
            Some("END") => {}
            _ => out.numeric(
                410,
                &[p.first().copied().unwrap_or(""), "Invalid CAP command"],
            ),
        }
    }
}

/// 353 lines (as many as the nicks need, each within 512 bytes) and 366.
fn names_reply(channel: &str, nicks: &[String], out: &mut Out) {
    // `:ferry 353 ME = #CHANNEL :` and CR-LF around the nicks.
    let overhead = 1 + SERVER.len() + 5 + out.nick.len() + 3 + channel.len() + 2 + 2;
    let budget = line::LINE_BYTES.saturating_sub(overhead).min(NAMES_BYTES);
    let mut line = String::new();
    for nick in nicks {
        if !line.is_empty() && line.len() + nick.len() + 1 > budget {
            out.numeric(RPL_NAMREPLY, &["=", channel, &line]);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(nick);
    }
    if !line.is_empty() {
        out.numeric(RPL_NAMREPLY, &["=", channel, &line]);
    }
    out.numeric(RPL_ENDOFNAMES, &[channel, "End of /NAMES list"]);
}

/// The message of the day.
pub(super) fn motd(out: &mut Out) {
    out.numeric(
        RPL_MOTDSTART,
        &[&format!("- {SERVER} Message of the day -")],
    );
    for text in [
        "- #ROOM is ferry's room ROOM: CLI, Python, web and IRC members meet there.",
        "- /msg babyshen 我 and the bot answers 我好.",
    ] {
        out.numeric(RPL_MOTD, &[text]);
    }
    out.numeric(RPL_ENDOFMOTD, &["End of /MOTD command."]);
}
