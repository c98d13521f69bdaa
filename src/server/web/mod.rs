//! The web door: a listener of its own (`serve --web ADDR`, `[web] listen`) speaking HTTP —
//! HTTPS with the server's own identity unless the server runs `--plaintext`, and then only on
//! loopback — that serves the page (`web/`, embedded: `assets`) and whose WebSocket endpoint
//! `/ws` carries ferry frames to the very same session code as the TCP door
//! (`session::serve_stream`): the same handshake, permissions and limits. The page is a client
//! of the protocol like any other; the door gives it nothing a client could not ask for.
//!
//! A request whose `Host` does not name this door is refused before anything else (`host`: the
//! defence against DNS rebinding). Cross-site WebSocket hijacking is refused: a browser always sends `Origin`, and an upgrade
//! whose `Origin` is not this server itself gets 403. (A client that is not a browser sends
//! none and still has to prove a token like any other.)

mod assets;
mod host;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tracing::debug;

use super::ServerState;
use super::door::{DoorListener, Held};
use super::session::{SessionEnd, serve_stream};
use crate::connection::ws_stream::{Incoming, WsMessage, WsStream};
use crate::shutdown::Shutdown;
use crate::transport::Transport;
use host::AllowedHosts;

/// Bytes of WebSocket frames gathered before they are written to the socket.
const WS_WRITE_BATCH: usize = 128 * 1024;

/// The WebSocket layer's read buffer for each session (see `upgrade`).
const WS_READ_BUFFER: usize = 4 * 1024;

/// What one HTTP connection's handlers know.
#[derive(Clone)]
struct Door {
    state: Arc<ServerState>,
    shutdown: Shutdown,
    peer: SocketAddr,
    /// The address the connection arrived on: the `Host` an IP literal must name.
    local: IpAddr,
    /// The names besides its own address this door answers to.
    hosts: Arc<AllowedHosts>,
    /// `https` or `http`: what this door's own origin starts with.
    scheme: &'static str,
    /// The connection's place within the limits, held until its last user (the HTTP
    /// connection, then the WebSocket session it became) is done.
    _held: Arc<Held>,
}

/// Binds the web door; plaintext only on loopback.
///
/// # Errors
/// The address cannot be bound, or a plaintext door was asked for beyond loopback.
pub(crate) async fn bind(addr: SocketAddr, plaintext: bool) -> std::io::Result<DoorListener> {
    DoorListener::bind(addr, plaintext, "web", "").await
}

/// Serves HTTP connections until shutdown, within the server's connection limits; `hosts` are
/// the names (`[web] hosts`) it answers to besides its own address.
pub(crate) async fn run(
    listener: DoorListener,
    state: Arc<ServerState>,
    shutdown: Shutdown,
    hosts: Vec<String>,
) {
    let hosts = Arc::new(AllowedHosts::new(hosts));
    listener
        .run(state, shutdown, |accepted| {
            let local = match accepted.tcp.local_addr() {
                Ok(addr) => addr.ip(),
                // Without its own address a connection can match no IP literal: `localhost`
                // and the listed names still work.
                Err(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            };
            let door = Door {
                local,
                hosts: Arc::clone(&hosts),
                scheme: if accepted.state.tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                state: accepted.state,
                shutdown: accepted.shutdown,
                peer: accepted.peer,
                _held: Arc::new(accepted.held),
            };
            serve_http(accepted.tcp, door)
        })
        .await;
}

/// One HTTP connection: TLS if the server has an identity, then HTTP/1.1 with upgrades.
async fn serve_http(tcp: TcpStream, door: Door) {
    let deadline = Instant::now() + door.state.limits.handshake_timeout();
    match door.state.tls.clone() {
        Some(acceptor) => match timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => serve_io(tls, door).await,
            _ => debug!(peer = %door.peer, "web TLS handshake failed or timed out"),
        },
        None => serve_io(tcp, door).await,
    }
}

async fn serve_io<I>(io: I, door: Door)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let force = door.shutdown.force.clone();
    let limit = door.state.limits.handshake_timeout();
    let router = Router::new()
        .route("/ws", get(upgrade))
        .route("/ferry.json", get(assets::server_facts))
        .fallback(get(assets::page_file))
        .layer(axum::middleware::from_fn_with_state(
            door.clone(),
            refuse_other_hosts,
        ))
        .layer(axum::middleware::map_response(assets::security_headers))
        .with_state(door);
    let service = TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    // Until it upgrades, an HTTP connection gets the handshake timeout in all: a client that
    // trickles its request line (or never sends one) cannot hold its place within the limits.
    // Once upgraded, the session runs on its own, under the session's own timeouts.
    tokio::select! {
        _ = force.cancelled() => {}
        _ = tokio::time::timeout(limit, connection) => {}
    }
}

/// Every request: one whose `Host` does not name this door gets 421 before any handler.
async fn refuse_other_hosts(State(door): State<Door>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if door.hosts.allows_header(host, door.local) {
        return next.run(request).await;
    }
    debug!(peer = %door.peer, host = ?host.map(crate::safe_text::escape), "web request for another host refused");
    (
        StatusCode::MISDIRECTED_REQUEST,
        "this ferry web door does not answer to that host name (add it to [web] hosts)",
    )
        .into_response()
}

/// `GET /ws`: a same-origin WebSocket upgrade becomes a ferry session.
async fn upgrade(State(door): State<Door>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if !same_origin(&headers, door.scheme) {
        return (
            StatusCode::FORBIDDEN,
            "cross-site WebSocket refused: the page's Origin is not this server",
        )
            .into_response();
    }
    // One message is one frame: a few bytes more than the largest frame is the most allowed.
    let max = door.state.limits.max_frame_bytes + 8;
    ws.max_message_size(max)
        .max_frame_size(max)
        // What waits to be sent — data, pongs, the close — is bounded like a TCP session's
        // data: the usual batch plus one largest frame. A peer that does not read fills it and
        // then waits; one that pings without reading is cut (`ws_stream`).
        .write_buffer_size(WS_WRITE_BATCH)
        .max_write_buffer_size(WS_WRITE_BATCH + max)
        // Allocated whole for every session, busy or idle: small, so an idle WebSocket session
        // costs about what a TCP one does. A large message still arrives in one buffer sized to it.
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| {
            // The session outlives the HTTP exchange that opened it: shutdown waits for it
            // like for any other, and it keeps the connection's place within the limits.
            let tracker = door.shutdown.tracker.clone();
            tracker.track_future(async move {
                // The whole door, its place within the limits included (a closure would
                // otherwise capture only the fields it names).
                let door = door;
                let deadline = Instant::now() + door.state.limits.handshake_timeout();
                let stream = Box::new(WsStream::new(socket));
                let end = serve_stream(
                    stream,
                    Transport::Websocket,
                    door.peer,
                    &door.state,
                    &door.shutdown,
                    deadline,
                )
                .await;
                match end {
                    SessionEnd::Closed => debug!(peer = %door.peer, "web session closed"),
                    reason => debug!(peer = %door.peer, %reason, "web session ended"),
                }
            })
        })
}

impl WsMessage for axum::extract::ws::Message {
    fn binary(frame: bytes::Bytes) -> Self {
        Self::Binary(frame)
    }

    fn into_incoming(self) -> Incoming {
        match self {
            Self::Binary(bytes) => Incoming::Binary(bytes),
            Self::Text(_) => Incoming::Text,
            Self::Ping(_) | Self::Pong(_) => Incoming::Control,
            Self::Close(_) => Incoming::Close,
        }
    }
}

/// Whether the upgrade comes from this server's own page: no `Origin` (not a browser), or
/// one equal to `SCHEME://HOST` of the request.
fn same_origin(headers: &HeaderMap, scheme: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str(), host) {
        (Ok(origin), Some(host)) => origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_the_server_s_own_origin_may_upgrade() {
        assert!(same_origin(&headers(None, "127.0.0.1:8443"), "https"));
        assert!(same_origin(
            &headers(Some("https://127.0.0.1:8443"), "127.0.0.1:8443"),
            "https"
        ));
        assert!(!same_origin(
            &headers(Some("http://127.0.0.1:8443"), "127.0.0.1:8443"),
            "https"
        ));
        assert!(!same_origin(
            &headers(Some("https://evil.example"), "127.0.0.1:8443"),
            "https"
        ));
        assert!(!same_origin(
            &headers(Some("null"), "127.0.0.1:8443"),
            "https"
        ));
    }
}
