//! What servers tell each other through Redis: room records (in each room's stream, and
//! published on the room's channel as `ID JSON`) and messages for one server's participants
//! (published on that server's channel as `PID JSON`).

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::super::engine::Said;
pub use super::super::engine::record::Record;
pub use super::super::offset::{Offset, StreamId};
use super::super::participant::{Delivery, Participant, Receipt, Relay};

fn is_false(b: &bool) -> bool {
    !*b
}

/// A message for one participant on one server; the fields as in [`Record`].
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum NodeMessage {
    /// A direct message from participant `p` on server `n`, called `f`; `ack` is the sender's
    /// request id, confirmed once the recipient took the message.
    Direct {
        n: String,
        p: u64,
        f: String,
        t: String,
        #[serde(default, skip_serializing_if = "is_false")]
        a: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<u64>,
    },
    /// `f` (participant `p` on server `n`) opened a direct conversation.
    Opened { n: String, p: u64, f: String },
    /// The sender's request `id` is done.
    Ack { id: u64 },
}

/// A direct message kept in Redis for a signed-out user (`ferry:kept:USER`); `ms` is added
/// by the script (Redis's time when it was kept).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptDirect {
    pub f: String,
    pub t: String,
    #[serde(default)]
    pub a: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

impl KeptDirect {
    /// The message as a line, said when Redis kept it.
    pub fn into_said(self) -> Said {
        Said {
            from: self.f,
            text: self.t,
            action: self.a,
            at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.ms.unwrap_or(0)),
        }
    }
}

impl NodeMessage {
    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What its recipient here is handed; a sender on another server is reached through
    /// `relay`.
    pub fn into_delivery(self, relay: &Arc<dyn Relay>) -> Delivery {
        match self {
            NodeMessage::Direct { n, p, f, t, a, ack } => {
                let from = Participant::remote(&n, p, Arc::clone(relay));
                Delivery::Direct {
                    receipt: ack.map(|id| Receipt::new(id, from.clone())),
                    from,
                    from_nick: f,
                    text: t,
                    action: a,
                }
            }
            NodeMessage::Opened { n, p, f } => Delivery::Opened {
                from: Participant::remote(&n, p, Arc::clone(relay)),
                from_nick: f,
            },
            NodeMessage::Ack { id } => Delivery::Ack { id },
        }
    }
}

/// Splits a published `HEAD JSON` payload.
pub fn split_payload(payload: &[u8]) -> Option<(&str, &str)> {
    std::str::from_utf8(payload).ok()?.split_once(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_past_the_clock_reads_as_a_time_without_panicking() {
        let far = StreamId {
            ms: u64::MAX,
            seq: 0,
        };
        let _ = far.time();
        assert_eq!(StreamId { ms: 5, seq: 1 }.offset_in("e"), "e:5-1");
        assert_eq!(
            Offset::parse(&StreamId { ms: 5, seq: 1 }.offset_in("e")).map(|o| o.id),
            Some(StreamId { ms: 5, seq: 1 })
        );
    }

    #[test]
    fn ids_order_and_print_as_redis_writes_them() {
        let a = StreamId::parse("1700000000000-0").unwrap();
        let b = StreamId::parse("1700000000000-1").unwrap();
        let c = StreamId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(c.to_string(), "1700000000001-0");
        assert_eq!(StreamId::parse("17-x"), None);
        assert_eq!(StreamId::parse("17"), None);
    }

    #[test]
    fn offsets_round_trip_and_epochs_may_hold_colons() {
        let offset = Offset::parse("ab:cd:5-2").unwrap();
        assert_eq!(offset.epoch, "ab:cd");
        assert_eq!(offset.id, StreamId { ms: 5, seq: 2 });
        assert_eq!(offset.to_string(), "ab:cd:5-2");
        assert_eq!(Offset::parse("5-2"), None);
    }

    #[test]
    fn records_as_the_engine_script_writes_them_parse() {
        let json = r#"{"k":"leave","n":"a1","p":7,"f":"bob","gone":true}"#;
        let record: Record = serde_json::from_str(json).unwrap();
        assert_eq!(
            record,
            Record::Leave {
                n: "a1".into(),
                p: 7,
                f: "bob".into(),
                dropped: false,
                gone: true
            }
        );
        let say = Record::Say {
            n: "a1".into(),
            p: 1,
            f: "x".into(),
            t: "hi".into(),
            a: false,
        };
        assert_eq!(serde_json::from_str::<Record>(&say.to_json()).unwrap(), say);
    }
}
