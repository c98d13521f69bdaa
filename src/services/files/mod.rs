//! Files: `ls`, `get`, `put` (and `mkdir`, `rm`) under the server root — verified end to end,
//! atomic, resumable, sandboxed.
//!
//! The seed's FTP read a size header, waited for an ack, guessed where the file ended and
//! checked an MD5 only if the client happened to read it. Here every transfer ends with the
//! sender's whole-file hash, which the receiver compares with the hash of what it wrote; bytes go
//! to a partial file renamed into place only after that check ([`partial`]); an interrupted
//! transfer resumes after a prefix both sides have hashed; and nothing outside the root is ever
//! touched ([`sandbox`]).

pub mod client;
pub mod hashing;
pub mod metadata;
pub mod partial;
pub mod sandbox;
pub mod server;
pub mod transfer;
pub mod tree;
