//! The built-in bot: the seed's chat bot (`欢迎致电babyshen`, `X` → `X好`) as an ordinary chat
//! participant. It is reached through the same directory and inboxes as people are; the only
//! difference is that a task, not a socket, reads its inbox.

use std::sync::Arc;

use super::hub::{ChatHub, Delivery};

/// Starts the bot if the config enables it. It runs until the hub closes.
pub fn spawn(hub: &Arc<ChatHub>) {
    let config = hub.config.bot.clone();
    if !config.enabled {
        return;
    }
    let (me, mut inbox) = hub.register_unchecked(&config.nick);
    let closed = hub.closed().clone();
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        loop {
            let delivery = tokio::select! {
                _ = closed.cancelled() => break,
                delivery = inbox.recv() => match delivery {
                    Some(delivery) => delivery,
                    None => break,
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
                Delivery::Ack { .. } => {}
            }
        }
        if let Some(hub) = hub.upgrade() {
            hub.unregister(&me, &config.nick);
        }
    });
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
