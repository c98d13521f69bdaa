//! What reaches a member: room events (batched into one write), direct messages, acks.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use super::super::hub::{Delivery, JoinMark};
use super::place::{Place, skipped_notice};
use super::{Ending, Member, Step, WRITE_BATCH};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ChatAck, ChatMessage, ChatNotice, Message};
use crate::services::{CloseReason, RequestError};

impl Member<'_> {
    pub(super) async fn step<S>(
        &mut self,
        conn: &mut Connection<S>,
        step: Step,
    ) -> io::Result<Option<Ending>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match step {
            Step::Nothing => {}
            Step::Kicked => return Ok(Some(Err(RequestError::NotReading))),
            Step::Room(Ok(event)) => {
                // Everything queued goes out in one write: one syscall (one TLS record) per
                // batch rather than per line is what lets a busy room keep up.
                let mut batch = Vec::new();
                let mut written = 0;
                let mut gone = 0u64;
                let mut next = Some(event);
                let mark = match &self.place {
                    Place::Room { mark, .. } => *mark,
                    _ => JoinMark::default(),
                };
                while let Some(event) = next.take() {
                    let seen = event.before(mark);
                    if event.origin != self.participant.id && !seen {
                        // Bytes given back under the room's memory bounds: skipped, as a lag.
                        match event.frame() {
                            Some(frame) => batch.extend_from_slice(&frame),
                            None => gone += 1,
                        }
                        written += 1;
                    }
                    if written < WRITE_BATCH
                        && let Place::Room { events, room, .. } = &mut self.place
                    {
                        loop {
                            match events.try_recv() {
                                Ok(event) => next = Some(event),
                                Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                                    self.hub.counters.lines_skipped.inc_by(skipped);
                                    batch.extend(skipped_notice(&room.name, skipped));
                                    continue;
                                }
                                Err(_) => {}
                            }
                            break;
                        }
                    }
                }
                if gone > 0
                    && let Place::Room { room, .. } = &self.place
                {
                    batch.extend(skipped_notice(&room.name, gone));
                }
                if !batch.is_empty() {
                    conn.write_encoded(&batch).await?;
                    conn.flush().await?;
                }
                self.hub.counters.lines_skipped.inc_by(gone);
                self.hub
                    .counters
                    .deliveries
                    .inc_by((written as u64).saturating_sub(gone));
            }
            Step::Room(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                // The room outran this member: the server was too busy to write to it as fast as
                // lines came (a member that stops reading is dropped by the send timeout, not
                // here). Lines are gone from the ring; say how many rather than drop the member.
                self.hub.counters.lines_skipped.inc_by(skipped);
                if let Place::Room { room, .. } = &self.place {
                    conn.write_encoded(&skipped_notice(&room.name, skipped))
                        .await?;
                    conn.flush().await?;
                }
            }
            Step::Room(Err(broadcast::error::RecvError::Closed)) => {
                return Ok(Some(Err(RequestError::Closed(CloseReason::ChatClosed))));
            }
            Step::Inbox(None) => {
                return Ok(Some(Err(RequestError::Closed(CloseReason::ChatClosed))));
            }
            Step::Inbox(Some(Delivery::Ended { reason })) => {
                let goodbye = Message::Goodbye(crate::protocol::Goodbye { reason });
                conn.write_message(&goodbye).await?;
                return Ok(Some(Err(RequestError::Closed(CloseReason::Superseded))));
            }
            Step::Inbox(Some(delivery)) => self.deliver(conn, delivery).await?,
            Step::Request(Ok(request)) => return self.request(conn, request).await,
            Step::Request(Err(e)) if e.is_recoverable() => {
                conn.write_message(&Message::error(e.code(), e.to_string()))
                    .await?;
            }
            Step::Request(Err(ConnectionError::Closed)) => {
                return Ok(Some(Err(ConnectionError::Closed.into())));
            }
            Step::Request(Err(e)) => {
                let _ = conn
                    .write_message(&Message::error(e.code(), e.to_string()))
                    .await;
                return Ok(Some(Err(e.into())));
            }
        }
        Ok(None)
    }

    pub(super) async fn deliver<S>(
        &mut self,
        conn: &mut Connection<S>,
        delivery: Delivery,
    ) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let message = match delivery {
            Delivery::Direct {
                from_nick,
                text,
                action,
                receipt,
                ..
            } => {
                let message = Message::ChatMessage(ChatMessage {
                    room: None,
                    from: from_nick,
                    to: Some(self.nick.clone()),
                    text,
                    action,
                    history: false,
                    offset: None,
                    at: None,
                });
                conn.write_message(&message).await?;
                self.hub.counters.deliveries.inc();
                // Taken: the sender's ack may go now.
                drop(receipt);
                return Ok(());
            }
            Delivery::Kept(said) => Message::ChatMessage(ChatMessage {
                room: None,
                from: said.from,
                to: Some(self.nick.clone()),
                text: said.text,
                action: said.action,
                history: true,
                offset: None,
                at: Some(humantime::format_rfc3339_millis(said.at).to_string()),
            }),
            Delivery::Notice(text) => Message::ChatNotice(ChatNotice { room: None, text }),
            Delivery::Opened { from_nick, .. } => Message::ChatNotice(ChatNotice {
                room: None,
                text: format!("{from_nick} opened a direct conversation with you"),
            }),
            Delivery::Ack { id } => Message::ChatAck(ChatAck { id }),
            Delivery::Refused(refusal) => Message::Error(refusal),
            Delivery::Recorded { id, refused } => {
                self.unconfirmed = self.unconfirmed.saturating_sub(1);
                match refused {
                    None => Message::ChatAck(ChatAck { id }),
                    Some(refusal) => Message::Error(refusal),
                }
            }
            // Handled by the step itself (it ends the session).
            Delivery::Ended { reason } => Message::Goodbye(crate::protocol::Goodbye { reason }),
        };
        conn.write_message(&message).await
    }
}
