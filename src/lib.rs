//! ferry carries chat, remote commands and files across TCP — safely, verifiably, and fast.
//!
//! Layers, top to bottom (dependencies point down only):
//!
//! - `cli` (in the binary, with `bench`): arguments, printing, exit codes.
//! - [`client`] and [`server`]: the two ends. The server accepts, applies limits, runs the
//!   handshake and dispatches each request to a service in [`services`].
//! - [`connection`]: the only code that reads and writes frames on a stream.
//! - [`protocol`]: frames and messages, pure and I/O-free.
//!
//! Beside them, [`legacy`] keeps the seed's byte protocols on listeners of their own.
//!
//! Cross-cutting: [`auth`], [`tls`], [`config`], [`shutdown`], and what lets an operator see
//! the server: [`audit`] and [`metrics`]. The wire format is specified
//! in PROTOCOL.md.

// `deny`, not `forbid`: one module may allow it, services::exec::cgroup_join (a command joins
// its cgroup between fork and exec), with the proof of soundness in its comment.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod atomic_file;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod connection;
pub mod fd_limit;
pub mod forward;
pub mod legacy;
pub mod metrics;
pub mod per_address;
pub mod protocol;
pub mod random;
pub mod safe_text;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod stall;
pub mod throttle;
pub mod tls;
pub mod token_bucket;
pub mod transfer;
pub mod transport;
