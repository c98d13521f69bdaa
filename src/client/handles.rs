//! Typed handles on an open session, one per service: what a CLI verb, the bench and the
//! tests call, so that none of them holds a raw connection. Each method is its service peer's
//! function bound to this session's connection.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::chat::{self, ChatReceiver, ChatSender, ChatTarget};
use super::exec::{self, ExecEvent, ExecOutcome};
use super::files::{self, Check, Progress, Transfer};
use super::tree::{self, TreeOptions, TreeReport};
use super::{Client, ClientError};
use crate::connection::{BoxedStream, Connection};
use crate::protocol::{ChatJoined, Exec, FileEntry, HashAlgorithm};
use crate::transfer::hash_cache::HashCache;

/// The file service on a session; borrows it, so requests follow one another.
pub struct Files<'a> {
    conn: &'a mut Connection<BoxedStream>,
    hashes: Arc<HashCache>,
}

impl Client {
    /// The file service on this session.
    pub fn files(&mut self) -> Files<'_> {
        let hashes = self.hashes();
        Files {
            conn: self.connection(),
            hashes,
        }
    }

    /// Joins a room or a direct conversation: the session becomes the chat exchange, split
    /// into a sending and a receiving half.
    ///
    /// # Errors
    /// The server's refusal (nick in use, invalid name, no permission) or a broken connection.
    pub async fn chat(
        self,
        target: ChatTarget,
        nick: &str,
        history: bool,
    ) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
        chat::join(self.into_connection(), target, nick, history).await
    }

    /// As [`Client::chat`], trying `nick2`, `nick3`... when `nick` is taken (for a default
    /// nick nobody chose on purpose).
    ///
    /// # Errors
    /// As [`Client::chat`].
    pub async fn chat_picking_nick(
        self,
        target: ChatTarget,
        nick: &str,
        history: bool,
    ) -> Result<(ChatSender, ChatReceiver, ChatJoined), ClientError> {
        chat::join_picking_nick(self.into_connection(), target, nick, history).await
    }

    /// Runs a command, wiring it to `stdin`, `stdout` and `stderr`; the session is given
    /// over to it.
    ///
    /// # Errors
    /// The server's refusal or a broken connection.
    pub async fn exec<I, O, E>(
        self,
        request: Exec,
        stdin: I,
        stdout: O,
        stderr: E,
        events: mpsc::Receiver<ExecEvent>,
    ) -> Result<ExecOutcome, ClientError>
    where
        I: AsyncRead + Unpin + Send + 'static,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        exec::run(
            self.into_connection(),
            request,
            stdin,
            stdout,
            stderr,
            events,
        )
        .await
    }
}

impl Files<'_> {
    /// See [`files::list_each`].
    ///
    /// # Errors
    /// As there.
    pub async fn list_each(
        &mut self,
        path: &str,
        recursive: bool,
        each: impl FnMut(Vec<FileEntry>) -> Result<(), ClientError>,
    ) -> Result<u64, ClientError> {
        files::list_each(self.conn, path, recursive, each).await
    }

    /// See [`files::list`].
    ///
    /// # Errors
    /// As there.
    pub async fn list(
        &mut self,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<FileEntry>, ClientError> {
        files::list(self.conn, path, recursive).await
    }

    /// See [`files::describe`].
    ///
    /// # Errors
    /// As there.
    pub async fn describe(&mut self, path: &str) -> Result<FileEntry, ClientError> {
        files::describe(self.conn, path).await
    }

    /// See [`files::get_file`].
    ///
    /// # Errors
    /// As there.
    pub async fn get_file(
        &mut self,
        remote: &str,
        target: &Path,
        algorithm: HashAlgorithm,
        delta: bool,
        compress: bool,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        let delta = delta.then(|| std::sync::Arc::clone(&self.hashes));
        files::get_file(
            self.conn, remote, target, algorithm, delta, compress, progress,
        )
        .await
    }

    /// See [`files::put_file`].
    ///
    /// # Errors
    /// As there.
    pub async fn put_file(
        &mut self,
        source: &Path,
        remote: &str,
        algorithm: HashAlgorithm,
        delta: bool,
        compress: bool,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        files::put_file(
            self.conn,
            &self.hashes,
            source,
            remote,
            algorithm,
            delta,
            compress,
            progress,
        )
        .await
    }

    /// See [`tree::get_tree`].
    ///
    /// # Errors
    /// As there.
    pub async fn get_tree(
        &mut self,
        remote: &str,
        target: &Path,
        options: &TreeOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, ClientError> {
        tree::get_tree(self.conn, &self.hashes, remote, target, options, progress).await
    }

    /// See [`tree::put_tree`].
    ///
    /// # Errors
    /// As there.
    pub async fn put_tree(
        &mut self,
        source: &Path,
        remote: &str,
        options: &TreeOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, ClientError> {
        tree::put_tree(self.conn, &self.hashes, source, remote, options, progress).await
    }

    /// See [`files::mkdir`].
    ///
    /// # Errors
    /// As there.
    pub async fn mkdir(
        &mut self,
        path: &str,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
    ) -> Result<(), ClientError> {
        files::mkdir(self.conn, path, mode, mtime_ns).await
    }

    /// See [`files::get_to_writer`].
    ///
    /// # Errors
    /// As there.
    pub async fn get_to_writer(
        &mut self,
        remote: &str,
        writer: std::fs::File,
        algorithm: HashAlgorithm,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        files::get_to_writer(self.conn, remote, writer, algorithm, progress).await
    }

    /// See [`files::is_same`].
    ///
    /// # Errors
    /// As there.
    pub async fn is_same(
        &mut self,
        remote: &str,
        entry: Option<&FileEntry>,
        local: &Path,
        check: Check,
    ) -> Result<bool, ClientError> {
        files::is_same(self.conn, remote, entry, local, check).await
    }

    /// See [`files::rename`].
    ///
    /// # Errors
    /// As there.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        files::rename(self.conn, from, to).await
    }

    /// See [`files::remove`].
    ///
    /// # Errors
    /// As there.
    pub async fn remove(&mut self, path: &str) -> Result<(), ClientError> {
        files::remove(self.conn, path).await
    }
}
