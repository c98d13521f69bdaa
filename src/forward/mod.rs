//! Port forwarding: many TCP streams carried over one ferry session (PROTOCOL.md 5.7), as
//! `ssh -L/-R/-D` do.
//!
//! - [`mux`]: the streams over one connection, the same at both ends — opened, credited,
//!   half-closed and closed by messages, their bytes in data frames behind a stream id.
//! - [`policy`]: the server's rules for where streams may go and where it may listen.
//! - [`socks`]: the SOCKS5 greeting a `-D` proxy answers before a stream opens.
//!
//! The server's side is `services::forward`, the client's `client::forward`.

mod link;
pub mod mux;
pub mod policy;
mod pump;
pub mod socks;
mod streams;

/// Bytes either side may send on a stream before the other grants more: enough to keep a
/// loopback stream busy (credit comes back long before half of it is used), small enough that
/// what a session queues for slow sockets stays bounded (64 streams: 32 MiB at most).
pub const WINDOW: u32 = 512 * 1024;

/// Bytes read from a socket at a time (one data frame).
pub const PIECE: usize = 128 * 1024;

/// How long a listener waits after a failed accept (descriptors exhausted) before the next.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
