//! The built-in bot: the seed's chat bot (`欢迎致电babyshen`, `X` → `X好`) as an ordinary chat
//! participant. It is reached through the same directory and inboxes as people are; the only
//! difference is that a task, not a socket, reads its inbox.
//!
//! In a cluster one server holds the bot at a time: the one holding the lease `ferry:bot` in
//! Redis, renewed every heartbeat and lapsing after `node_timeout_ms`, so when that server
//! dies another takes the bot over within a few seconds, and every line gets one answer.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::hub::{ChatHub, Delivery, Participant};
use crate::config::BotConfig;

/// Starts the bot if the config enables it; it runs until the hub closes. On one server it is
/// online when this returns; in a cluster too, if this server took the lease (the first server
/// of a cluster does), so a client never meets a server that is up and a bot that is not yet.
pub async fn start(hub: &Arc<ChatHub>) {
    let config = hub.config.bot.clone();
    if !config.enabled {
        return;
    }
    let first = take_over(hub, &config).await;
    let closed = hub.closed().clone();
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut held = first;
        loop {
            match held.take() {
                Some((me, inbox)) => {
                    serve(&hub, &me, inbox, &config).await;
                    if let Some(hub) = hub.upgrade() {
                        hub.unregister(&me, &config.nick);
                    }
                }
                None => {
                    let Some(wait) = hub.upgrade().and_then(|h| h.engine().bot_renewal()) else {
                        return;
                    };
                    tokio::select! {
                        _ = closed.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            if closed.is_cancelled() {
                return;
            }
            let Some(strong) = hub.upgrade() else { return };
            held = take_over(&strong, &config).await;
        }
    });
}

/// Puts the bot online here if this server may hold it (always on one server; in a cluster,
/// when it holds the lease): its participant and inbox.
async fn take_over(
    hub: &ChatHub,
    config: &BotConfig,
) -> Option<(Participant, mpsc::Receiver<Delivery>)> {
    if !hub.engine().hold_bot().await {
        return None;
    }
    let (me, inbox) = hub.register_unchecked(&config.nick);
    if hub.engine().claim(me.id, &config.nick, true).await.is_err() {
        hub.unregister(&me, &config.nick);
        return None;
    }
    Some((me, inbox))
}

/// Answers what reaches the bot until the hub closes or (in a cluster) the lease is lost.
async fn serve(
    hub: &std::sync::Weak<ChatHub>,
    me: &Participant,
    mut inbox: mpsc::Receiver<Delivery>,
    config: &BotConfig,
) {
    let Some(strong) = hub.upgrade() else { return };
    let closed = strong.closed().clone();
    let renew = strong.engine().bot_renewal();
    drop(strong);
    let mut tick = renew.map(tokio::time::interval);
    loop {
        let delivery = tokio::select! {
            _ = closed.cancelled() => return,
            _ = async { tick.as_mut().expect("only with a lease").tick().await }, if tick.is_some() => {
                let Some(hub) = hub.upgrade() else { return };
                if !hub.engine().hold_bot().await {
                    tracing::info!("this server no longer holds the bot");
                    return;
                }
                continue;
            }
            delivery = inbox.recv() => match delivery {
                Some(delivery) => delivery,
                None => return,
            },
        };
        match delivery {
            Delivery::Opened { from, .. } => {
                from.deliver(Delivery::Direct {
                    from: me.clone(),
                    from_nick: config.nick.clone(),
                    text: config.greeting.clone(),
                    action: false,
                    receipt: None,
                });
            }
            Delivery::Direct {
                from,
                text,
                action,
                receipt,
                ..
            } => {
                // The bot answers lines; an action (`/me waves`) is only seen.
                if !action {
                    from.deliver(Delivery::Direct {
                        from: me.clone(),
                        from_nick: config.nick.clone(),
                        text: reply(&config.reply, &text),
                        action: false,
                        receipt: None,
                    });
                }
                // The reply is queued before the sender's ack, so it is seen first.
                drop(receipt);
            }
            Delivery::Ack { .. }
            | Delivery::Refused(_)
            | Delivery::Recorded { .. }
            | Delivery::Kept(_)
            | Delivery::Notice(_)
            | Delivery::Ended { .. } => {}
        }
    }
}

/// The reply to `line` by `rule`, where `{line}` stands for the line.
pub fn reply(rule: &str, line: &str) -> String {
    rule.replace("{line}", line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_seed_rule() {
        assert_eq!(super::reply("{line}好", "我"), "我好");
        assert_eq!(super::reply("echo: {line}", "hi"), "echo: hi");
    }
}
