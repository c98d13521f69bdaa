//! IRC lines: parsing what a client sends, and building what it is sent (RFC 1459/2812 as
//! the Modern IRC Client Protocol describes them, with IRCv3 message tags on the way out).
//!
//! Pure: no I/O, so every rule is tested on its own.

use std::fmt::Write as _;
use std::time::SystemTime;

/// The server's name in every line it sends.
pub(super) const SERVER: &str = "ferry";

/// The most bytes of an IRC line without its tags, CR-LF included.
pub(super) const LINE_BYTES: usize = 512;

/// One parsed client line: its command (upper-cased) and parameters. Tags and a source prefix
/// (which a client has no business sending) are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Command<'a> {
    pub(super) name: String,
    pub(super) params: Vec<&'a str>,
}

/// Parses one line (without its CR-LF). `None` for a line with no command.
pub(super) fn parse(line: &str) -> Option<Command<'_>> {
    let mut rest = line.trim_start_matches(' ');
    if let Some(tagged) = rest.strip_prefix('@') {
        rest = tagged
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    if rest.starts_with(':') {
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    let (name, mut rest) = match rest.split_once(' ') {
        Some((name, rest)) => (name, rest),
        None => (rest, ""),
    };
    if name.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        match rest.split_once(' ') {
            Some((param, tail)) => {
                params.push(param);
                rest = tail;
            }
            None => {
                params.push(rest);
                break;
            }
        }
    }
    Some(Command {
        name: name.to_ascii_uppercase(),
        params,
    })
}

/// `nick!ferry@ferry`: how a member appears as the source of a line. The nick once, so that
/// the longest nick (32 characters, up to 128 bytes) and the longest channel still leave room
/// for text in a 512-byte line.
pub(super) fn mask(nick: &str) -> String {
    format!("{nick}!{SERVER}@{SERVER}")
}

/// An IRCv3 `server-time` value: `YYYY-MM-DDThh:mm:ss.sssZ` in UTC.
pub(super) fn server_time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Text made safe for one IRC parameter: CR, LF and NUL would end or break the line, so they
/// become spaces (ferry lines may hold newlines; IRC lines cannot).
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}

/// Cuts `text` into pieces of at most `max` bytes, at character boundaries.
pub(super) fn split_at_bytes(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            break;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

/// Lines waiting to be written to one client, with the tags it asked for.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub(super) bytes: Vec<u8>,
    /// The client negotiated `server-time`: lines from members carry `@time=`.
    pub(super) server_time: bool,
    /// The client negotiated `batch`.
    pub(super) batch: bool,
    /// Its nick, for numerics (`*` before it has one).
    pub(super) nick: String,
}

impl Out {
    /// A raw line (without CR-LF). One that would pass 512 bytes (its tags aside) loses the
    /// end of its last parameter: lines of text are cut into pieces before they get here
    /// ([`Out::said`]), so only a long topic (a ferry topic may be 4 KiB) is ever shortened.
    pub(super) fn line(&mut self, line: &str) {
        let tags = if line.starts_with('@') {
            line.find(' ').map_or(0, |at| at + 1)
        } else {
            0
        };
        let mut end = line.len().min(tags + LINE_BYTES - 2);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes.extend_from_slice(&line.as_bytes()[..end]);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// `:ferry CODE NICK PARAMS…`; the last parameter is sent as trailing.
    pub(super) fn numeric(&mut self, code: u16, params: &[&str]) {
        let mut line = format!(":{SERVER} {code:03} {}", self.nick);
        push_params(&mut line, params);
        self.line(&line);
    }

    /// `:ferry COMMAND PARAMS…` from the server itself.
    pub(super) fn server(&mut self, command: &str, params: &[&str]) {
        let mut line = format!(":{SERVER} {command}");
        push_params(&mut line, params);
        self.line(&line);
    }

    /// `:SOURCE COMMAND PARAMS…` from a member (tagged with the time when asked for).
    pub(super) fn from(&mut self, source: &str, command: &str, params: &[&str]) {
        self.tagged(None, SystemTime::now(), source, command, params);
    }

    /// A member's line with its tags: `time` (with `server-time`) and `batch`.
    pub(super) fn tagged(
        &mut self,
        batch: Option<&str>,
        at: SystemTime,
        source: &str,
        command: &str,
        params: &[&str],
    ) {
        let mut line = String::new();
        let mut tags = Vec::new();
        if let Some(id) = batch.filter(|_| self.batch) {
            tags.push(format!("batch={id}"));
        }
        if self.server_time {
            tags.push(format!("time={}", server_time(at)));
        }
        if !tags.is_empty() {
            let _ = write!(line, "@{} ", tags.join(";"));
        }
        let _ = write!(line, ":{} {command}", mask_of(source));
        push_params(&mut line, params);
        self.line(&line);
    }

    /// A member's line to `target` as `PRIVMSG`, cut into as many IRC lines as its text needs
    /// (ferry lines may be up to 4 KiB and hold newlines; an IRC line is 512 bytes). An action
    /// is sent as CTCP ACTION.
    pub(super) fn said(
        &mut self,
        batch: Option<&str>,
        at: SystemTime,
        from: &str,
        target: &str,
        text: &str,
        action: bool,
    ) {
        self.said_as("PRIVMSG", batch, at, from, target, text, action);
    }

    /// As [`Out::said`], with the command (`PRIVMSG` or `NOTICE`) given.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn said_as(
        &mut self,
        command: &str,
        batch: Option<&str>,
        at: SystemTime,
        from: &str,
        target: &str,
        text: &str,
        action: bool,
    ) {
        let source = mask(from);
        // `:SOURCE PRIVMSG TARGET :` and CR-LF, plus CTCP's two \x01 and "ACTION ".
        let overhead = 1 + source.len() + 9 + target.len() + 2 + 2 + if action { 9 } else { 0 };
        let room = LINE_BYTES.saturating_sub(overhead).max(64);
        for paragraph in text.split('\n') {
            // A member's text never carries CTCP to an IRC client (a `DCC SEND` offer, a
            // `VERSION` query in its name): \x01 is shown as the visible ␁. Actions travel as
            // `action`, which this door frames itself.
            let paragraph = one_line(paragraph).replace('\u{1}', "\u{2401}");
            for piece in split_at_bytes(&paragraph, room) {
                let body = if action {
                    format!("\u{1}ACTION {piece}\u{1}")
                } else {
                    piece.to_string()
                };
                self.tagged(batch, at, from, command, &[target, &body]);
            }
        }
    }
}

/// A nick as a source mask; the server's own name stays as it is.
fn mask_of(source: &str) -> String {
    if source == SERVER {
        source.to_string()
    } else {
        mask(source)
    }
}

/// Appends parameters, the last one as trailing (`:`), which it may always be.
fn push_params(line: &mut String, params: &[&str]) {
    for (i, param) in params.iter().enumerate() {
        let param = one_line(param);
        if i + 1 == params.len() {
            let _ = write!(line, " :{param}");
        } else {
            let _ = write!(line, " {param}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends, parsing neither panics nor invents a command.
        #[test]
        fn any_line_parses_without_panicking(line in ".{0,600}") {
            if let Some(command) = parse(&line) {
                prop_assert!(!command.name.is_empty());
            }
        }

        /// Whatever a ferry member says, every IRC line it becomes fits 512 bytes, holds no
        /// CR, LF or NUL of its own, and the pieces put back together are the text (its
        /// newlines as line breaks, CR and NUL as spaces).
        #[test]
        fn any_text_becomes_whole_lines_within_the_limit(
            text in "(.|\r|\n|\u{0}){0,1500}",
            from in "\\PC{1,32}",
            channel in "#\\PC{1,64}",
            action in any::<bool>(),
        ) {
            let mut out = Out::default();
            out.said(None, SystemTime::now(), &from, &channel, &text, action);
            let sent = String::from_utf8(out.bytes).unwrap();
            let lines: Vec<&str> = sent.split_terminator("\r\n").collect();
            let mut pieces = Vec::new();
            for line in &lines {
                prop_assert!(line.len() + 2 <= LINE_BYTES, "{} bytes", line.len() + 2);
                prop_assert!(!line.contains(['\r', '\n', '\0']));
                let body = &line[line.find(&format!(" {channel} :")).unwrap() + channel.len() + 3..];
                let body = if action {
                    body.strip_prefix("\u{1}ACTION ").and_then(|b| b.strip_suffix('\u{1}')).unwrap()
                } else {
                    body
                };
                pieces.push(body.to_string());
            }
            let expected: Vec<String> = text.split('\n').map(|p| p.replace(['\r', '\0'], " ").replace('\u{1}', "\u{2401}")).collect();
            let rebuilt = pieces.concat();
            prop_assert_eq!(rebuilt, expected.concat());
            prop_assert!(lines.len() >= expected.len());
        }
    }

    #[test]
    fn parses_commands_params_and_trailing() {
        let c = parse("privmsg #lobby :hello there").unwrap();
        assert_eq!(c.name, "PRIVMSG");
        assert_eq!(c.params, vec!["#lobby", "hello there"]);
        let c = parse("@+typing=active :me!u@h JOIN #a,#b").unwrap();
        assert_eq!((c.name.as_str(), c.params), ("JOIN", vec!["#a,#b"]));
        let c = parse("USER alice 0 * :Alice Liddell").unwrap();
        assert_eq!(c.params, vec!["alice", "0", "*", "Alice Liddell"]);
        let c = parse("PING").unwrap();
        assert!(c.params.is_empty());
        let c = parse("TOPIC #a :").unwrap();
        assert_eq!(c.params, vec!["#a", ""]);
        assert_eq!(parse(""), None);
        assert_eq!(parse("@only=tags"), None);
    }

    #[test]
    fn long_or_multi_line_text_becomes_several_lines_within_512_bytes() {
        let mut out = Out::default();
        let text = format!("{}\nsecond", "é".repeat(600));
        out.said(None, SystemTime::now(), "alice", "#lobby", &text, false);
        let sent = String::from_utf8(out.bytes).unwrap();
        let lines: Vec<&str> = sent.split_terminator("\r\n").collect();
        assert!(lines.len() >= 4, "{lines:?}");
        assert!(lines.iter().all(|l| l.len() + 2 <= LINE_BYTES), "{lines:?}");
        let rebuilt: String = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.split_once(" :").unwrap().1)
            .collect();
        assert_eq!(rebuilt, "é".repeat(600));
        assert!(lines.last().unwrap().ends_with(":second"));
    }

    #[test]
    fn the_longest_nick_and_channel_still_leave_room_for_text() {
        let nick = "𝔞".repeat(32);
        let channel = format!("#{}", "𝔟".repeat(64));
        let mut out = Out::default();
        out.said(
            None,
            SystemTime::now(),
            &nick,
            &channel,
            &"x".repeat(600),
            true,
        );
        let sent = String::from_utf8(out.bytes).unwrap();
        for line in sent.split_terminator("\r\n") {
            assert!(line.len() + 2 <= LINE_BYTES, "{} bytes", line.len() + 2);
        }
    }

    #[test]
    fn a_line_too_long_for_irc_is_cut_at_a_character() {
        let mut out = Out {
            server_time: true,
            nick: "me".into(),
            ..Out::default()
        };
        out.numeric(332, &["#room", &"話".repeat(400)]);
        out.from("bob", "TOPIC", &["#room", &"題".repeat(400)]);
        let sent = String::from_utf8(out.bytes).unwrap();
        for line in sent.split_terminator("\r\n") {
            let untagged = line
                .strip_prefix('@')
                .map_or(line, |l| l.split_once(' ').unwrap().1);
            assert!(
                untagged.len() + 2 <= LINE_BYTES,
                "{} bytes",
                untagged.len() + 2
            );
        }
        assert_eq!(sent.matches("\r\n").count(), 2);
    }

    #[test]
    fn no_line_can_be_broken_by_what_it_carries() {
        let mut out = Out::default();
        out.from("bob", "TOPIC", &["#a", "one\r\nQUIT :injected\0"]);
        let sent = String::from_utf8(out.bytes).unwrap();
        assert_eq!(sent.matches("\r\n").count(), 1, "{sent:?}");
        assert!(!sent.contains('\0'));
    }

    #[test]
    fn actions_are_ctcp_and_times_are_utc() {
        let mut out = Out {
            server_time: true,
            ..Out::default()
        };
        out.said(None, SystemTime::UNIX_EPOCH, "bob", "#a", "waves", true);
        let sent = String::from_utf8(out.bytes).unwrap();
        assert_eq!(
            sent,
            "@time=1970-01-01T00:00:00.000Z :bob!ferry@ferry PRIVMSG #a :\u{1}ACTION waves\u{1}\r\n"
        );
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_764_072_245_123);
        assert_eq!(server_time(at), "2025-11-25T12:04:05.123Z");
    }
}
