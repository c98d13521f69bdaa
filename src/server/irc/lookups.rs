//! `ISON` and `USERHOST`: who of a list of nicks is online, asked in bulk. irssi's notify list
//! polls `ISON`; `USERHOST` is how clients learn their own mask. Both answer from the hub's
//! directory, as `WHOIS` does, so a nick online through any door (or, in a cluster, on any
//! server) counts.

use super::client::Client;
use super::line::{Out, SERVER};
use super::numeric::{ERR_NEEDMOREPARAMS, RPL_ISON, RPL_USERHOST};

/// Nicks one `ISON` looks up, at most: each is a directory look-up (a Redis round trip in a
/// cluster), and a line of 512 bytes holds about this many short nicks anyway.
const MAX_ISON: usize = 64;
/// Nicks one `USERHOST` answers, as the protocol says.
const MAX_USERHOST: usize = 5;

impl Client<'_> {
    /// `ISON nick…` (the nicks as separate parameters, or space-separated in one): 303 with
    /// those online, spelled as their owners chose.
    pub(super) async fn ison(&self, params: &[&str], out: &mut Out) {
        let asked: Vec<&str> = params
            .iter()
            .flat_map(|p| p.split_whitespace())
            .take(MAX_ISON)
            .collect();
        if asked.is_empty() {
            return out.numeric(ERR_NEEDMOREPARAMS, &["ISON", "Not enough parameters"]);
        }
        let mut online = Vec::new();
        for nick in asked {
            if let Ok(found) = self.state.chat.find(nick).await {
                online.push(found);
            }
        }
        out.numeric(RPL_ISON, &[&online.join(" ")]);
    }

    /// `USERHOST nick…` (up to five): 302 with `nick=+nick@ferry` for each online, `-` in
    /// place of `+` for this client when it is away (others' away is not shared).
    pub(super) async fn userhost(&self, params: &[&str], out: &mut Out) {
        let asked: Vec<&str> = params
            .iter()
            .flat_map(|p| p.split_whitespace())
            .take(MAX_USERHOST)
            .collect();
        if asked.is_empty() {
            return out.numeric(ERR_NEEDMOREPARAMS, &["USERHOST", "Not enough parameters"]);
        }
        let mut replies = Vec::new();
        for nick in asked {
            if let Ok(found) = self.state.chat.find(nick).await {
                let away = found == self.nick && self.away.is_some();
                let mark = if away { '-' } else { '+' };
                replies.push(format!("{found}={mark}{found}@{SERVER}"));
            }
        }
        out.numeric(RPL_USERHOST, &[&replies.join(" ")]);
    }
}
