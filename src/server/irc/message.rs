//! PRIVMSG and NOTICE: a line to a channel (a room) or a nick (a direct message), an action
//! (CTCP ACTION), and what is typed to a service name (answered by the server, reaching no one).

use std::time::SystemTime;

use super::client::Client;
use super::line::Out;
use super::numeric::*;
use crate::protocol::ErrorCode;

/// Targets one PRIVMSG may name (ISUPPORT MAXTARGETS).
const MAX_TARGETS: usize = 4;

/// What the server answers, in the service's name, to a message for NickServ and the like.
const SERVICE_ANSWER: &str = "ferry has no IRC services: you sign in when you connect, with SASL \
    PLAIN or PASS user:token. What you sent here reached no one.";

impl Client<'_> {
    /// PRIVMSG or NOTICE to channels and nicks; a NOTICE is never answered with an error.
    pub(super) fn message(&mut self, command: &str, p: &[&str], out: &mut Out) {
        let notice = command == "NOTICE";
        let (Some(targets), Some(text)) = (p.first(), p.get(1).filter(|t| !t.is_empty())) else {
            if !notice {
                match p.first() {
                    None => out.numeric(
                        ERR_NORECIPIENT,
                        &[&format!("No recipient given ({command})")],
                    ),
                    Some(_) => out.numeric(ERR_NOTEXTTOSEND, &["No text to send"]),
                }
            }
            return;
        };
        let (text, action) = match text.strip_prefix('\u{1}') {
            Some(ctcp) => match ctcp.strip_prefix("ACTION ") {
                Some(act) => (act.trim_end_matches('\u{1}'), true),
                // Other CTCP queries (VERSION, PING…) have no meaning in ferry.
                None => return,
            },
            None => (*text, false),
        };
        let max = self.state.chat.config.max_message_bytes;
        if text.len() > max {
            if !notice {
                out.numeric(
                    ERR_INPUTTOOLONG,
                    &[&format!(
                        "Message of {} bytes refused: the limit is {max} bytes",
                        text.len()
                    )],
                );
            }
            return;
        }
        for target in targets.split(',').take(MAX_TARGETS) {
            if target.starts_with('#') {
                let Some(channel) = self.channel(target) else {
                    if !notice {
                        out.numeric(
                            ERR_CANNOTSENDTOCHAN,
                            &[target, "Cannot send to channel: join it first"],
                        );
                    }
                    continue;
                };
                // An IRC client is not acked: it hears only of a line Redis did not take.
                let said = self.state.chat.say(
                    &channel.room,
                    &self.participant,
                    &self.nick,
                    text,
                    action,
                    None,
                );
                if let Err(refusal) = said {
                    if !notice {
                        out.server("FAIL", &[command, "UNAVAILABLE", &refusal.message]);
                    }
                    continue;
                }
            } else if let Some(service) = crate::services::chat::names::service_name(target) {
                // Nothing typed to a service name reaches a member (none may hold one): the
                // server answers in the service's name, and a NOTICE gets no answer.
                if !notice {
                    out.tagged(
                        None,
                        SystemTime::now(),
                        service,
                        "NOTICE",
                        &[&self.nick, SERVICE_ANSWER],
                    );
                }
                continue;
            } else {
                self.next_id += 1;
                let sent = self.state.chat.direct(
                    &self.participant,
                    &self.nick,
                    target,
                    text,
                    action,
                    self.next_id,
                );
                match sent {
                    Ok(()) => {}
                    Err(refusal) if refusal.code == ErrorCode::NotFound => {
                        if !notice {
                            out.numeric(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
                        }
                        continue;
                    }
                    Err(refusal) => {
                        if !notice {
                            out.server("FAIL", &[command, "UNAVAILABLE", &refusal.message]);
                        }
                        continue;
                    }
                }
            }
            if self.caps.echo_message {
                out.said_as(
                    command,
                    None,
                    SystemTime::now(),
                    &self.nick,
                    target,
                    text,
                    action,
                );
            }
        }
    }
}
