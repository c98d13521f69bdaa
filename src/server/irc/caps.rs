//! IRCv3 capabilities: what the door offers, and what a client took (`CAP LS 302`, `REQ`,
//! `LIST`, `END`).

/// The capabilities offered, as `CAP LS` lists them.
pub(super) const OFFERED: &str =
    "sasl=PLAIN server-time echo-message message-tags batch draft/chathistory";

/// What a client asked for and was granted.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Caps {
    pub(super) sasl: bool,
    pub(super) server_time: bool,
    pub(super) echo_message: bool,
    pub(super) message_tags: bool,
    pub(super) batch: bool,
    /// `draft/chathistory`: the client may page back with `CHATHISTORY`.
    pub(super) chathistory: bool,
}

impl Caps {
    /// Applies a `CAP REQ` list (`-name` takes one back): all or nothing, as the spec asks.
    /// Returns whether it was granted.
    pub(super) fn request(&mut self, list: &str) -> bool {
        let mut next = *self;
        for cap in list.split_whitespace() {
            let (on, name) = match cap.strip_prefix('-') {
                Some(name) => (false, name),
                None => (true, cap),
            };
            let slot = match name {
                "sasl" => &mut next.sasl,
                "server-time" => &mut next.server_time,
                "echo-message" => &mut next.echo_message,
                "message-tags" => &mut next.message_tags,
                "batch" => &mut next.batch,
                "draft/chathistory" => &mut next.chathistory,
                _ => return false,
            };
            *slot = on;
        }
        *self = next;
        true
    }

    /// The names granted, as `CAP LIST` says them.
    pub(super) fn list(&self) -> String {
        [
            (self.sasl, "sasl"),
            (self.server_time, "server-time"),
            (self.echo_message, "echo-message"),
            (self.message_tags, "message-tags"),
            (self.batch, "batch"),
            (self.chathistory, "draft/chathistory"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_granted_whole_or_not_at_all() {
        let mut caps = Caps::default();
        assert!(caps.request("server-time batch"));
        assert!(!caps.request("echo-message unknown-cap"));
        assert!(!caps.echo_message, "nothing of a refused request applies");
        assert!(caps.request("-batch sasl"));
        assert_eq!(caps.list(), "sasl server-time");
    }
}
