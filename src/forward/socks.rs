//! The SOCKS5 server side a `-D` proxy speaks to local programs (RFC 1928): no
//! authentication (it listens on loopback by default), the CONNECT command only, with IPv4,
//! IPv6 or a domain name — which is passed on as a name, so the server resolves it.
//!
//! Written by hand: ferry needs only the greeting and one request of a fixed binary format
//! (a few dozen lines); the SOCKS crates are clients, or proxies that dial themselves.

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::ErrorCode;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const NO_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;

/// The reply codes ferry gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Connected.
    Succeeded = 0,
    /// Anything else.
    Failure = 1,
    /// The server's `[forward]` rules do not allow it.
    NotAllowed = 2,
    /// The destination could not be reached.
    Unreachable = 4,
    /// The command is not CONNECT.
    CommandNotSupported = 7,
    /// The address type is unknown.
    AddressNotSupported = 8,
}

impl Reply {
    /// The reply for a refused stream.
    pub fn for_refusal(code: ErrorCode) -> Reply {
        match code {
            ErrorCode::PermissionDenied => Reply::NotAllowed,
            ErrorCode::NotFound | ErrorCode::Io | ErrorCode::Timeout => Reply::Unreachable,
            _ => Reply::Failure,
        }
    }
}

/// Reads the greeting and the request; returns where the program wants to go. A request ferry
/// does not serve is answered (and is an error here).
///
/// # Errors
/// A malformed greeting or request, or one that is not a CONNECT.
pub async fn accept(socket: &mut TcpStream) -> std::io::Result<(String, u16)> {
    let [version, count] = read_array::<2>(socket).await?;
    if version != VERSION {
        return Err(bad(format!("not SOCKS5 (version {version})")));
    }
    let mut methods = vec![0u8; count as usize];
    socket.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        socket.write_all(&[VERSION, NO_METHOD]).await?;
        return Err(bad(
            "the client offers no method without authentication".into()
        ));
    }
    socket.write_all(&[VERSION, NO_AUTH]).await?;
    let [version, command, _reserved, kind] = read_array::<4>(socket).await?;
    if version != VERSION {
        return Err(bad(format!("a request of version {version}")));
    }
    let host = match kind {
        1 => Ipv4Addr::from(read_array::<4>(socket).await?).to_string(),
        4 => Ipv6Addr::from(read_array::<16>(socket).await?).to_string(),
        3 => {
            let [len] = read_array::<1>(socket).await?;
            let mut name = vec![0u8; len as usize];
            socket.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| bad("a domain name that is not text".into()))?
        }
        other => {
            reply(socket, Reply::AddressNotSupported).await?;
            return Err(bad(format!("address type {other}")));
        }
    };
    let port = u16::from_be_bytes(read_array::<2>(socket).await?);
    if command != CONNECT {
        reply(socket, Reply::CommandNotSupported).await?;
        return Err(bad(format!("command {command} (only CONNECT is served)")));
    }
    Ok((host, port))
}

/// Answers the request (bound address 0.0.0.0:0: the stream is carried, not bound here).
///
/// # Errors
/// The socket failed.
pub async fn reply(socket: &mut TcpStream, code: Reply) -> std::io::Result<()> {
    socket.write_all(&reply_bytes(code)).await
}

/// The reply's bytes (for a reply written once the stream opens).
pub fn reply_bytes(code: Reply) -> [u8; 10] {
    [VERSION, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

async fn read_array<const N: usize>(socket: &mut TcpStream) -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    socket.read_exact(&mut bytes).await?;
    Ok(bytes)
}

fn bad(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("SOCKS: {why}"))
}
