//! TLS: the server's identity, the client's pin store, and the rustls configurations.

pub mod identity;
pub mod pinning;
pub mod rustls_config;

pub use identity::{ServerIdentity, fingerprint};
pub use pinning::{KnownServers, PinStatus};

/// Encrypted bytes rustls holds for the socket before a write stops taking plaintext (its
/// default is 64 KiB). A 128 KiB data frame then leaves in one `writev` instead of three; the
/// bound still holds per connection, and a peer that does not read stalls the writer as before.
pub const SEND_BUFFER_LIMIT: usize = 256 * 1024;
