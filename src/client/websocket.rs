//! The client's side of the web door: a server named `wss://HOST:PORT[/PATH]` (or `ws://` for a
//! plaintext server) is reached through its WebSocket endpoint instead of the TCP port. TLS and
//! the pin check are the same as on TCP (the pin is kept under `HOST:PORT` of the web door);
//! then the session runs over [`WsStream`], one frame per binary message, as the page's does.
//! Useful where only HTTP(S) gets through, and to measure the web path against the native one.

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::connect::{Transport, tls_pinned};
use super::{ClientError, ClientOptions};
use crate::connection::ws_stream::{Incoming, WsMessage, WsStream};

/// A `ws://` or `wss://` server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebAddress {
    secure: bool,
    /// `HOST:PORT`, what TCP connects to and the pin store's key.
    host_port: String,
    /// The endpoint's path, `/ws` unless given.
    path: String,
}

impl WebAddress {
    /// `Some` when `server` names a web door (by its scheme).
    pub(crate) fn parse(server: &str) -> Option<WebAddress> {
        let (secure, rest) = match server.split_once("://")? {
            ("wss", rest) => (true, rest),
            ("ws", rest) => (false, rest),
            _ => return None,
        };
        let (authority, path) = rest.find('/').map_or((rest, "/ws"), |at| rest.split_at(at));
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => authority.contains(':'),
        };
        let host_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        Some(WebAddress {
            secure,
            host_port,
            path: path.to_string(),
        })
    }

    fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host_port, self.path)
    }
}

/// Opens the WebSocket (over TLS with the pin check for `wss://`).
///
/// # Errors
/// A connection, TLS or pin failure; a refused upgrade; `ws://` without `--plaintext` or
/// `wss://` with it.
pub(crate) async fn connect_websocket(
    address: &WebAddress,
    options: &ClientOptions,
) -> Result<Transport, ClientError> {
    if address.secure == options.plaintext {
        return Err(ClientError::Protocol(if address.secure {
            "wss:// is encrypted: drop --plaintext (or use ws://)".into()
        } else {
            "ws:// is not encrypted: add --plaintext to allow it (or use wss://)".into()
        }));
    }
    let tcp = TcpStream::connect(&address.host_port)
        .await
        .map_err(|source| ClientError::Connect {
            server: address.host_port.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let url = address.url();
    let refused = |e: tokio_tungstenite::tungstenite::Error| {
        ClientError::Protocol(format!("{url} did not open a WebSocket: {e}"))
    };
    if address.secure {
        let (tls, presented, status) = tls_pinned(tcp, &address.host_port, options).await?;
        let (socket, _) = tokio_tungstenite::client_async(url.as_str(), tls)
            .await
            .map_err(refused)?;
        Ok(Transport {
            stream: Box::new(WsStream::new(socket)),
            tls: Some((presented, status)),
        })
    } else {
        let (socket, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .map_err(refused)?;
        Ok(Transport {
            stream: Box::new(WsStream::new(socket)),
            tls: None,
        })
    }
}

impl WsMessage for Message {
    fn binary(frame: Bytes) -> Self {
        Message::Binary(frame)
    }

    fn into_incoming(self) -> Incoming {
        match self {
            Message::Binary(bytes) => Incoming::Binary(bytes),
            Message::Text(_) => Incoming::Text,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Incoming::Control,
            Message::Close(_) => Incoming::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(server: &str) -> Option<(bool, String, String)> {
        WebAddress::parse(server).map(|a| (a.secure, a.host_port, a.path))
    }

    #[test]
    fn web_addresses_by_their_scheme() {
        let own = |s: &str| s.to_string();
        assert_eq!(
            parsed("wss://127.0.0.1:8443"),
            Some((true, own("127.0.0.1:8443"), own("/ws")))
        );
        assert_eq!(
            parsed("ws://localhost:80/ferry/ws"),
            Some((false, own("localhost:80"), own("/ferry/ws")))
        );
        assert_eq!(
            parsed("wss://box"),
            Some((true, own("box:443"), own("/ws")))
        );
        assert_eq!(
            parsed("wss://[::1]"),
            Some((true, own("[::1]:443"), own("/ws")))
        );
        assert_eq!(
            parsed("wss://[::1]:9443/ws"),
            Some((true, own("[::1]:9443"), own("/ws")))
        );
        assert_eq!(parsed("127.0.0.1:9999"), None);
        assert_eq!(parsed("http://box:80"), None);
    }
}
