//! Editing the config file for `ferry user add`, keeping the operator's comments and layout.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::{ConfigError, ServerConfig};
use crate::auth::scram::Credential;
use crate::auth::token::{Token, random_bytes};
use crate::protocol::Permissions;

/// Adds user `name` with `allow` to the config at `path` (creating the file if needed) and
/// returns the new token. Only the derived credential is written; the token is not stored.
///
/// The file is written beside and renamed into place, owner-readable only, so a crash never
/// leaves a half-written config.
///
/// # Errors
/// An invalid name, an existing user (remove it first: a silent rotation would lock out its
/// holder), an unreadable or invalid file, or a failed write.
pub fn add_user(path: &Path, name: &str, allow: Permissions) -> Result<Token, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let token = Token::generate(name).map_err(|e| invalid(e.to_string()))?;
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
    ServerConfig::parse(&text).map_err(invalid)?;
    let mut doc: DocumentMut = text.parse().map_err(|e| invalid(format!("{e}")))?;

    let users = doc
        .entry("users")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| invalid("'users' is not a table".into()))?;
    if users.contains_key(name) {
        return Err(invalid(format!(
            "user '{name}' already exists; remove its [users.{name}] table first"
        )));
    }
    let mut user = Table::new();
    let permissions: Array = allow.to_vec().iter().map(|p| p.name()).collect();
    user.insert("allow", value(permissions));
    let credential = Credential::derive(token.secret(), &random_bytes::<16>());
    user.insert("credential", value(credential.to_config_string()));
    users.insert(name, Item::Table(user));

    let new_text = doc.to_string();
    ServerConfig::parse(&new_text).map_err(invalid)?;
    write_atomically(path, new_text.as_bytes()).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(token)
}

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
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
        assert!(again.to_string().contains("already exists"), "{again}");
        assert!(add_user(&path, "no/slash", Permissions::NONE).is_err());
    }
}
