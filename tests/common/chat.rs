//! Reading a chat member's stream in tests: wait (bounded by WAIT) for a message that matches.

use ferry::client::chat::ChatReceiver;
use ferry::protocol::{ChatAck, ChatMessage, ChatNotice, Message};

use super::WAIT;

/// Reads until a message satisfies `want`, returning it; fails after WAIT.
pub async fn expect(rx: &mut ChatReceiver, what: &str, want: impl Fn(&Message) -> bool) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            let message = rx.next().await.unwrap().expect("connection open");
            if want(&message) {
                return message;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never received {what}"))
}

/// A line `text` from `from`.
pub fn said(from: &str, text: &str) -> impl Fn(&Message) -> bool {
    let (from, text) = (from.to_string(), text.to_string());
    move |m| matches!(m, Message::ChatMessage(ChatMessage { from: f, text: t, .. }) if *f == from && *t == text)
}

/// A notice reading exactly `text`.
pub fn notice(text: &str) -> impl Fn(&Message) -> bool {
    let text = text.to_string();
    move |m| matches!(m, Message::ChatNotice(ChatNotice { text: t, .. }) if *t == text)
}

/// The ack of request `id`.
pub fn acked(id: u64) -> impl Fn(&Message) -> bool {
    move |m| matches!(m, Message::ChatAck(ChatAck { id: got }) if *got == id)
}
