//! What the audit log records: one [`AuditRecord`] per line, a time and an [`AuditEvent`]
//! whose `kind` names it. Every event says who (`user`, absent for anonymous sessions and the
//! server itself) and, when a client caused it, from where (`address`). Secrets (tokens,
//! proofs, credentials) have no field to go in.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::transport::Transport;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, as RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Fields cut to fit one entry (`cap`): each one's full length and hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut: Vec<super::cap::Cut>,
}

impl AuditRecord {
    /// `event`, stamped now.
    pub fn now(event: AuditEvent) -> Self {
        AuditRecord::at(SystemTime::now(), event)
    }

    /// `event`, stamped `at`.
    pub fn at(at: SystemTime, event: AuditEvent) -> Self {
        AuditRecord {
            time: humantime::format_rfc3339_millis(at).to_string(),
            event,
            cut: Vec::new(),
        }
    }
}

/// Who did something, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The signed-in user; `None` for an anonymous session.
    pub user: Option<String>,
    /// The client's address.
    pub address: IpAddr,
}

/// How much of a user name a client claimed is kept: real names are at most 32 characters
/// (`auth::token::MAX_USER_NAME`); a longer claim is a failed sign-in whose first characters
/// say enough, and an unauthenticated client must not fill the log's queue with its frames.
pub const CLAIMED_NAME_CHARS: usize = 64;

impl Actor {
    /// The actor of a sign-in: the name the client claimed (shortened), from `address`.
    pub fn claiming(user: Option<&str>, address: IpAddr) -> Actor {
        Actor {
            user: user.map(|u| u.chars().take(CLAIMED_NAME_CHARS).collect()),
            address,
        }
    }
}

/// What happened.
#[allow(missing_docs)] // Fields are named for what they hold; each variant says when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A session's handshake ended: signed in (as a user or anonymously) or refused.
    SignIn {
        #[serde(flatten)]
        actor: Actor,
        transport: Transport,
        ok: bool,
        /// Why it was refused.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
        /// The SSH key's fingerprint (`SHA256:...`) for a sign-in with a key, whether it
        /// succeeded or not; never the key itself.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        key: Option<String>,
    },
    /// A command ran and ended (or could not start).
    Exec {
        #[serde(flatten)]
        actor: Actor,
        argv: Vec<String>,
        pty: bool,
        /// The exit code; `None` when a signal ended it or it never started.
        exit_code: Option<i32>,
        /// The signal that ended it.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signal: Option<i32>,
        /// Why it could not start.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
        duration_ms: u64,
    },
    /// A forwarded stream ended (or was refused): where it went, bytes each way, how long.
    Forward {
        #[serde(flatten)]
        actor: Actor,
        /// `connect` (`-L`, `-D`: the server connected out) or `listen` (`-R`: a connection
        /// arrived at the server's listener).
        direction: String,
        /// `HOST:PORT` asked for, or the listener's address.
        destination: String,
        /// Bytes from the client to the destination.
        bytes_up: u64,
        /// Bytes from the destination to the client.
        bytes_down: u64,
        duration_ms: u64,
        /// Why it was refused or cut.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// A file was written under its name (after it was verified and made durable).
    FileWrite {
        #[serde(flatten)]
        actor: Actor,
        path: String,
        size: u64,
        /// BLAKE3 of its content, hex.
        hash: String,
    },
    /// A file, symlink or empty directory was removed.
    Remove {
        #[serde(flatten)]
        actor: Actor,
        path: String,
    },
    /// A symbolic link was made (or replaced).
    Symlink {
        #[serde(flatten)]
        actor: Actor,
        path: String,
    },
    /// A directory was made.
    Mkdir {
        #[serde(flatten)]
        actor: Actor,
        path: String,
    },
    /// A file or directory was moved or renamed.
    Move {
        #[serde(flatten)]
        actor: Actor,
        from: String,
        to: String,
    },
    /// The config was re-read while the server ran.
    ConfigReload {
        path: String,
        /// What made the server look: `SIGHUP` or `the file changed`.
        why: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// A reload added a user.
    UserAdded {
        user: String,
        permissions: Vec<String>,
    },
    /// A reload removed a user (its sessions end at their next request).
    UserRemoved { user: String },
    /// A reload gave a user a new credential (its old token stopped working).
    UserRotated { user: String },
    /// A reload changed a user's permissions.
    PermissionsChanged {
        user: String,
        permissions: Vec<String>,
    },
    /// A reload changed what anonymous sessions may do.
    AnonymousChanged { permissions: Vec<String> },
    /// A client used one of the seed's legacy listeners (no auth there).
    Legacy {
        address: IpAddr,
        /// The listener: chatbot, upper, shell or ftp.
        listener: String,
        /// `connect`, or what was asked: the command run, the file fetched.
        action: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        detail: Option<String>,
    },
    /// A request was refused: any refused for want of a permission, and any refused change
    /// (put, mkdir, remove, move) whatever the reason. (A command that could not start is an
    /// `exec` entry with its error.)
    Refused {
        #[serde(flatten)]
        actor: Actor,
        /// The request's type: `put`, `mkdir`, `remove`, `rename`, `exec`, `get`...
        request: String,
        /// What it named: a path, `FROM -> TO`, or the command.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        target: Option<String>,
        /// The error code answered.
        code: String,
        /// The refusal's words.
        reason: String,
    },
    /// Entries of one actor and kind beyond its share of the log (`limiter`): counted, not
    /// written one by one.
    Repeated {
        #[serde(flatten)]
        actor: Actor,
        /// The kind of the entries counted.
        of: String,
        count: u64,
        /// When the first and the last of them happened.
        first: String,
        last: String,
    },
    /// The server started (with the log open).
    ServerStart { listen: String, version: String },
    /// Entries the server could not write because the log fell behind: dropped, and counted.
    Dropped { count: u64 },
}

impl AuditEvent {
    /// Who caused it, when a client did.
    pub fn actor(&self) -> Option<&Actor> {
        match self {
            AuditEvent::SignIn { actor, .. }
            | AuditEvent::Exec { actor, .. }
            | AuditEvent::Forward { actor, .. }
            | AuditEvent::FileWrite { actor, .. }
            | AuditEvent::Remove { actor, .. }
            | AuditEvent::Symlink { actor, .. }
            | AuditEvent::Mkdir { actor, .. }
            | AuditEvent::Move { actor, .. }
            | AuditEvent::Refused { actor, .. }
            | AuditEvent::Repeated { actor, .. } => Some(actor),
            AuditEvent::ConfigReload { .. }
            | AuditEvent::UserAdded { .. }
            | AuditEvent::UserRemoved { .. }
            | AuditEvent::UserRotated { .. }
            | AuditEvent::PermissionsChanged { .. }
            | AuditEvent::AnonymousChanged { .. }
            | AuditEvent::Legacy { .. }
            | AuditEvent::ServerStart { .. }
            | AuditEvent::Dropped { .. } => None,
        }
    }

    /// The `kind` field's value.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::SignIn { .. } => "sign_in",
            AuditEvent::Exec { .. } => "exec",
            AuditEvent::Forward { .. } => "forward",
            AuditEvent::FileWrite { .. } => "file_write",
            AuditEvent::Remove { .. } => "remove",
            AuditEvent::Symlink { .. } => "symlink",
            AuditEvent::Mkdir { .. } => "mkdir",
            AuditEvent::Move { .. } => "move",
            AuditEvent::ConfigReload { .. } => "config_reload",
            AuditEvent::UserAdded { .. } => "user_added",
            AuditEvent::UserRemoved { .. } => "user_removed",
            AuditEvent::UserRotated { .. } => "user_rotated",
            AuditEvent::PermissionsChanged { .. } => "permissions_changed",
            AuditEvent::AnonymousChanged { .. } => "anonymous_changed",
            AuditEvent::Legacy { .. } => "legacy",
            AuditEvent::Refused { .. } => "refused",
            AuditEvent::Repeated { .. } => "repeated",
            AuditEvent::ServerStart { .. } => "server_start",
            AuditEvent::Dropped { .. } => "dropped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_flat_json_object_with_its_kind() {
        let record = AuditRecord::now(AuditEvent::Mkdir {
            actor: Actor {
                user: Some("alice".into()),
                address: "127.0.0.1".parse().unwrap(),
            },
            path: "a/b".into(),
        });
        let line = serde_json::to_string(&record).unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["kind"], "mkdir");
        assert_eq!(value["user"], "alice");
        assert_eq!(value["address"], "127.0.0.1");
        assert_eq!(value["path"], "a/b");
        assert_eq!(serde_json::from_str::<AuditRecord>(&line).unwrap(), record);
    }
}
