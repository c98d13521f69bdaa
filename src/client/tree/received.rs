//! Files received by `get -r`, made durable and put in place in batches on blocking threads
//! while the next ones arrive: small files written together, then committed together.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use super::TreeReport;
use super::get::SMALL_WRITE_BYTES;
use crate::client::ClientError;
use crate::client::files::{SmallGet, Transfer, VerifiedGet};
use crate::transfer::commit::{Sealed, commit_all, write_whole};
use crate::transfer::delta::Signature;
use crate::transfer::hash_cache::{Fingerprint, HashCache};
use crate::transfer::partial::{open_dir, parent_and_name};

/// A received file waiting for its commit.
pub(super) struct Received {
    rel: String,
    transfer: Transfer,
    sealed: Sealed,
    local: PathBuf,
    /// For a file built from a delta: the signature derived as it was built, kept once the file
    /// is in place (the next delta against it need not read it to sign it).
    built: Option<(Arc<HashCache>, Signature)>,
}

/// Small files received into memory, written to their partials together in one trip to a
/// blocking thread, while the next ones arrive.
pub(super) struct SmallWrites {
    files: Vec<(String, PathBuf, Transfer, SmallGet)>,
    bytes: usize,
    /// Files held before they are written, at most.
    most: usize,
    running: Option<tokio::task::JoinHandle<WrittenSmall>>,
}

type WrittenSmall = Result<Vec<Received>, ClientError>;

impl SmallWrites {
    pub(super) fn new(most: usize) -> Self {
        SmallWrites {
            files: Vec::new(),
            bytes: 0,
            most,
            running: None,
        }
    }

    pub(super) fn push(&mut self, rel: String, local: PathBuf, transfer: Transfer, got: SmallGet) {
        self.bytes += got.bytes.len();
        self.files.push((rel, local, transfer, got));
    }

    pub(super) fn is_full(&self) -> bool {
        self.files.len() >= self.most || self.bytes >= SMALL_WRITE_BYTES
    }

    /// Waits for the running write; its files, sealed for the next commit.
    pub(super) async fn wait(&mut self) -> WrittenSmall {
        match self.running.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(Vec::new()),
        }
    }

    /// Starts writing every held file into its partial, after the running write is done;
    /// returns that one's files, sealed for the next commit.
    pub(super) async fn write(&mut self) -> WrittenSmall {
        let done = self.wait().await?;
        let files = std::mem::take(&mut self.files);
        self.bytes = 0;
        if !files.is_empty() {
            self.running = Some(tokio::task::spawn_blocking(move || write_small(files)));
        }
        Ok(done)
    }
}

/// Writes small files, each sealed for a commit: unnamed where the file system can (see
/// `transfer::unnamed`), else into their partials. Each directory is opened once per batch.
fn write_small(files: Vec<(String, PathBuf, Transfer, SmallGet)>) -> WrittenSmall {
    let mut dirs: HashMap<PathBuf, Arc<OwnedFd>> = HashMap::new();
    files
        .into_iter()
        .map(|(rel, local, transfer, got)| {
            let written = (|| -> std::io::Result<Sealed> {
                let (parent, name) = parent_and_name(&local);
                let dir = match dirs.get(parent) {
                    Some(dir) => Arc::clone(dir),
                    None => {
                        let dir = Arc::new(open_dir(parent)?);
                        dirs.insert(parent.to_path_buf(), Arc::clone(&dir));
                        dir
                    }
                };
                write_whole(dir, &name, &got.bytes, Some(got.mode), Some(got.mtime_ns))
            })();
            match written {
                Ok(sealed) => Ok(Received {
                    rel,
                    transfer,
                    sealed,
                    local,
                    built: None,
                }),
                Err(source) => Err(ClientError::Local {
                    path: local,
                    source,
                }),
            }
        })
        .collect()
}

/// A verified partial with the server's mode and mtime, waiting for a commit.
pub(super) fn seal(
    rel: String,
    transfer: Transfer,
    verified: VerifiedGet,
    local: PathBuf,
) -> Received {
    let (_, name) = parent_and_name(&local);
    let VerifiedGet {
        partial,
        mode,
        mtime_ns,
        built,
    } = verified;
    Received {
        rel,
        transfer,
        sealed: Sealed::partial(partial, &name, Some(mode), Some(mtime_ns)),
        local,
        built,
    }
}

/// Received files being made durable and renamed into place on a blocking thread while the
/// next ones arrive: a commit waits for the disk (two `syncfs`), and the connection need not.
/// One runs at a time; each file joins the report once its commit is done.
#[derive(Default)]
pub(super) struct Commits {
    running: Option<RunningCommit>,
}

type RunningCommit = (
    tokio::task::JoinHandle<Vec<std::io::Result<()>>>,
    Vec<(String, Transfer, PathBuf)>,
);

impl Commits {
    /// Starts committing `received` (after the running commit, if any, is done).
    pub(super) async fn start(
        &mut self,
        received: &mut Vec<Received>,
        report: &mut TreeReport,
    ) -> Result<(), ClientError> {
        self.finish(report).await?;
        if received.is_empty() {
            return Ok(());
        }
        let mut sealed = Vec::with_capacity(received.len());
        let mut built = Vec::with_capacity(received.len());
        let mut rest = Vec::with_capacity(received.len());
        for one in received.drain(..) {
            sealed.push(one.sealed);
            built.push(one.built);
            rest.push((one.rel, one.transfer, one.local));
        }
        let commit = move || {
            let placed = commit_all(sealed);
            placed
                .into_iter()
                .zip(built)
                .map(|(placed, built)| {
                    let placed = placed?;
                    if let Some((hashes, signature)) = built {
                        hashes.keep_built_signature(Fingerprint::of(&placed), &signature);
                    }
                    Ok(())
                })
                .collect()
        };
        self.running = Some((tokio::task::spawn_blocking(commit), rest));
        Ok(())
    }

    /// Waits for the running commit; its files join the report.
    pub(super) async fn finish(&mut self, report: &mut TreeReport) -> Result<(), ClientError> {
        let Some((task, rest)) = self.running.take() else {
            return Ok(());
        };
        let results = task.await.map_err(std::io::Error::other)?;
        for (result, (rel, transfer, local)) in results.into_iter().zip(rest) {
            result.map_err(|source| ClientError::Local {
                path: local,
                source,
            })?;
            report.files.push((rel, transfer));
        }
        Ok(())
    }
}
