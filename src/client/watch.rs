//! Following a local tree's changes (`ferry sync --watch`, `put -r --watch`), as lsyncd does:
//! the kernel's notifications (inotify, through the `notify` crate) are gathered until the tree
//! has been quiet for a moment, so a burst — a `git checkout` of thousands of files, an editor's
//! save dance — is one batch, answered by one mirror pass. A pass compares both sides, so no
//! single event has to be understood; renames are the exception worth reading: a file or
//! directory renamed here is renamed there, not deleted and sent again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the tree must be quiet before a batch is answered.
pub const SETTLE: Duration = Duration::from_millis(200);
/// The longest a batch waits for quiet once it began: a tree that never stops changing is
/// still mirrored this often.
pub const MOST_WAIT: Duration = Duration::from_secs(2);

/// What changed in a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Renames within the tree, in order: relative paths (`/`-separated) before and after.
    pub renames: Vec<(String, String)>,
    /// Notifications gathered.
    pub events: usize,
    /// The notifications were lost somewhere (a queue overflowed): only a full pass can tell.
    pub rescan: bool,
}

/// A watch on a local tree.
pub struct TreeWatcher {
    root: PathBuf,
    events: mpsc::UnboundedReceiver<notify::Result<Event>>,
    _watcher: RecommendedWatcher,
}

impl TreeWatcher {
    /// Watches `root` and everything beneath it.
    ///
    /// # Errors
    /// The watch could not be set up (too many watches: `fs.inotify.max_user_watches`).
    pub fn start(root: &Path) -> notify::Result<TreeWatcher> {
        let root = std::path::absolute(root).map_err(notify::Error::io)?;
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })?;
        watcher.watch(&root, RecursiveMode::Recursive)?;
        Ok(TreeWatcher {
            root,
            events,
            _watcher: watcher,
        })
    }

    /// Waits for a change, then for the tree to be quiet for [`SETTLE`] (or [`MOST_WAIT`] to
    /// pass), and says what changed. `None` when the watch ended.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        let mut batch = Batch::default();
        let first = self.events.recv().await?;
        self.note(first, &mut batch);
        let deadline = Instant::now() + MOST_WAIT;
        loop {
            let quiet = (Instant::now() + SETTLE).min(deadline);
            match tokio::time::timeout_at(quiet, self.events.recv()).await {
                Ok(Some(event)) => self.note(event, &mut batch),
                Ok(None) => return Some(batch),
                Err(_) => return Some(batch),
            }
        }
    }

    fn note(&self, event: notify::Result<Event>, batch: &mut Batch) {
        batch.events += 1;
        let Ok(event) = event else {
            batch.rescan = true;
            return;
        };
        if event.need_rescan() {
            batch.rescan = true;
        }
        if let EventKind::Modify(ModifyKind::Name(RenameMode::Both)) = event.kind
            && let [from, to] = event.paths.as_slice()
            && let (Some(from), Some(to)) = (self.relative(from), self.relative(to))
        {
            batch.renames.push((from, to));
        }
    }

    /// `path` relative to the watched root, `/`-separated, if it is beneath it and UTF-8.
    fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        let parts = parts?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_one_batch_and_a_rename_is_read_as_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut watcher = TreeWatcher::start(dir.path()).unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("sub/f{i}")), "x").unwrap();
        }
        // Three hundred writes in a burst come as a few batches at most (one, unless the
        // machine stalls for longer than the settling time in the middle of the burst).
        let (mut events, mut batches) = (0, 0);
        while events < 300 {
            let batch = tokio::time::timeout(Duration::from_secs(20), watcher.next_batch())
                .await
                .unwrap()
                .unwrap();
            events += batch.events;
            batches += 1;
        }
        assert!(batches <= 5, "{batches} batches for one burst");
        std::fs::rename(dir.path().join("sub/f1"), dir.path().join("renamed")).unwrap();
        let renames = loop {
            let batch = tokio::time::timeout(Duration::from_secs(20), watcher.next_batch())
                .await
                .unwrap()
                .unwrap();
            if !batch.renames.is_empty() {
                break batch.renames;
            }
        };
        assert_eq!(renames, vec![("sub/f1".to_string(), "renamed".to_string())]);
    }
}
