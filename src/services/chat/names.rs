//! Naming rules for nicks and rooms, shared by the server (which enforces them) and the client
//! (which derives a default nick).

use crate::protocol::{ErrorCode, Refusal};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a nick or room name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{name}': {reason}")]
pub struct NameError {
    /// What was named (`nick`, `room`).
    pub what: &'static str,
    /// The name refused.
    pub name: String,
    /// Which rule it breaks.
    pub reason: String,
}

/// Checks a nick or room name: 1 to `max_chars` characters, no spaces or control characters,
/// none of `,` `:` `*`, and not starting with `/`, `#` or `@` (they read as commands or
/// addresses in clients); a nick holds no `!` or `@` at all.
///
/// # Errors
/// [`NameError`] saying which rule was broken.
pub fn validate(what: &'static str, name: &str, max_chars: usize) -> Result<(), NameError> {
    let error = |reason: String| NameError {
        what,
        name: name.chars().take(max_chars + 8).collect(),
        reason,
    };
    let count = name.chars().count();
    if count == 0 {
        return Err(error("it is empty".into()));
    }
    if count > max_chars {
        return Err(error(format!(
            "it has {count} characters; the limit is {max_chars}"
        )));
    }
    if name.starts_with(['/', '#', '@']) {
        return Err(error("it may not start with '/', '#' or '@'".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ':' | '*'))
    {
        return Err(error(format!("it may not contain {c:?}")));
    }
    // `!` and `@` separate a nick from the rest of an IRC source (`nick!user@host`): in a nick
    // they would let `alice!x` pass for `alice` on IRC.
    if what == "nick"
        && let Some(c) = name.chars().find(|c| matches!(c, '!' | '@'))
    {
        return Err(error(format!("it may not contain {c:?}")));
    }
    // Format characters (zero-width ones, bidi overrides) make two names look alike or one
    // read backwards.
    if let Some(c) = name
        .chars()
        .find(|c| c.general_category() == GeneralCategory::Format)
    {
        return Err(error(format!(
            "it may not contain the invisible format character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Names no member may take, on any door: the server's own name (an IRC client sees lines from
/// a member called `ferry` as from the server itself) and the usual IRC service names (an IRC
/// user types `/msg NickServ IDENTIFY ...` by habit; it must reach no member).
pub const SERVICE_NAMES: &[&str] = &[
    "ferry", "NickServ", "ChanServ", "MemoServ", "OperServ", "HostServ", "BotServ", "SaslServ",
    "HelpServ", "Global", "services",
];

/// The service name `name` looks like (by its skeleton), if any.
pub fn service_name(name: &str) -> Option<&'static str> {
    let key = skeleton(name);
    SERVICE_NAMES.iter().copied().find(|s| skeleton(s) == key)
}

/// What a name looks like, for telling names apart: compatibility-normalised (fullwidth and
/// other variants become plain letters), case-folded, and mapped to its confusable skeleton
/// (UTS #39: Cyrillic `а` and Latin `a` share one). Two names with one skeleton are the same
/// name to ferry.
pub fn skeleton(name: &str) -> String {
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    unicode_security::skeleton(&folded)
        .collect::<String>()
        .to_lowercase()
}

/// A valid nick made from a local user name, or `guest`.
pub fn default_nick(user_name: Option<&str>, max_chars: usize) -> String {
    let cleaned: String = user_name
        .unwrap_or_default()
        .chars()
        .filter(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && c.general_category() != GeneralCategory::Format
                && !matches!(c, ',' | ':' | '*' | '!' | '@')
        })
        .skip_while(|c| matches!(c, '/' | '#'))
        .take(max_chars)
        .collect();
    if cleaned.is_empty() {
        "guest".to_string()
    } else {
        cleaned
    }
}

impl From<NameError> for crate::protocol::Refusal {
    fn from(e: NameError) -> Self {
        crate::protocol::Refusal::new(crate::protocol::ErrorCode::InvalidName, e.to_string())
    }
}

/// The refusal for a nick someone else holds (possibly under a look-alike spelling).
pub fn nick_taken(wanted: &str, holder: &str) -> Refusal {
    let message = if wanted == holder {
        format!("the nick '{wanted}' is already used by someone online")
    } else {
        format!("the nick '{wanted}' is too much like '{holder}', which someone online uses")
    };
    Refusal::new(ErrorCode::NickInUse, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for ok in ["alice", "小明", "bob_2", "Ünïcode-ok", &"x".repeat(32)] {
            assert_eq!(validate("nick", ok, 32), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_names_breaking_each_rule() {
        for bad in [
            "",
            "a b",
            "/quit",
            "#room",
            "@x",
            "a,b",
            "a:b",
            "alice!x",
            "alice@irc",
            "tab\t",
            &"x".repeat(33),
        ] {
            assert!(validate("nick", bad, 32).is_err(), "{bad:?}");
        }
        let err = validate("room", &"r".repeat(65), 64).unwrap_err();
        assert!(err.to_string().contains("65 characters; the limit is 64"));
    }

    #[test]
    fn look_alike_names_share_a_skeleton_and_invisible_characters_are_refused() {
        let alice = skeleton("alice");
        for alike in [
            "Alice",
            "ALICE",
            "\u{430}lice",
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
        ] {
            assert_eq!(skeleton(alike), alice, "{alike}");
        }
        assert_ne!(skeleton("bob"), alice);
        for bad in ["alice\u{200b}", "a\u{202e}b", "\u{2066}x", "x\u{feff}"] {
            assert!(validate("nick", bad, 32).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_names_are_found_in_any_spelling() {
        assert_eq!(service_name("NickServ"), Some("NickServ"));
        assert_eq!(service_name("nickserv"), Some("NickServ"));
        assert_eq!(service_name("ＦＥＲＲＹ"), Some("ferry"));
        assert_eq!(service_name("ferryman"), None);
    }

    #[test]
    fn default_nicks_are_always_valid() {
        for user in [
            Some("root"),
            Some("/weird user"),
            Some("bob@corp!x"),
            Some(""),
            None,
            Some(&*"y".repeat(80)),
        ] {
            let nick = default_nick(user, 32);
            assert_eq!(validate("nick", &nick, 32), Ok(()), "{user:?} -> {nick}");
        }
        assert_eq!(default_nick(Some("root"), 32), "root");
        // Found by the fuzzer: a format character (U+0605) in the user name.
        let nick = default_nick(Some("\u{605}o\u{745}o\u{745}moSo\u{745}mokm"), 32);
        assert_eq!(validate("nick", &nick, 32), Ok(()), "{nick:?}");
        assert_eq!(default_nick(None, 32), "guest");
    }
}
