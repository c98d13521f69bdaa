//! A participant as others reach it — its inbox and its kick switch, or, for a participant on
//! another server of a cluster, that server's channel — and what arrives there. Shared words
//! of the hub, the doors and the Redis engine: none of them owns it, so none imports another
//! to reach a participant.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine::Said;
use crate::protocol::Refusal;

/// Carries deliveries to participants on other servers (the Redis engine's link).
pub trait Relay: Send + Sync + std::fmt::Debug {
    /// Sends `delivery` to participant `pid` of server `node`; whether it went.
    fn forward(&self, node: &str, pid: u64, delivery: Delivery) -> bool;
}

/// One chat participant as others can reach it: a human session or the bot.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Unique for the server's life (on its own server, for a remote one); events carry it
    /// so a member skips its own.
    pub id: u64,
    route: Route,
    pub(crate) kick: CancellationToken,
}

#[derive(Debug, Clone)]
enum Route {
    /// On this server: its inbox.
    Local(mpsc::Sender<Delivery>),
    /// On server `node` of the cluster, reached through Redis.
    Remote {
        node: Arc<str>,
        relay: Arc<dyn Relay>,
    },
}

impl Participant {
    /// Tells this participant what became of a change it made that was confirmed
    /// [`Later`](super::engine::Confirmed::Later): kept (`refused: None`; request `id` is
    /// acked) or not. Without an `id`, only a refusal is told.
    pub fn confirm(&self, id: Option<u64>, refused: Option<Refusal>) {
        let delivery = match (id, refused) {
            (Some(id), refused) => Delivery::Recorded {
                id,
                refused: refused.map(|r| r.answering(Some(id))),
            },
            (None, Some(refusal)) => Delivery::Refused(refusal),
            (None, None) => return,
        };
        self.deliver(delivery);
    }

    /// A participant of this server, reached through `inbox`.
    pub(crate) fn local(id: u64, inbox: mpsc::Sender<Delivery>) -> Participant {
        Participant {
            id,
            route: Route::Local(inbox),
            kick: CancellationToken::new(),
        }
    }

    /// Participant `id` of cluster server `node`.
    pub(crate) fn remote(node: &str, id: u64, relay: Arc<dyn Relay>) -> Participant {
        Participant {
            id,
            route: Route::Remote {
                node: Arc::from(node),
                relay,
            },
            kick: CancellationToken::new(),
        }
    }

    /// Queues `delivery`; a participant whose inbox is full is not reading, so it is kicked.
    /// Returns whether the delivery was queued.
    pub fn deliver(&self, delivery: Delivery) -> bool {
        match &self.route {
            Route::Local(inbox) => match inbox.try_send(delivery) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.kick.cancel();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            Route::Remote { node, relay } => relay.forward(node, self.id, delivery),
        }
    }

    /// Cancelled when this participant must be dropped for not reading.
    pub fn kicked(&self) -> &CancellationToken {
        &self.kick
    }
}

/// What arrives in a participant's inbox.
#[derive(Debug)]
pub enum Delivery {
    /// A direct message. Dropping the receipt confirms it to its sender.
    Direct {
        /// Who sent it.
        from: Participant,
        /// The sender's nick when it sent it.
        from_nick: String,
        /// The line.
        text: String,
        /// An action (`/me`).
        action: bool,
        /// Acks the sender once every recipient took it.
        receipt: Option<Receipt>,
    },
    /// A direct message kept while this participant's user was signed out, handed over now
    /// that they joined chat.
    Kept(Said),
    /// Something the server tells this participant (a direct message it sent was kept for
    /// its signed-out recipient).
    Notice(String),
    /// `from` opened a direct conversation with this participant.
    Opened {
        /// Who opened it.
        from: Participant,
        /// Their nick.
        from_nick: String,
    },
    /// One of this participant's requests was carried out.
    Ack {
        /// The request's id.
        id: u64,
    },
    /// A direct message this participant sent could not be delivered after all (no one holds
    /// the nick anywhere in the cluster, or Redis did not take it); the refusal carries the
    /// request's id.
    Refused(Refusal),
    /// A line or topic this participant gave a cluster's Redis was recorded (`refused: None`:
    /// ack request `id`) or not. Exactly one follows each change confirmed
    /// [`Later`](super::engine::Confirmed::Later).
    Recorded {
        /// The request's id.
        id: u64,
        /// Why it was not recorded.
        refused: Option<Refusal>,
    },
    /// This participant's session must end, for this reason (in a cluster: this server was cut
    /// off, and another server's member took the nick meanwhile).
    Ended {
        /// Said to the client.
        reason: String,
    },
}

/// Confirms a direct message to its sender once every recipient has taken it (or was dropped):
/// the sender gets its `chat_ack` after, never before, whatever the recipients did in answer.
#[derive(Debug, Clone)]
pub struct Receipt(#[allow(dead_code)] Arc<ReceiptInner>);

#[derive(Debug)]
struct ReceiptInner {
    id: u64,
    sender: Participant,
}

impl Receipt {
    /// A receipt that acks request `id` to `sender` once every copy is dropped.
    pub fn new(id: u64, sender: Participant) -> Receipt {
        Receipt(Arc::new(ReceiptInner { id, sender }))
    }
}

impl Drop for ReceiptInner {
    fn drop(&mut self) {
        self.sender.deliver(Delivery::Ack { id: self.id });
    }
}
