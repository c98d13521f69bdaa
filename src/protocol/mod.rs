//! The ferry wire protocol, pure: no sockets, no async, no clocks.
//!
//! A connection is: an 8-byte [`preamble`] each way; TLS 1.3 unless both ends asked for
//! plaintext; then [`frame`]s. Frames carry JSON control [`message`]s or raw data. The first
//! messages are the handshake (`hello`, optional `challenge`/`proof`, `welcome`), then the
//! client sends requests. PROTOCOL.md at the repository root is the complete specification;
//! this module is its executable form, and every decoder here is a fuzz target.

pub mod error_code;
pub mod files;
pub mod frame;
pub mod hex;
pub mod message;
pub mod permission;
pub mod preamble;

pub use error_code::ErrorCode;
pub use files::{FileEntry, FileKind, HashAlgorithm};
pub use frame::{Frame, FrameError};
pub use message::{Message, MessageError, TtySize};
pub use permission::{Permission, Permissions};
pub use preamble::{Mode, Preamble, PreambleError};
