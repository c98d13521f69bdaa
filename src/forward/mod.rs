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

/// Bytes either side may send on a stream before the other grants more. The stream's
/// bandwidth is at most a window per round trip of credit, and on a busy loopback that trip
/// is ~1 ms: 512 KiB held one stream to 581 MB/s, 2 MiB (what OpenSSH's channels use) gave
/// 748 MB/s (bench/forward.sh). What a session queues for slow sockets stays bounded: 64
/// streams hold 128 MiB at most.
pub const WINDOW: u32 = 2 * 1024 * 1024;

/// The window a client uses: what the server's `forward_ready` says, within 64 KiB..64 MiB
/// (a window below a frame would never let a piece go; one far above bounds nothing).
pub fn window_from_peer(window: u32) -> u32 {
    window.clamp(64 * 1024, 64 * 1024 * 1024)
}

/// Bytes read from a socket at a time (one data frame): 256 KiB carried 1 GiB in 1.19 s
/// where 128 KiB took 1.38 s, with fewer frames, credits and wake-ups per byte.
pub const PIECE: usize = 256 * 1024;

/// How long a listener waits after a failed accept (descriptors exhausted) before the next.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_window_is_kept_within_bounds() {
        assert_eq!(window_from_peer(WINDOW), WINDOW);
        assert_eq!(window_from_peer(0), 64 * 1024);
        assert_eq!(window_from_peer(u32::MAX), 64 * 1024 * 1024);
    }
}
