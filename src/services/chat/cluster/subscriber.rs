//! The subscriber: one pub/sub connection per server that receives every record of the rooms
//! this server has members in, and the messages for its participants, and hands them to the
//! hub (through [`Host`]). It also watches Redis: when the connection drops it tells the rooms, reconnects with
//! backoff, makes Redis agree with what this server holds (`reconcile`), reads back from each
//! room's stream what it missed, and tells the rooms chat is back.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::keys;
use super::record::{NodeMessage, Record, StreamId, split_payload};
use crate::services::chat::engine::host::Host;

/// What the hub asks of the subscriber.
pub enum Control {
    /// Subscribe to a room's channel; answers whether Redis confirmed it.
    Subscribe(String, oneshot::Sender<bool>),
    /// The room has no member here any more.
    Unsubscribe(String),
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Runs until the hub closes. `first` is told once whether the first connection succeeded.
pub async fn run(
    client: redis::Client,
    cluster: Weak<Cluster>,
    host: Weak<dyn Host>,
    mut control: mpsc::UnboundedReceiver<Control>,
    timeout: Duration,
    closed: CancellationToken,
    mut first: Option<oneshot::Sender<Result<(), String>>>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if closed.is_cancelled() {
            return;
        }
        let connected = match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".to_string()),
        };
        let pubsub = match connected {
            Ok(pubsub) => pubsub,
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                // Subscriptions asked for meanwhile fail: their joins are refused.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = closed.cancelled() => return,
                        () = &mut sleep => break,
                        ctl = control.recv() => match ctl {
                            Some(Control::Subscribe(_, tx)) => { let _ = tx.send(false); }
                            Some(_) => {}
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (Some(strong), Some(engine)) = (host.upgrade(), cluster.upgrade()) else {
            return;
        };
        let (mut sink, mut stream) = pubsub.split();
        let ready = tokio::time::timeout(timeout * 4, resume(&engine, &strong, &mut sink)).await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the chat engine could not resume with Redis");
                drop(strong);
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                drop(strong);
                if let Some(first) = first.take() {
                    let _ = first.send(Err("no answer".into()));
                    return;
                }
                continue;
            }
        }
        backoff = Duration::from_millis(50);
        if let Some(first) = first.take() {
            let _ = first.send(Ok(()));
        }
        if engine.link.set_up(true) {
            strong.engine_state_changed(true);
        }
        let link = Arc::clone(&engine.link);
        drop((strong, engine));
        loop {
            tokio::select! {
                _ = closed.cancelled() => return,
                () = link.lost.notified() => break,
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let (Some(host), Some(engine)) = (host.upgrade(), cluster.upgrade()) else { return };
                    dispatch(&engine, host.as_ref(), message.get_channel_name(), message.get_payload_bytes());
                }
                ctl = control.recv() => match ctl {
                    Some(Control::Subscribe(room, tx)) => {
                        let done = tokio::time::timeout(timeout, sink.subscribe(keys::room_channel(&room))).await;
                        let ok = matches!(done, Ok(Ok(())));
                        let _ = tx.send(ok);
                        if !ok { break; }
                    }
                    Some(Control::Unsubscribe(room)) => {
                        let _ = tokio::time::timeout(timeout, sink.unsubscribe(keys::room_channel(&room))).await;
                    }
                    None => return,
                },
            }
        }
        let Some(host) = host.upgrade() else { return };
        tracing::warn!("the chat engine lost Redis; lines are refused until it is back");
        if link.set_up(false) {
            host.engine_state_changed(false);
        }
    }
}

/// After (re)connecting: subscribe this server's channel and every room's, make Redis hold
/// what this server holds, and read back what each room missed.
async fn resume(
    cluster: &Cluster,
    host: &Arc<dyn Host>,
    sink: &mut redis::aio::PubSubSink,
) -> Result<(), String> {
    let link = &cluster.link;
    sink.subscribe(keys::node_channel(&link.node))
        .await
        .map_err(|e| e.to_string())?;
    let rooms = host.rooms_to_catch_up();
    for room in &rooms {
        sink.subscribe(keys::room_channel(room.name()))
            .await
            .map_err(|e| e.to_string())?;
    }
    cluster.refresh_epoch().await.map_err(|r| r.message)?;
    let lost = cluster
        .reconcile(host.as_ref())
        .await
        .map_err(|r| r.message)?;
    for nick in lost {
        // Never two members under one nick: the one here, cut off meanwhile, goes.
        tracing::warn!(nick = %crate::safe_text::escape(&nick), "another server took this nick while this server was cut off: its member here is signed off");
        host.evict(
            &nick,
            &crate::services::request_error::CloseReason::Superseded.to_string(),
        );
    }
    for room in rooms {
        let Some(after) = room.applied() else {
            continue;
        };
        let mut after = after;
        loop {
            let answer = link
                .ask_while_down(link.op(
                    "since",
                    &[room.name(), &after.to_string(), &CATCH_UP_BATCH.to_string()],
                ))
                .await
                .map_err(|r| r.message)?;
            let (_, entries) = parse_since(&answer);
            let n = entries.len();
            if let Some((last, _)) = entries.last() {
                after = *last;
            }
            room.catch_up(&link.node, &cluster.epoch(), entries, false);
            if n < CATCH_UP_BATCH {
                break;
            }
        }
        room.catch_up(&link.node, &cluster.epoch(), Vec::new(), true);
    }
    Ok(())
}

/// Entries read back per request while catching up.
const CATCH_UP_BATCH: usize = 1000;

/// Hands one published message to the hub.
fn dispatch(cluster: &Cluster, host: &dyn Host, channel: &str, payload: &[u8]) {
    let Some((head, json)) = split_payload(payload) else {
        return;
    };
    if let Some(room) = keys::room_of_channel(channel) {
        let (Some(id), Ok(record)) = (StreamId::parse(head), serde_json::from_str::<Record>(json))
        else {
            tracing::debug!(channel, "an unreadable record");
            return;
        };
        host.apply(room, &cluster.link.node, &cluster.epoch(), id, record);
    } else {
        let (Ok(pid), Ok(message)) = (
            head.parse::<u64>(),
            serde_json::from_str::<NodeMessage>(json),
        ) else {
            return;
        };
        host.deliver(pid, message.into_delivery(&cluster.relay()));
    }
}

/// A stream entry's ID and record, from `[ID, [field, value, ...]]`.
pub fn parse_entry(value: &Value) -> Option<(StreamId, Record)> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [Value::BulkString(id), Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let id = StreamId::parse(std::str::from_utf8(id).ok()?)?;
    let json = fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(k), Value::BulkString(v)] if k == b"j" => Some(v),
        _ => None,
    })?;
    Some((id, serde_json::from_slice(json).ok()?))
}

/// The answer of `since`: the oldest kept ID, and the entries after the asked one.
pub fn parse_since(value: &Value) -> (Option<StreamId>, Vec<(StreamId, Record)>) {
    let Value::Array(parts) = value else {
        return (None, Vec::new());
    };
    let oldest = match parts.first() {
        Some(Value::BulkString(id)) => std::str::from_utf8(id).ok().and_then(StreamId::parse),
        _ => None,
    };
    let entries = match parts.get(1) {
        Some(Value::Array(entries)) => entries.iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    };
    (oldest, entries)
}
