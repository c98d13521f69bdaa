//! Trust on first use: the fingerprints of servers this client has met, like SSH's known_hosts.
//!
//! The file `FERRY_HOME/known_servers` holds one `HOST:PORT FINGERPRINT` line per server. A
//! server seen for the first time is pinned; a server whose fingerprint changed is refused until
//! the user forgets the old pin (`ferry forget HOST:PORT`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the pin store inside FERRY_HOME.
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

/// What the store says about a server's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinStatus {
    /// The fingerprint matches the pin.
    Known,
    /// No pin existed; one has now been written.
    NewlyPinned,
    /// A different fingerprint is pinned for this server.
    Changed {
        /// The fingerprint pinned.
        pinned: String,
    },
}

/// The pin store of one FERRY_HOME.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The store inside `ferry_home` (the file need not exist yet).
    pub fn in_home(ferry_home: &Path) -> Self {
        KnownServers {
            path: ferry_home.join(KNOWN_SERVERS_FILE),
        }
    }

    /// The file's path, for messages that tell the user where pins live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned fingerprint of `server`, if any.
    ///
    /// # Errors
    /// An unreadable store (a missing one is simply empty).
    pub fn lookup(&self, server: &str) -> std::io::Result<Option<String>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(name), Some(fp)) if name == server => Some(fp.to_string()),
                _ => None,
            }
        }))
    }

    /// Compares `fingerprint` with the pin for `server`, pinning it if there was none.
    ///
    /// # Errors
    /// The store cannot be read or written.
    pub fn check_or_pin(&self, server: &str, fingerprint: &str) -> std::io::Result<PinStatus> {
        match self.lookup(server)? {
            Some(pinned) if pinned == fingerprint => Ok(PinStatus::Known),
            Some(pinned) => Ok(PinStatus::Changed { pinned }),
            None => {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                let mut file = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                // One write of the whole line: clients pinning at once each append whole
                // lines (`writeln!` writes its pieces one by one, which others interleave).
                file.write_all(format!("{server} {fingerprint}\n").as_bytes())?;
                Ok(PinStatus::NewlyPinned)
            }
        }
    }

    /// Removes the pin of `server`. Returns whether there was one.
    ///
    /// # Errors
    /// The store cannot be read or rewritten.
    pub fn forget(&self, server: &str) -> std::io::Result<bool> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| line.split_whitespace().next() != Some(server))
            .collect();
        if kept.len() == text.lines().count() {
            return Ok(false);
        }
        let mut body = kept.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        crate::atomic_file::write_atomically(&self.path, body.as_bytes())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_on_first_use_then_detects_a_change_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = KnownServers::in_home(&dir.path().join("home"));
        assert_eq!(
            store.check_or_pin("h:1", "sha256:aa").unwrap(),
            PinStatus::NewlyPinned
        );
        store.check_or_pin("h:2", "sha256:bb").unwrap();
        assert_eq!(
            store.check_or_pin("h:1", "sha256:aa").unwrap(),
            PinStatus::Known
        );
        assert_eq!(
            store.check_or_pin("h:1", "sha256:cc").unwrap(),
            PinStatus::Changed {
                pinned: "sha256:aa".into()
            }
        );
        assert!(store.forget("h:1").unwrap());
        assert!(!store.forget("h:1").unwrap());
        assert_eq!(store.lookup("h:2").unwrap().as_deref(), Some("sha256:bb"));
        assert_eq!(
            store.check_or_pin("h:1", "sha256:cc").unwrap(),
            PinStatus::NewlyPinned
        );
    }

    /// Many clients meeting the same server at once (`ferry exec` run in parallel) each pin it:
    /// every one must then find its own fingerprint, never a line two writers interleaved.
    #[test]
    fn clients_pinning_at_once_each_find_the_pin_whole() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let store = KnownServers::in_home(&home);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let server = format!("127.0.0.1:{}", 40000 + i);
                        let fingerprint = format!("sha256:{i:064x}");
                        let status = store.check_or_pin(&server, &fingerprint).unwrap();
                        assert!(
                            !matches!(status, PinStatus::Changed { .. }),
                            "thread {t}: {server}: {status:?}"
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = fs::read_to_string(home.join(KNOWN_SERVERS_FILE)).unwrap();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(
                fields.len() == 2
                    && fields[0].starts_with("127.0.0.1:")
                    && fields[1].starts_with("sha256:"),
                "an interleaved pin: {line:?}"
            );
        }
    }
}
