//! This server's presence in the cluster: a heartbeat every fifth of `node_timeout_ms`, and,
//! while Redis answers, the reaping of servers whose heartbeat lapsed (their members leave
//! every room, each room told; their nicks are freed; the bot lease they held is given up).
//! A server reaps only after it has itself been connected for a whole timeout, so servers
//! coming back from a Redis outage together do not reap each other before their first beats.

use std::sync::Weak;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::config::ClusterConfig;

/// Runs until the server stops (`stopped`).
pub async fn run(cluster: Weak<Cluster>, config: ClusterConfig, stopped: CancellationToken) {
    let mut tick = tokio::time::interval(config.heartbeat());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut up_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stopped.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let link = &cluster.link;
        if !link.is_up() {
            up_since = None;
            continue;
        }
        let since = *up_since.get_or_insert_with(Instant::now);
        let beat = link
            .ask(link.op(
                "heartbeat",
                &[
                    &link.node,
                    &cluster.name,
                    &config.node_timeout_ms.to_string(),
                ],
            ))
            .await;
        if beat.is_err() {
            tracing::warn!("Redis did not take this server's heartbeat");
            cluster.reset();
            up_since = None;
            continue;
        }
        if beat.as_ref().ok().and_then(super::text).as_deref() == Some("fenced") {
            // Paused, or cut off, for longer than the timeout: the others reaped this server and
            // freed its members' nicks. It rejoins (reconciles) before anything more.
            tracing::warn!(
                "the other servers reaped this one while it was away: it rejoins the cluster"
            );
            cluster.reset();
            up_since = None;
            continue;
        }
        if since.elapsed() >= config.node_timeout() {
            match link.ask(link.op("reap", &[&link.node])).await {
                Ok(redis::Value::Array(reaped)) if !reaped.is_empty() => {
                    for node in reaped.iter().filter_map(super::text) {
                        tracing::info!(node, "a server stopped answering: its members left");
                    }
                }
                _ => {}
            }
        }
    }
}
