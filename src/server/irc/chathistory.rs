//! `CHATHISTORY` (IRCv3 `draft/chathistory`): an IRC client pages back through a room's past,
//! as irssi, WeeChat and The Lounge do to fill their scrollback. Messages are referred to by
//! time (`timestamp=`; `MSGREFTYPES=timestamp`), pages are at most [`MAX_PAGE`] lines, and
//! each answer is one `chathistory` batch, empty when nothing matches (as the spec asks).
//! A client reads only rooms it is in, as a native member does.

use super::client::Client;
use super::line::Out;
use super::numeric::ERR_NEEDMOREPARAMS;
use crate::services::chat::hub::Page;

/// Lines one `CHATHISTORY` answers at most (ISUPPORT `CHATHISTORY=`).
pub(super) const MAX_PAGE: usize = 100;

/// A message reference as a time in ms since the Unix epoch; `*` is `None` (LATEST only).
enum Reference {
    Any,
    At(u64),
}

fn reference(text: &str) -> Result<Reference, &'static str> {
    if text == "*" {
        return Ok(Reference::Any);
    }
    let Some(stamp) = text.strip_prefix("timestamp=") else {
        return Err(if text.starts_with("msgid=") {
            "only timestamp= references are supported (MSGREFTYPES=timestamp)"
        } else {
            "a reference is timestamp=YYYY-MM-DDThh:mm:ss.sssZ"
        });
    };
    let at =
        humantime::parse_rfc3339(stamp).map_err(|_| "a timestamp is YYYY-MM-DDThh:mm:ss.sssZ")?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "a timestamp before 1970")?
        .as_millis();
    Ok(Reference::At(u64::try_from(ms).unwrap_or(u64::MAX)))
}

impl Client<'_> {
    /// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN #room REF [REF] LIMIT`.
    pub(super) async fn chathistory(&mut self, p: &[&str], out: &mut Out) {
        let Some(sub) = p.first().map(|s| s.to_ascii_uppercase()) else {
            return out.numeric(
                ERR_NEEDMOREPARAMS,
                &["CHATHISTORY", "Not enough parameters"],
            );
        };
        let needed = if sub == "BETWEEN" { 5 } else { 4 };
        if !matches!(
            sub.as_str(),
            "LATEST" | "BEFORE" | "AFTER" | "AROUND" | "BETWEEN"
        ) {
            return out.server(
                "FAIL",
                &["CHATHISTORY", "UNKNOWN_COMMAND", &sub, "Unknown subcommand"],
            );
        }
        if p.len() < needed {
            return out.server(
                "FAIL",
                &[
                    "CHATHISTORY",
                    "NEED_MORE_PARAMS",
                    &sub,
                    "Missing parameters",
                ],
            );
        }
        let target = p[1];
        let invalid = |out: &mut Out, why: &str| {
            out.server(
                "FAIL",
                &["CHATHISTORY", "INVALID_PARAMS", &sub, target, why],
            );
        };
        let limit = match p[needed - 1].parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_PAGE),
            _ => return invalid(out, "the limit is a positive number"),
        };
        let first = match reference(p[2]) {
            Ok(r) => r,
            Err(why) => return invalid(out, why),
        };
        let page = match (sub.as_str(), first) {
            ("LATEST", Reference::Any) => Page::Latest(limit),
            ("LATEST", Reference::At(at)) => Page::LatestAfter(at, limit),
            (_, Reference::Any) => return invalid(out, "* is only for LATEST"),
            ("BEFORE", Reference::At(at)) => Page::Before(at, limit),
            ("AFTER", Reference::At(at)) => Page::After(at, limit),
            ("AROUND", Reference::At(at)) => Page::Around(at, limit),
            (_, Reference::At(from)) => match reference(p[3]) {
                Ok(Reference::At(to)) => Page::Between(from, to, limit),
                Ok(Reference::Any) => return invalid(out, "* is only for LATEST"),
                Err(why) => return invalid(out, why),
            },
        };
        let Some(channel) = self.channel(target) else {
            return out.server(
                "FAIL",
                &[
                    "CHATHISTORY",
                    "INVALID_TARGET",
                    &sub,
                    target,
                    "Join the channel to read its history",
                ],
            );
        };
        let room = channel.room.name.clone();
        let lines = match self.state.chat.scrollback(&room, page).await {
            Ok(lines) => lines,
            Err(refusal) => {
                return out.server(
                    "FAIL",
                    &[
                        "CHATHISTORY",
                        "MESSAGE_ERROR",
                        &sub,
                        target,
                        &refusal.message,
                    ],
                );
            }
        };
        self.history_batch(target, &lines, out);
    }
}
