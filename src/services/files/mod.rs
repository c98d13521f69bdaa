//! Files: `ls`, `get`, `put` (and `mkdir`, `rm`) under the server root — verified end to end,
//! atomic, resumable, sandboxed. This is the server's side, one request per module; the
//! client's peer is `client::files`, and what both ends share (hashing, partial files, chunks,
//! resuming) is in `transfer`.
//!
//! The seed's FTP read a size header, waited for an ack, guessed where the file ended and
//! checked an MD5 only if the client happened to read it. Here every transfer ends with the
//! sender's whole-file hash, which the receiver compares with the hash of what it wrote; bytes go
//! to a partial file renamed into place only after that check (`transfer::partial`); an
//! interrupted transfer resumes after a prefix both sides have hashed (`transfer::resume`); and
//! nothing outside the root is ever touched ([`sandbox`]).

pub mod directories;
pub mod get;
pub mod get_delta;
pub mod held_budget;
pub mod held_puts;
pub mod links;
pub mod list;
pub mod put;
pub mod resume_budget;
pub mod sandbox;
pub mod sweep;
mod upload;
