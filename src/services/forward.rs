//! The server's side of port forwarding: a `forward` request (permission `forward`) turns the
//! session into a mux of streams (`forward::mux`). The client's streams connect where the
//! `[forward] connect` rules allow, to the very addresses checked; `forward_listen` opens a
//! listener where `[forward] listen` allows (loopback unless the config says otherwise) whose
//! connections are opened to the client as streams. Every stream counts against the session's
//! and the user's limits and is audited when it ends; when the session ends (or its rights are
//! taken, or the server stops) every stream and listener of it goes with it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::context::SessionContext;
use super::request_error::{CloseReason, RequestError};
use crate::audit::AuditEvent;
use crate::config::ForwardConfig;
use crate::connection::Connection;
use crate::forward::WINDOW;
use crate::forward::mux::{Dial, Mux, MuxConfig, MuxHandle, Side, StreamSummary};
use crate::forward::policy::Rules;
use crate::protocol::{
    ErrorCode, Forward, ForwardListen, ForwardReady, Goodbye, ListenReady, ListenRefused, Message,
    Permission, Refusal, StreamOpen,
};

/// How long a stream's connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's forwarding rules and the streams each user holds.
#[derive(Debug)]
pub struct Forwarding {
    config: ForwardConfig,
    connect: Rules,
    listen: Rules,
    per_user: Mutex<HashMap<String, u32>>,
}

impl Forwarding {
    /// The rules of `config` (validated when the config was read; a rule that does not parse
    /// allows nothing).
    pub fn new(config: &ForwardConfig) -> Forwarding {
        Forwarding {
            config: config.clone(),
            connect: Rules::parse(&config.connect).unwrap_or_default(),
            listen: Rules::parse(&config.listen).unwrap_or_default(),
            per_user: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one of `user`'s stream slots; `None` when the user holds the most already.
    fn take(self: &Arc<Self>, user: &str) -> Option<UserSlot> {
        let mut held = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(user.to_string()).or_insert(0);
        if *count >= self.config.max_streams_per_user {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            forwarding: Arc::clone(self),
            user: user.to_string(),
        })
    }
}

/// A stream slot of one user, given back when dropped.
struct UserSlot {
    forwarding: Arc<Forwarding>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut held = self
            .forwarding
            .per_user
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// Serves `forward`: the session carries streams until it ends.
///
/// # Errors
/// `permission_denied` without the permission or with nothing allowed; then the session
/// ends with the mux.
pub async fn serve_forward<S>(
    conn: &mut Connection<S>,
    _request: Forward,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Forward, "forward")?;
    let forwarding = Arc::clone(&ctx.forward);
    if forwarding.connect.is_empty() && forwarding.listen.is_empty() {
        return Err(Refusal::new(
            ErrorCode::PermissionDenied,
            "this server forwards nowhere: its [forward] connect and listen rules are empty",
        )
        .into());
    }
    let max_streams = forwarding.config.max_streams_per_session;
    conn.write_message(&Message::ForwardReady(ForwardReady {
        window: WINDOW,
        max_streams,
    }))
    .await?;
    let (mux, handle) = Mux::new(MuxConfig {
        client: false,
        max_streams,
        window: WINDOW,
    });
    let side = ServerSide {
        ctx: ctx.clone(),
        forwarding,
        slots: HashMap::new(),
        listeners: 0,
    };
    let run = mux.run(conn, side);
    tokio::pin!(run);
    let reason = tokio::select! {
        _ = &mut run => return Err(RequestError::ClientLeft),
        reason = ctx.lost(Permission::Forward) => reason,
        () = ctx.shutdown.cancelled() => CloseReason::ShuttingDown,
    };
    handle.finish(Some(Message::Goodbye(Goodbye {
        reason: reason.to_string(),
    })));
    let _ = run.await;
    Err(RequestError::Closed(reason))
}

struct ServerSide {
    ctx: SessionContext,
    forwarding: Arc<Forwarding>,
    /// The user's slot each open stream holds.
    slots: HashMap<u32, UserSlot>,
    listeners: u32,
}

impl ServerSide {
    fn user(&self) -> String {
        self.ctx
            .identity
            .user
            .clone()
            .unwrap_or_else(|| "anonymous".into())
    }
}

impl Side for ServerSide {
    fn dial(&mut self, open: &StreamOpen) -> Dial {
        let (Some(host), Some(port)) = (open.host.clone(), open.port) else {
            return Box::pin(async {
                Err(Refusal::new(
                    ErrorCode::BadMessage,
                    "a stream from the client needs host and port",
                ))
            });
        };
        let Some(slot) = self.forwarding.take(&self.user()) else {
            let most = self.forwarding.config.max_streams_per_user;
            return Box::pin(async move {
                Err(Refusal::new(
                    ErrorCode::ServerBusy,
                    format!("this user has {most} streams open, its most"),
                ))
            });
        };
        self.slots.insert(open.id, slot);
        let rules = Arc::clone(&self.forwarding);
        Box::pin(async move { connect_allowed(&rules.connect, &host, port).await })
    }

    fn message(&mut self, message: Message, handle: &MuxHandle) -> Result<(), Refusal> {
        let Message::ForwardListen(request) = message else {
            return Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                format!("'{}' in a forwarding session", message.kind()),
            ));
        };
        let id = request.id;
        let refuse = |code, message: String| {
            handle.send(Message::ListenRefused(ListenRefused { id, code, message }));
        };
        if self.listeners >= self.forwarding.config.max_listeners_per_session {
            refuse(
                ErrorCode::ServerBusy,
                format!(
                    "this session has {} listeners, its most",
                    self.forwarding.config.max_listeners_per_session
                ),
            );
            return Ok(());
        }
        let addr = match listen_address(&request) {
            Ok(addr) => addr,
            Err(why) => {
                refuse(ErrorCode::BadMessage, why);
                return Ok(());
            }
        };
        // Port 0 (any free port) is allowed where some port of that address is.
        let allowed = if addr.port() == 0 {
            (1..=u16::MAX).any(|p| {
                self.forwarding
                    .listen
                    .allows_listen(SocketAddr::new(addr.ip(), p))
            })
        } else {
            self.forwarding.listen.allows_listen(addr)
        };
        if !allowed {
            refuse(
                ErrorCode::PermissionDenied,
                format!("the server's [forward] listen rules do not allow {addr}"),
            );
            return Ok(());
        }
        self.listeners += 1;
        tokio::spawn(listen(id, addr, handle.clone()));
        Ok(())
    }

    fn opening(&mut self, id: u32) -> Result<(), Refusal> {
        let slot = self.forwarding.take(&self.user()).ok_or_else(|| {
            Refusal::new(
                ErrorCode::ServerBusy,
                format!(
                    "this user has {} streams open, its most",
                    self.forwarding.config.max_streams_per_user
                ),
            )
        })?;
        self.slots.insert(id, slot);
        Ok(())
    }

    fn ended(&mut self, summary: StreamSummary) {
        self.slots.remove(&summary.id);
        // The client's streams have odd ids (it connected out); the server's came to a listener.
        let (direction, up, down) = if summary.id % 2 == 1 {
            ("connect", summary.received, summary.sent)
        } else {
            ("listen", summary.sent, summary.received)
        };
        self.ctx.audit.record(AuditEvent::Forward {
            actor: self.ctx.actor(),
            direction: direction.into(),
            destination: summary.target,
            bytes_up: up,
            bytes_down: down,
            duration_ms: u64::try_from(summary.duration.as_millis()).unwrap_or(u64::MAX),
            error: (!summary.clean).then(|| "refused, reset or failed".to_string()),
        });
    }
}

fn listen_address(request: &ForwardListen) -> Result<SocketAddr, String> {
    let bind = if request.bind.is_empty() {
        "127.0.0.1"
    } else {
        request.bind.trim_start_matches('[').trim_end_matches(']')
    };
    let ip: IpAddr = bind
        .parse()
        .map_err(|_| format!("'{}' is not an IP address to listen on", request.bind))?;
    Ok(SocketAddr::new(ip, request.port))
}

/// Resolves `host` (on the server), checks every address against the rules, and connects to
/// the first that answers among exactly those addresses.
async fn connect_allowed(rules: &Rules, host: &str, port: u16) -> Result<TcpStream, Refusal> {
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("cannot resolve '{host}': {e}"),
                ));
            }
            Err(_) => {
                return Err(Refusal::new(
                    ErrorCode::Timeout,
                    format!("resolving '{host}' took too long"),
                ));
            }
        };
    if !rules.allows(host, port, &addrs) {
        return Err(Refusal::new(
            ErrorCode::PermissionDenied,
            format!("the server's [forward] connect rules do not allow {host}:{port}"),
        ));
    }
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(socket)) => return Ok(socket),
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
    }
    Err(Refusal::new(
        ErrorCode::Io,
        format!(
            "cannot connect to {host}:{port}: {}",
            last.unwrap_or_else(|| "no address".into())
        ),
    ))
}

/// A `-R` listener: each connection is opened to the client as a stream (counted against the
/// user's limit when it opens); it closes when the mux ends.
async fn listen(id: u32, addr: SocketAddr, handle: MuxHandle) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            handle.send(Message::ListenRefused(ListenRefused {
                id,
                code: ErrorCode::Io,
                message: format!("cannot listen on {addr}: {e}"),
            }));
            return;
        }
    };
    let port = listener.local_addr().map_or(addr.port(), |a| a.port());
    handle.send(Message::ListenReady(ListenReady { id, port }));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = handle.ended() => return,
        };
        let Ok((socket, from)) = accepted else {
            // Out of descriptors, say: back off a little rather than spin on the error.
            tokio::time::sleep(crate::forward::ACCEPT_BACKOFF).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let open = StreamOpen {
                id: 0,
                host: None,
                port: None,
                listener: Some(id),
                from: Some(from.to_string()),
            };
            // Refused (a limit, or the client could not connect): the socket is dropped.
            tokio::select! {
                _ = handle.open(open, socket, None) => {}
                () = handle.ended() => {}
            }
        });
    }
}
