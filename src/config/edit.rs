//! Editing the config file for `ferry user add`, keeping the operator's comments and layout.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::{ConfigError, ServerConfig};
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
        users.insert(name, Item::Table(user));
        Ok(())
    })?;
    Ok(token)
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
