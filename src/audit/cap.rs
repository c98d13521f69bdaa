//! What one entry may hold: a client chooses argv and paths, and an entry as large as a 1 MiB
//! argv let 600 commands fill the log. Each text field is cut to [`MAX_FIELD_BYTES`] (an argv to
//! [`MAX_ARGV_BYTES`] in all), and the entry records, for each field cut, its full length and
//! BLAKE3 hash — enough to tell what it was, and to match it against a copy.

use serde::{Deserialize, Serialize};

use super::event::AuditEvent;

/// Bytes of one text field kept (a path, a reason, one argument).
pub(super) const MAX_FIELD_BYTES: usize = 1024;
/// Bytes of a whole argv kept.
pub(super) const MAX_ARGV_BYTES: usize = 4096;

/// A field that was cut: which, how long it was, and the BLAKE3 of all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// The field: `argv`, `path`, `reason`...
    pub field: String,
    /// Its full length in bytes (an argv: its arguments' bytes, each followed by a NUL).
    pub bytes: u64,
    /// BLAKE3 of the whole field (an argv: its arguments, each followed by a NUL), hex.
    pub blake3: String,
}

impl AuditEvent {
    /// Cuts every field past its bound; returns what was cut.
    pub fn cap(&mut self) -> Vec<Cut> {
        let mut cuts = Vec::new();
        let mut field = |name: &str, text: &mut String| {
            if let Some(cut) = cut_text(name, text, MAX_FIELD_BYTES) {
                cuts.push(cut);
            }
        };
        match self {
            AuditEvent::Exec { argv, error, .. } => {
                if let Some(error) = error {
                    field("error", error);
                }
                if let Some(cut) = cut_argv(argv) {
                    cuts.push(cut);
                }
            }
            AuditEvent::FileWrite { path, .. }
            | AuditEvent::Remove { path, .. }
            | AuditEvent::Mkdir { path, .. } => field("path", path),
            AuditEvent::Move { from, to, .. } => {
                field("from", from);
                field("to", to);
            }
            AuditEvent::Refused { target, reason, .. } => {
                if let Some(target) = target {
                    field("target", target);
                }
                field("reason", reason);
            }
            AuditEvent::SignIn {
                reason: Some(reason),
                ..
            } => field("reason", reason),
            AuditEvent::Legacy { action, detail, .. } => {
                field("action", action);
                if let Some(detail) = detail {
                    field("detail", detail);
                }
            }
            _ => {}
        }
        cuts
    }
}

/// `text` cut to at most `max` bytes (at a character boundary, with `…`), if longer.
fn cut_text(name: &str, text: &mut String, max: usize) -> Option<Cut> {
    if text.len() <= max {
        return None;
    }
    let cut = Cut {
        field: name.to_string(),
        bytes: text.len() as u64,
        blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
    };
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    Some(cut)
}

/// An argv kept to [`MAX_ARGV_BYTES`] in all (each argument to [`MAX_FIELD_BYTES`]), if larger.
fn cut_argv(argv: &mut Vec<String>) -> Option<Cut> {
    let total: usize = argv.iter().map(|a| a.len() + 1).sum();
    let long_one = argv.iter().any(|a| a.len() > MAX_FIELD_BYTES);
    if total <= MAX_ARGV_BYTES && !long_one {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    for arg in argv.iter() {
        hasher.update(arg.as_bytes());
        hasher.update(b"\0");
    }
    let cut = Cut {
        field: "argv".into(),
        bytes: total as u64,
        blake3: hasher.finalize().to_hex().to_string(),
    };
    let mut kept = 0;
    let mut keep = 0;
    for arg in argv.iter_mut() {
        if kept >= MAX_ARGV_BYTES {
            break;
        }
        cut_text("", arg, MAX_FIELD_BYTES.min(MAX_ARGV_BYTES - kept));
        kept += arg.len() + 1;
        keep += 1;
    }
    let dropped = argv.len() - keep;
    argv.truncate(keep);
    if dropped > 0 {
        argv.push(format!("… {dropped} more arguments"));
    }
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    #[test]
    fn a_huge_argv_is_cut_with_its_length_and_hash() {
        let argv = vec!["echo".to_string(), "x".repeat(1 << 20)];
        let mut event = AuditEvent::Exec {
            actor: Actor {
                user: Some("a".into()),
                address: "127.0.0.1".parse().unwrap(),
            },
            argv: argv.clone(),
            pty: false,
            exit_code: Some(0),
            signal: None,
            error: None,
            duration_ms: 1,
        };
        let cuts = event.cap();
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].bytes, (4 + 1 + (1 << 20) + 1) as u64);
        let mut whole = blake3::Hasher::new();
        for arg in &argv {
            whole.update(arg.as_bytes());
            whole.update(b"\0");
        }
        assert_eq!(cuts[0].blake3, whole.finalize().to_hex().to_string());
        let AuditEvent::Exec { argv, .. } = &event else {
            unreachable!()
        };
        assert!(argv.iter().map(|a| a.len() + 1).sum::<usize>() <= MAX_ARGV_BYTES + 16);
        assert_eq!(argv[0], "echo");
    }

    #[test]
    fn a_short_entry_is_left_alone_and_text_is_cut_at_a_character() {
        let mut path = "é".repeat(600);
        let cut = cut_text("path", &mut path, MAX_FIELD_BYTES).unwrap();
        assert_eq!(cut.bytes, 1200);
        assert!(path.len() <= MAX_FIELD_BYTES + '…'.len_utf8());
        let mut short = "fine".to_string();
        assert!(cut_text("path", &mut short, MAX_FIELD_BYTES).is_none());
    }
}
