//! Editing the config file for `ferry user add`, keeping the operator's comments and layout.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::{ConfigError, ServerConfig};
use crate::auth::keys::AuthorizedKey;
use crate::auth::scram::Credential;
use crate::auth::token::Token;
use crate::protocol::Permissions;
use crate::random::random_bytes;

/// Adds user `name` with `allow` to the config at `path` (creating the file if needed) and
/// returns the new token. Only the derived credential is written; the token is not stored.
///
/// The file is written beside and renamed into place, owner-readable only, so a crash never
/// leaves a half-written config.
///
/// # Errors
/// An invalid name, an existing user (a silent rotation would lock out its holder: that is
/// [`rotate_user`]), an unreadable or invalid file, or a failed write.
pub fn add_user(path: &Path, name: &str, allow: Permissions) -> Result<Token, ConfigError> {
    add_user_with_keys(path, name, allow, &[])
}

/// [`add_user`] with SSH public keys (`authorized_keys` lines) the user may sign in with, in
/// the same write. The token is still made (tokens work beside keys); a caller that gives keys
/// may leave it unshown, and `ferry user rotate` makes one to show.
///
/// # Errors
/// As [`add_user`], or a line that is not a key ferry takes.
pub fn add_user_with_keys(
    path: &Path,
    name: &str,
    allow: Permissions,
    keys: &[String],
) -> Result<Token, ConfigError> {
    let keys = parsed_keys(path, keys)?;
    let token = Token::generate(name)?;
    edit_users(path, |users| {
        if users.contains_key(name) {
            return Err(ConfigError::UserExists {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        let mut user = Table::new();
        let permissions: Array = allow.to_vec().iter().map(|p| p.name()).collect();
        user.insert("allow", value(permissions));
        user.insert("credential", value(new_credential(&token)));
        if !keys.is_empty() {
            user.insert("keys", value(keys.iter().collect::<Array>()));
        }
        users.insert(name, Item::Table(user));
        Ok(())
    })?;
    Ok(token)
}

/// Adds SSH public keys to user `name`; a running server takes them at once. A key the user
/// has already is not added twice.
///
/// # Errors
/// No such user, a line that is not a key ferry takes, an unreadable or invalid file, or a
/// failed write.
pub fn add_keys(path: &Path, name: &str, keys: &[String]) -> Result<(), ConfigError> {
    let keys = parsed_keys(path, keys)?;
    edit_user_keys(path, name, |held| {
        for line in &keys {
            let id = AuthorizedKey::parse(line).map(|k| k.id()).ok();
            if !held
                .iter()
                .any(|h| AuthorizedKey::parse(h).map(|k| k.id()).ok() == id)
            {
                held.push(line.clone());
            }
        }
        Ok(())
    })
}

/// Removes from user `name` every key that `which` names: its fingerprint (`SHA256:...`), its
/// comment, or the key itself; returns the lines removed. A running server ends the sessions
/// signed in with them.
///
/// # Errors
/// No such user, no such key, an unreadable or invalid file, or a failed write.
pub fn remove_keys(path: &Path, name: &str, which: &str) -> Result<Vec<String>, ConfigError> {
    let which = which.trim();
    let wanted = AuthorizedKey::parse(which).ok().map(|k| k.id());
    let mut removed = Vec::new();
    edit_user_keys(path, name, |held| {
        held.retain(|line| {
            let named = AuthorizedKey::parse(line).is_ok_and(|key| {
                key.fingerprint() == which
                    || (!which.is_empty() && key.comment() == which)
                    || Some(key.id()) == wanted
            });
            if named {
                removed.push(line.clone());
            }
            !named
        });
        if removed.is_empty() {
            return Err(invalid(
                path,
                format!(
                    "user '{name}' has no key '{which}' ('ferry user key list {name}' shows them)"
                ),
            ));
        }
        Ok(())
    })?;
    Ok(removed)
}

/// The keys of user `name` as the config holds them.
///
/// # Errors
/// No such user, an unreadable or invalid file.
pub fn user_keys(path: &Path, name: &str) -> Result<Vec<AuthorizedKey>, ConfigError> {
    let config = ServerConfig::load(path, true)?;
    let user = config
        .users
        .get(name)
        .ok_or_else(|| no_such_user(path, name))?;
    Ok(user
        .keys
        .iter()
        .filter_map(|line| AuthorizedKey::parse(line).ok())
        .collect())
}

/// Each line checked and trimmed, or the first that is not a key.
fn parsed_keys(path: &Path, keys: &[String]) -> Result<Vec<String>, ConfigError> {
    keys.iter()
        .map(|line| {
            AuthorizedKey::parse(line)
                .map(|_| line.trim().to_string())
                .map_err(|e| invalid(path, e))
        })
        .collect()
}

/// Lets `change` edit the `keys` list of user `name`.
fn edit_user_keys(
    path: &Path,
    name: &str,
    change: impl FnOnce(&mut Vec<String>) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    edit_users(path, |users| {
        let user = users
            .get_mut(name)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| no_such_user(path, name))?;
        let mut held: Vec<String> = user
            .get("keys")
            .and_then(Item::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        change(&mut held)?;
        if held.is_empty() {
            user.remove("keys");
        } else {
            user.insert("keys", value(held.iter().collect::<Array>()));
        }
        Ok(())
    })
}

/// Removes user `name`; a running server ends its sessions at their next request.
///
/// # Errors
/// No such user, an unreadable or invalid file, or a failed write.
pub fn remove_user(path: &Path, name: &str) -> Result<(), ConfigError> {
    edit_users(path, |users| match users.remove(name) {
        Some(_) => Ok(()),
        None => Err(no_such_user(path, name)),
    })
}

/// Gives user `name` a new token and returns it; the old one no longer logs in, and a running
/// server ends the sessions opened with it.
///
/// # Errors
/// No such user, an unreadable or invalid file, or a failed write.
pub fn rotate_user(path: &Path, name: &str) -> Result<Token, ConfigError> {
    let token = Token::generate(name)?;
    edit_users(path, |users| {
        let user = users
            .get_mut(name)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| no_such_user(path, name))?;
        user.insert("credential", value(new_credential(&token)));
        Ok(())
    })?;
    Ok(token)
}

fn new_credential(token: &Token) -> String {
    Credential::derive(token.secret(), &random_bytes::<16>()).to_config_string()
}

fn invalid(path: &Path, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

fn no_such_user(path: &Path, name: &str) -> ConfigError {
    ConfigError::NoSuchUser {
        path: path.to_path_buf(),
        name: name.to_string(),
    }
}

/// Reads the config at `path` (a missing file is an empty one), lets `change` edit its
/// `[users]` table, checks the result and writes it back atomically, keeping comments and
/// layout.
fn edit_users(
    path: &Path,
    change: impl FnOnce(&mut Table) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    ServerConfig::parse(&text).map_err(|m| invalid(path, m))?;
    let mut doc: DocumentMut = text.parse().map_err(|e| invalid(path, format!("{e}")))?;
    let users = doc
        .entry("users")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| invalid(path, "'users' is not a table".into()))?;
    change(users)?;
    let new_text = doc.to_string();
    ServerConfig::parse(&new_text).map_err(|m| invalid(path, m))?;
    crate::atomic_file::write_atomically(path, new_text.as_bytes()).map_err(|source| {
        ConfigError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Permission;

    #[test]
    fn adds_users_keeps_comments_and_stores_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let alice = add_user(
            &path,
            "alice",
            Permissions::parse_list("chat,exec").unwrap(),
        )
        .unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.insert_str(0, "# operator's note\n");
        std::fs::write(&path, &text).unwrap();
        let bob = add_user(&path, "bob", Permissions::parse_list("read").unwrap()).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# operator's note\n"));
        assert!(!text.contains(alice.secret()) && !text.contains(bob.secret()));
        let config = ServerConfig::parse(&text).unwrap();
        assert_eq!(
            config.users["alice"].allow,
            vec![Permission::Chat, Permission::Exec]
        );
        assert_eq!(config.users["bob"].allow, vec![Permission::Read]);

        let again = add_user(&path, "alice", Permissions::NONE).unwrap_err();
        assert!(
            matches!(again, ConfigError::UserExists { .. })
                && again.to_string().contains("ferry user rotate alice"),
            "{again}"
        );
        assert!(add_user(&path, "no/slash", Permissions::NONE).is_err());
    }

    #[test]
    fn rotates_and_removes_users_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        add_user(&path, "alice", Permissions::parse_list("chat").unwrap()).unwrap();
        add_user(&path, "bob", Permissions::parse_list("read").unwrap()).unwrap();
        let before = ServerConfig::load(&path, true).unwrap().users["alice"].clone();
        let new = rotate_user(&path, "alice").unwrap();
        let after = ServerConfig::load(&path, true).unwrap();
        assert_ne!(after.users["alice"].credential, before.credential);
        assert_eq!(after.users["alice"].allow, before.allow);
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains(new.secret())
        );
        remove_user(&path, "alice").unwrap();
        let after = ServerConfig::load(&path, true).unwrap();
        assert!(!after.users.contains_key("alice") && after.users.contains_key("bob"));
        assert!(matches!(
            remove_user(&path, "alice").unwrap_err(),
            ConfigError::NoSuchUser { .. }
        ));
        assert!(matches!(
            rotate_user(&path, "carol").unwrap_err(),
            ConfigError::NoSuchUser { .. }
        ));
    }
}
