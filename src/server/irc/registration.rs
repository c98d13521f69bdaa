//! Before a client is registered: capability negotiation, SASL or PASS, NICK and USER — then
//! the welcome burst (001–005 and the MOTD). Bounded by the handshake timeout, as the native
//! handshake is; anything else gets 451.

use crate::audit::{Actor, AuditEvent};
use crate::metrics::SignInOutcome;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, sleep_until};

use super::caps::{Caps, OFFERED};
use super::line::{self, SERVER};
use super::numeric::*;
use super::sign_in::{self, Claim, MAX_SASL_BYTES};
use super::wire::{Incoming, Wire};
use crate::auth::SessionIdentity;
use crate::protocol::{ErrorCode, Permission};
use crate::server::ServerState;
use crate::services::chat::hub::{Delivery, Participant};
use crate::services::chat::names;
use crate::shutdown::Shutdown;

/// A registered client, ready for the main loop.
pub(super) struct Registered {
    pub(super) nick: String,
    pub(super) identity: SessionIdentity,
    pub(super) participant: Participant,
    pub(super) inbox: mpsc::Receiver<Delivery>,
    pub(super) caps: Caps,
    /// Held while an anonymous client stays (the rest are kept for signed-in users).
    pub(super) _anonymous_slot: Option<OwnedSemaphorePermit>,
}

/// Why registration ended without a client.
pub(super) enum Abort {
    /// Close with `ERROR :Closing link: REASON`.
    Close(String),
    /// The client is gone (or stopped reading): nothing more to say.
    Gone,
}

/// What the client said so far.
#[derive(Default)]
struct Pending {
    nick: Option<String>,
    user: bool,
    pass: Option<String>,
    caps: Caps,
    /// Inside `CAP LS`/`REQ` … `END`: registration waits for the end.
    negotiating: bool,
    /// Inside an `AUTHENTICATE PLAIN` exchange: the payload so far.
    sasl: Option<String>,
    /// Signed in (by SASL or PASS), kept when a nick turns out to be taken.
    identity: Option<SessionIdentity>,
}

/// Runs registration to its end.
pub(super) async fn register<S>(
    wire: &mut Wire<S>,
    state: &Arc<ServerState>,
    peer: SocketAddr,
    shutdown: &Shutdown,
) -> Result<Registered, Abort>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + state.limits.handshake_timeout();
    let mut pending = Pending::default();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.begin.cancelled() => return Err(Abort::Close("server shutting down".into())),
            _ = sleep_until(deadline) => return Err(Abort::Close("registration timed out".into())),
            incoming = wire.next() => incoming.map_err(|_| Abort::Gone)?,
        };
        match incoming {
            Incoming::Line(text) => {
                if let Some(command) = line::parse(&text) {
                    let done = pending
                        .command(&command.name, &command.params, wire, state, peer)
                        .await?;
                    if let Some(done) = done {
                        wire.flush().await.map_err(|_| Abort::Gone)?;
                        return Ok(done);
                    }
                }
            }
            Incoming::Closed => return Err(Abort::Gone),
            refused => wire.refuse(&refused),
        }
        wire.flush().await.map_err(|_| Abort::Gone)?;
    }
}

impl Pending {
    async fn command<S>(
        &mut self,
        name: &str,
        params: &[&str],
        wire: &mut Wire<S>,
        state: &Arc<ServerState>,
        peer: SocketAddr,
    ) -> Result<Option<Registered>, Abort>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let out = &mut wire.out;
        let first = params.first().copied();
        match name {
            "CAP" => match first.map(str::to_ascii_uppercase).as_deref() {
                Some("LS") => {
                    self.negotiating = true;
                    out.server("CAP", &["*", "LS", OFFERED]);
                }
                Some("REQ") => {
                    self.negotiating = true;
                    let list = params.get(1).copied().unwrap_or("");
                    let verdict = if self.caps.request(list) {
                        "ACK"
                    } else {
                        "NAK"
                    };
                    out.server("CAP", &["*", verdict, list]);
                }
                Some("LIST") => out.server("CAP", &["*", "LIST", &self.caps.list()]),
                Some("END") => self.negotiating = false,
                _ => out.numeric(410, &[first.unwrap_or(""), "Invalid CAP command"]),
            },
            "PASS" => match first {
                Some(token) => self.pass = Some(token.to_string()),
                None => out.numeric(ERR_NEEDMOREPARAMS, &["PASS", "Not enough parameters"]),
            },
            "NICK" => match first {
                None | Some("") => out.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]),
                Some(nick) => match valid_nick(nick, state) {
                    Ok(()) => self.nick = Some(nick.to_string()),
                    Err(why) => out.numeric(ERR_ERRONEUSNICKNAME, &[nick, &why]),
                },
            },
            "USER" if params.len() < 4 => {
                out.numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
            }
            "USER" => self.user = true,
            "AUTHENTICATE" => {
                self.authenticate(first.unwrap_or(""), wire, state, peer)
                    .await
            }
            "PING" => out.server("PONG", &[SERVER, first.unwrap_or("")]),
            "PONG" => {}
            "QUIT" => return Err(Abort::Close("quit".into())),
            _ => out.numeric(ERR_NOTREGISTERED, &["You have not registered"]),
        }
        self.complete(wire, state, peer).await
    }

    /// `AUTHENTICATE`: `PLAIN`, then the payload in 400-byte pieces (`+` for none left).
    async fn authenticate<S>(
        &mut self,
        param: &str,
        wire: &mut Wire<S>,
        state: &ServerState,
        peer: SocketAddr,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let out = &mut wire.out;
        if self.identity.is_some() {
            out.numeric(
                ERR_SASLALREADY,
                &["You have already authenticated using SASL"],
            );
            return;
        }
        let Some(mut payload) = self.sasl.take() else {
            if param.eq_ignore_ascii_case("PLAIN") {
                self.sasl = Some(String::new());
                out.line("AUTHENTICATE +");
            } else {
                out.numeric(RPL_SASLMECHS, &["PLAIN", "are available SASL mechanisms"]);
                out.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
            }
            return;
        };
        if param == "*" {
            out.numeric(ERR_SASLABORTED, &["SASL authentication aborted"]);
            return;
        }
        if param != "+" {
            payload.push_str(param);
        }
        if payload.len() > MAX_SASL_BYTES {
            out.numeric(ERR_SASLTOOLONG, &["SASL message too long"]);
            return;
        }
        if param.len() == 400 {
            self.sasl = Some(payload);
            return;
        }
        let nick = self.nick.clone().unwrap_or_else(|| "*".into());
        match sign_in::plain(&payload) {
            Some(claim) => match sign_in_with(claim, state, peer).await {
                Ok(identity) => {
                    let user = identity.user.clone().unwrap_or_default();
                    let out = &mut wire.out;
                    out.numeric(
                        RPL_LOGGEDIN,
                        &[&line::mask(&nick), &user, &format!("You are now logged in as {user}")],
                    );
                    out.numeric(RPL_SASLSUCCESS, &["SASL authentication successful"]);
                    self.identity = Some(identity);
                }
                Err(message) => wire
                    .out
                    .numeric(ERR_SASLFAIL, &[&format!("SASL authentication failed: {message}")]),
            },
            None => wire.out.numeric(
                ERR_SASLFAIL,
                &["SASL authentication failed: not a PLAIN payload (authzid NUL authcid NUL password)"],
            ),
        }
    }

    /// Registers once NICK and USER are in and negotiation is over: signs in with PASS (or as
    /// anonymous), takes the nick in the hub, and greets.
    async fn complete<S>(
        &mut self,
        wire: &mut Wire<S>,
        state: &Arc<ServerState>,
        peer: SocketAddr,
    ) -> Result<Option<Registered>, Abort>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(nick) = self.nick.clone() else {
            return Ok(None);
        };
        if !self.user || self.negotiating || self.sasl.is_some() {
            return Ok(None);
        }
        let identity = match (self.identity.take(), self.pass.take()) {
            (Some(identity), _) => identity,
            (None, Some(token)) => {
                let Some(claim) = sign_in::pass(&token) else {
                    wire.out.numeric(
                        ERR_PASSWDMISMATCH,
                        &["Password incorrect: PASS takes a token, NAME:SECRET"],
                    );
                    return Err(Abort::Close("bad password".into()));
                };
                match sign_in_with(claim, state, peer).await {
                    Ok(identity) => identity,
                    Err(message) => {
                        wire.out.numeric(
                            ERR_PASSWDMISMATCH,
                            &[&format!("Password incorrect: {message}")],
                        );
                        return Err(Abort::Close("bad password".into()));
                    }
                }
            }
            (None, None) => SessionIdentity {
                user: None,
                permissions: state.auth.anonymous_permissions(),
                credential: None,
            },
        };
        if !identity.permissions.contains(Permission::Chat) {
            return Err(Abort::Close(match &identity.user {
                Some(user) => format!("the user '{user}' may not chat (it needs the chat permission)"),
                None => "this server allows no chat without a token: sign in with SASL or PASS NAME:SECRET".into(),
            }));
        }
        let anonymous_slot = if identity.user.is_none() {
            match Arc::clone(&state.anonymous_slots).try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    return Err(Abort::Close(
                        "the server keeps its remaining connections for signed-in users".into(),
                    ));
                }
            }
        } else {
            None
        };
        match state.chat.register(&nick, identity.user.as_deref()).await {
            Ok((participant, inbox)) => {
                wire.out.nick.clone_from(&nick);
                greet(&mut wire.out, state);
                wire.out.server_time = self.caps.server_time;
                wire.out.batch = self.caps.batch;
                Ok(Some(Registered {
                    nick,
                    identity,
                    participant,
                    inbox,
                    caps: self.caps,
                    _anonymous_slot: anonymous_slot,
                }))
            }
            Err(refusal) => {
                // Keep who signed in; wait for another NICK.
                self.identity = Some(identity);
                self.nick = None;
                let code = if refusal.code == ErrorCode::NickInUse {
                    ERR_NICKNAMEINUSE
                } else {
                    ERR_ERRONEUSNICKNAME
                };
                wire.out.numeric(code, &[&nick, &refusal.message]);
                Ok(None)
            }
        }
    }
}

async fn sign_in_with(
    claim: Claim,
    state: &ServerState,
    peer: SocketAddr,
) -> Result<SessionIdentity, String> {
    let signed_in = state
        .auth
        .sign_in_with_secret(peer.ip(), &claim.user, &claim.secret)
        .await
        .map_err(|refusal| refusal.message);
    record_sign_in(
        state,
        peer,
        Some(claim.user.clone()),
        signed_in.as_ref().err().cloned(),
    );
    signed_in
}

/// Records how an IRC sign-in ended, as the native handshake does.
pub(super) fn record_sign_in(
    state: &ServerState,
    peer: SocketAddr,
    user: Option<String>,
    refused: Option<String>,
) {
    let outcome = match (&refused, &user) {
        (Some(_), _) => SignInOutcome::Failed,
        (None, Some(_)) => SignInOutcome::Ok,
        (None, None) => SignInOutcome::Anonymous,
    };
    state.metrics.signed_in(outcome);
    state.audit.record(AuditEvent::SignIn {
        actor: Actor::claiming(user.as_deref(), peer.ip()),
        transport: Transport::Irc,
        ok: refused.is_none(),
        reason: refused,
        key: None,
    });
}

/// A nick as ferry's rules have it (which keep `!` and `@` out, so no nick can pass for
/// another in an IRC source).
pub(super) fn valid_nick(nick: &str, state: &ServerState) -> Result<(), String> {
    names::validate("nick", nick, state.chat.config.max_nick_chars).map_err(|e| e.to_string())
}

/// 001–005 and the MOTD.
fn greet(out: &mut super::line::Out, state: &ServerState) {
    let version = concat!("ferry-", env!("CARGO_PKG_VERSION"));
    let nick = out.nick.clone();
    out.numeric(
        RPL_WELCOME,
        &[&format!("Welcome to ferry, {}", line::mask(&nick))],
    );
    out.numeric(
        RPL_YOURHOST,
        &[&format!("Your host is {SERVER}, running {version}")],
    );
    out.numeric(
        RPL_CREATED,
        &["This server is ferry's IRC door onto its chat rooms"],
    );
    out.numeric(RPL_MYINFO, &[SERVER, version, "i", "n"]);
    let chat = &state.chat.config;
    let tokens = [
        "CASEMAPPING=ascii".to_string(),
        "CHANTYPES=#".to_string(),
        format!("CHANNELLEN={}", chat.max_room_chars + 1),
        format!("NICKLEN={}", chat.max_nick_chars),
        // What one 332 line can show; a longer topic set natively is shown cut.
        format!("TOPICLEN={}", chat.max_message_bytes.min(390)),
        format!("LINELEN={}", line::LINE_BYTES),
        "NETWORK=ferry".to_string(),
        "PREFIX=".to_string(),
        "CHANMODES=,,,".to_string(),
        "MAXTARGETS=4".to_string(),
        "UTF8ONLY".to_string(),
        format!("CHATHISTORY={}", super::chathistory::MAX_PAGE),
        "MSGREFTYPES=timestamp".to_string(),
    ];
    let mut params: Vec<&str> = tokens.iter().map(String::as_str).collect();
    params.push("are supported by this server");
    out.numeric(RPL_ISUPPORT, &params);
    super::commands::motd(out);
}
