//! The ferry wire protocol, pure: no sockets, no async, no clocks.
//!
//! A connection is: an 8-byte [`preamble`] each way; TLS 1.3 unless both ends asked for
//! plaintext; then [`frame`]s. Frames carry JSON control [`message`]s or raw data. The first
//! messages are the handshake ([`session`]: `hello`, optional `challenge`/`proof`, `welcome`),
//! then the client sends requests, each to one service ([`chat`], [`exec`], [`files`]). A
//! refused request is answered with a [`Refusal`]. PROTOCOL.md at the repository root is the
//! complete specification; this module is its executable form, and every decoder here is a
//! fuzz target.

pub mod chat;
pub mod error_code;
pub mod exec;
pub mod files;
pub mod forward;
pub mod frame;
pub mod hex;
pub mod message;
pub mod path;
pub mod permission;
pub mod preamble;
pub mod refusal;
mod serde_defaults;
pub mod session;
pub mod stats;

pub use chat::{
    ChatAck, ChatDirect, ChatJoin, ChatJoined, ChatList, ChatMembers, ChatMessage, ChatNick,
    ChatNotice, ChatRooms, ChatSay, ChatTopic, ChatWho, RoomInfo,
};
pub use error_code::ErrorCode;
pub use exec::{Exec, ExecExit, ExecResize, ExecSignal, ExecStarted, TtySize};
pub use files::{
    Attrs, BaseSigned, ChunkHashing, DeltaBase, FileEntry, FileKind, Get, GetEnd, GetReady,
    HardLink, HashAlgorithm, List, ListDone, ListEntries, Mkdir, Put, PutDone, PutEnd, PutReady,
    PutStart, Remove, Rename, Signing, Symlink,
};
pub use forward::{
    FORWARD_CHANNEL, Forward, ForwardListen, ForwardReady, ListenReady, ListenRefused, StreamClose,
    StreamCredit, StreamEof, StreamOpen, StreamOpened, StreamRefused,
};
pub use frame::{Frame, FrameError};
pub use message::{Message, MessageError};
pub use permission::{Permission, Permissions};
pub use preamble::{Mode, Preamble, PreambleError};
pub use refusal::Refusal;
pub use session::{Challenge, Goodbye, Hello, KeyChallenge, KeyProof, Ping, Pong, Proof, Welcome};
pub use stats::{Sample, Stats, StatsReport};
