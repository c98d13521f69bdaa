//! Routes one request to its service, and is the one place that writes a service's refusal to
//! the wire. (Exchanges that outlast a request, chat and exec, answer the messages inside them
//! themselves, each with its id where it has one.)

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;

use super::files::held_puts::HeldPuts;
use super::request_error::RequestError;
use super::{SessionContext, chat, echo, exec, files, forward, stats};
use crate::connection::{Connection, ConnectionError};
use crate::metrics::{Service, TransferKind};
use crate::per_address::AddressSlot;
use crate::protocol::{ErrorCode, Get, Message, Refusal};

/// Serves one request. Messages that are valid but not requests (a second `hello`, a `pong`)
/// are refused with `unexpected_message` and the session goes on.
///
/// # Errors
/// The session must end: the connection failed, the stream is out of step (the client has
/// been told), or a long exchange was closed.
pub async fn dispatch<S>(
    conn: &mut Connection<S>,
    request: Message,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kind = request.kind();
    let target = target_of(&request);
    let started = std::time::Instant::now();
    let served = serve(conn, request, ctx, held).await;
    if let Err(RequestError::Refused(refusal) | RequestError::OutOfStep(refusal)) = &served {
        audit_refusal(ctx, kind, target, refusal);
    }
    // A get counts itself (`files::get::serve_gets`), each of a pipelined run apart.
    if kind != "get" {
        ctx.metrics.request(kind, outcome_of(&served));
        if kind == "put" && served.is_ok() {
            ctx.metrics.transfer(TransferKind::Put, started.elapsed());
        }
    }
    match served {
        Ok(()) => Ok(()),
        Err(RequestError::Refused(refusal)) => {
            conn.write_message(&Message::Error(refusal)).await?;
            Ok(())
        }
        Err(RequestError::OutOfStep(refusal)) => {
            // The last word: whatever the client still sends is not in step with anything.
            let _ = conn.write_message(&Message::Error(refusal.clone())).await;
            let _ = conn.shutdown().await;
            Err(RequestError::OutOfStep(refusal))
        }
        Err(fatal) => Err(fatal),
    }
}

/// What a request names, for the audit log: a path, `FROM -> TO`, or the command's argv.
fn target_of(request: &Message) -> Option<String> {
    match request {
        Message::Put(put) => Some(put.path.clone()),
        Message::Get(get) => Some(get.path.clone()),
        Message::List(list) => Some(list.path.clone()),
        Message::Mkdir(mkdir) => Some(mkdir.path.clone()),
        Message::Remove(remove) => Some(remove.path.clone()),
        Message::Symlink(link) => Some(format!("{} -> {}", link.path, link.target)),
        Message::HardLink(link) => Some(format!("{} => {}", link.path, link.existing)),
        Message::Attrs(attrs) => Some(attrs.path.clone()),
        Message::Rename(rename) => Some(format!("{} -> {}", rename.from, rename.to)),
        Message::Exec(exec) if exec.shell => Some("(login shell)".into()),
        Message::Exec(exec) => Some(exec.argv.join(" ")),
        _ => None,
    }
}

/// Records a refused request in the audit log: every one refused for want of a permission
/// (someone tried what they may not), and every refused change (put, mkdir, remove, move).
fn audit_refusal(ctx: &SessionContext, request: &str, target: Option<String>, refusal: &Refusal) {
    let change = matches!(
        request,
        "put" | "mkdir" | "remove" | "rename" | "symlink" | "link" | "attrs"
    );
    if refusal.code != ErrorCode::PermissionDenied && !change {
        return;
    }
    ctx.audit.record(crate::audit::AuditEvent::Refused {
        actor: ctx.actor(),
        request: request.to_string(),
        target,
        code: refusal.code.name().to_string(),
        reason: refusal.message.clone(),
    });
}

/// How a request ended, as the metrics label it: `ok`, the error code answered, or `closed`
/// when the session ended with it.
fn outcome_of(served: &Result<(), RequestError>) -> &'static str {
    match served {
        Ok(()) => "ok",
        Err(RequestError::Refused(refusal) | RequestError::OutOfStep(refusal)) => {
            refusal.code.name()
        }
        Err(_) => "closed",
    }
}

/// The service a request is for, as the byte counters label it.
pub fn service_of(request: &Message) -> Service {
    match request {
        Message::Ping(_) => Service::Echo,
        Message::ChatJoin(_) => Service::Chat,
        Message::Exec(_) => Service::Exec,
        Message::Forward(_) => Service::Forward,
        Message::List(_)
        | Message::Get(_)
        | Message::Put(_)
        | Message::Mkdir(_)
        | Message::Rename(_)
        | Message::Remove(_)
        | Message::Symlink(_)
        | Message::HardLink(_)
        | Message::Attrs(_) => Service::Files,
        _ => Service::Session,
    }
}

/// Serves a run of `get`s a client pipelined, read together: one file-request slot and one
/// trip to a blocking thread for all of them (see `files::get`). Each is answered in order,
/// with its file or its refusal.
///
/// # Errors
/// As [`dispatch`].
pub async fn dispatch_gets<S>(
    conn: &mut Connection<S>,
    gets: Vec<Get>,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _slot = match file_request_slot(ctx) {
        Ok(slot) => slot,
        Err(refusal) => {
            let mut batch = conn.batch();
            for _ in &gets {
                ctx.metrics.request("get", refusal.code.name());
                batch
                    .message(&Message::Error(refusal.clone()))
                    .map_err(ConnectionError::Io)?;
            }
            conn.write_batch(batch).await.map_err(ConnectionError::Io)?;
            return Ok(());
        }
    };
    match files::get::serve_gets(conn, gets, ctx).await {
        Err(RequestError::OutOfStep(refusal)) => {
            let _ = conn.write_message(&Message::Error(refusal.clone())).await;
            let _ = conn.shutdown().await;
            Err(RequestError::OutOfStep(refusal))
        }
        other => other,
    }
}

async fn serve<S>(
    conn: &mut Connection<S>,
    request: Message,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match request {
        Message::Ping(ping) => echo::serve_ping(conn, ping).await,
        Message::Stats(request) => stats::serve_stats(conn, request, ctx).await,
        Message::ChatJoin(join) => chat::serve_chat(conn, join, ctx).await,
        Message::Exec(request) => exec::serve_exec(conn, request, ctx).await,
        Message::Forward(request) => forward::serve_forward(conn, request, ctx).await,
        request @ (Message::List(_)
        | Message::Get(_)
        | Message::Put(_)
        | Message::Mkdir(_)
        | Message::Rename(_)
        | Message::Remove(_)
        | Message::Symlink(_)
        | Message::HardLink(_)
        | Message::Attrs(_)) => {
            let _slot = match file_request_slot(ctx) {
                Ok(slot) => slot,
                Err(refusal) => {
                    if let Message::Put(put) = &request
                        && put.whole
                    {
                        // Its bytes are on their way: read past them so the refusal is in step.
                        held.commit(conn, ctx).await?;
                        files::put::skip_whole_put(conn, put.size).await?;
                    }
                    if let Message::Get(get) = &request {
                        // A signature may follow: read past it so the refusal is in step.
                        files::get_delta::skip_signature(conn, get).await?;
                    }
                    return Err(refusal.into());
                }
            };
            serve_file_request(conn, request, ctx, held).await
        }
        other => Err(Refusal::new(
            ErrorCode::UnexpectedMessage,
            format!("'{}' is not a request", other.kind()),
        )
        .into()),
    }
}

/// One file request, once it holds its slots.
async fn serve_file_request<S>(
    conn: &mut Connection<S>,
    request: Message,
    ctx: &SessionContext,
    held: &mut HeldPuts,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match request {
        Message::List(list) => files::list::serve_list(conn, list, ctx).await,
        Message::Get(get) => files::get::serve_get(conn, get, ctx).await,
        Message::Put(put) => files::put::serve_put(conn, put, ctx, held).await,
        Message::Mkdir(mkdir) => files::directories::serve_mkdir(conn, mkdir, ctx).await,
        Message::Rename(rename) => files::directories::serve_rename(conn, rename, ctx).await,
        Message::Remove(remove) => files::directories::serve_remove(conn, remove, ctx).await,
        Message::Symlink(link) => files::links::serve_symlink(conn, link, ctx).await,
        Message::HardLink(link) => files::links::serve_hard_link(conn, link, ctx).await,
        Message::Attrs(attrs) => files::directories::serve_attrs(conn, attrs, ctx).await,
        other => Err(Refusal::new(
            ErrorCode::UnexpectedMessage,
            format!("'{}' is not a file request", other.kind()),
        )
        .into()),
    }
}

/// A file request holds a thread of the blocking pool for moments at a time: how many run at
/// once is bounded per address and per server, so no address can starve the others.
fn file_request_slot(ctx: &SessionContext) -> Result<(AddressSlot, OwnedSemaphorePermit), Refusal> {
    let Some(slot) = ctx.file_requests.try_take(ctx.peer) else {
        return Err(Refusal::new(
            ErrorCode::ServerBusy,
            format!(
                "this address already has {} file requests in progress, the most one address may have; try again when one ends",
                ctx.file_requests.limit()
            ),
        ));
    };
    let Ok(total) = Arc::clone(&ctx.file_requests_total).try_acquire_owned() else {
        return Err(Refusal::new(
            ErrorCode::ServerBusy,
            "the server has as many file requests in progress as it serves at once; try again shortly",
        ));
    };
    Ok((slot, total))
}
