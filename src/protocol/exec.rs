//! Wire messages of the exec service: a command, its terminal, its signals and its end.

use serde::{Deserialize, Serialize};

use super::serde_defaults::is_false;

/// Client → server: run a command (needs `exec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// Program and arguments, run directly (no shell). Empty with `shell`.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Run the server account's login shell instead of `argv` (needs `tty`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub shell: bool,
    /// Run on a pseudo-terminal of this size and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
    /// End the command (its whole process group) after this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A terminal's type and size, for commands run on a pseudo-terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// The `TERM` value, e.g. `xterm-256color`.
    pub term: String,
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Server → client: the command runs; data frames follow (0 stdout, 1 stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStarted {
    /// The command's process id on the server.
    pub pid: u32,
}

/// Client → server: the terminal was resized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Client → server: deliver a signal (`INT`, `TERM`, `HUP`, `QUIT`, `KILL`, `USR1`, `USR2`)
/// to the command's process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSignal {
    /// The signal's name without `SIG`.
    pub signal: String,
}

/// Server → client: the command ended; the exchange is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    /// Exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// It was ended because its `timeout_ms` passed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub timed_out: bool,
}
