//! A participant as others reach it — its inbox and its kick switch — and what arrives there.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One chat participant as others can reach it: a human session or the bot.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Unique for the server's life; events carry it so a member skips its own.
    pub id: u64,
    pub(super) inbox: mpsc::Sender<Delivery>,
    pub(super) kick: CancellationToken,
}

impl Participant {
    /// Queues `delivery`; a participant whose inbox is full is not reading, so it is kicked.
    /// Returns whether the delivery was queued.
    pub fn deliver(&self, delivery: Delivery) -> bool {
        match self.inbox.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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
