//! The audit log: who signed in from where, who ran what, who changed which file, which users
//! changed, and who used a legacy listener — one JSON object per line (`event`), written by a
//! thread of its own (`writer`) from a bounded queue so that no session ever waits on it
//! (`log`), and read back by `ferry audit` (`read`).

mod cap;
mod event;
mod limiter;
mod log;
mod read;
mod writer;

pub use cap::Cut;
pub use event::{Actor, AuditEvent, AuditRecord, CLAIMED_NAME_CHARS};
pub use log::AuditLog;
pub use read::{AuditFilter, log_files};
