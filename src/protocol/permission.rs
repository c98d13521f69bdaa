//! Permissions: what a user may do once connected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One capability a user can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Join rooms and send messages.
    Chat,
    /// List and download files under the server root.
    Read,
    /// Upload, replace and delete files under the server root.
    Write,
    /// Run commands on the server.
    Exec,
    /// See the server's live figures (`stats`).
    Admin,
    /// Carry TCP streams through the server (`ferry forward`), where its `[forward]` config
    /// allows.
    Forward,
}

impl Permission {
    /// Every permission, in display order.
    pub const ALL: [Permission; 6] = [
        Permission::Chat,
        Permission::Read,
        Permission::Write,
        Permission::Exec,
        Permission::Admin,
        Permission::Forward,
    ];

    /// The wire and config name.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Chat => "chat",
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Exec => "exec",
            Permission::Admin => "admin",
            Permission::Forward => "forward",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A permission name that is not one of chat, read, write, exec, admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission '{0}' (expected chat, read, write, exec, admin or forward)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| UnknownPermission(s.trim().to_string()))
    }
}

/// A set of permissions; a bit set, so checks on hot paths cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u8);

impl Permissions {
    /// No permission at all.
    pub const NONE: Permissions = Permissions(0);

    /// Whether `p` is granted.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `p` is among these.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// The union of both sets.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    /// The granted permissions, in display order.
    pub fn to_vec(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .collect()
    }

    /// Parses a comma-separated list such as `chat,read,write,exec`.
    ///
    /// # Errors
    /// [`UnknownPermission`] for any name that is not a permission.
    pub fn parse_list(list: &str) -> Result<Permissions, UnknownPermission> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Permission::from_str)
            .collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |acc, p| acc | p.bit()))
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.to_vec().into_iter().map(Permission::name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_refuses_unknown_names() {
        let p = Permissions::parse_list("chat, read,exec").unwrap();
        assert!(p.contains(Permission::Chat) && p.contains(Permission::Read));
        assert!(p.contains(Permission::Exec) && !p.contains(Permission::Write));
        assert_eq!(p.to_string(), "chat,read,exec");
        assert_eq!(
            Permissions::parse_list("chat,root"),
            Err(UnknownPermission("root".into()))
        );
        assert_eq!(Permissions::parse_list("").unwrap(), Permissions::NONE);
    }
}
