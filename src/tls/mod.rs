//! TLS: the server's identity, the client's pin store, and the rustls configurations.

pub mod identity;
pub mod pinning;
pub mod rustls_config;

pub use identity::{ServerIdentity, fingerprint};
pub use pinning::{KnownServers, PinStatus};
