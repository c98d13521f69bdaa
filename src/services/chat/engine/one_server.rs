//! One server's chat as an [`Engine`]: nicks, rooms and their changes live in the hub, so
//! everything beyond this server is empty (no one to claim a nick from, find or route to,
//! one bot always here) and the hub tells its own members of every change; only lines,
//! topics and kept direct messages go to the [`LineStore`] (memory or disk).

use std::sync::Arc;

use super::store::LineStore;
use super::{
    BoxFuture, Confirmed, Engine, JoinOptions, Kept, MAX_CATCH_UP, Past, Routed, Said, Settled,
    TakeDirects, Tell, kept_notice,
};
use crate::protocol::{Refusal, RoomInfo};
use crate::services::chat::offset::{Offset, StreamId};
use crate::services::chat::participant::{Delivery, Participant};

/// A single server's engine over its line store.
#[derive(Debug)]
pub struct OneServer {
    store: Arc<dyn LineStore>,
}

impl OneServer {
    /// The engine keeping lines in `store`.
    pub fn new(store: Arc<dyn LineStore>) -> OneServer {
        OneServer { store }
    }
}

/// An answer at once.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Engine for OneServer {
    fn describe(&self) -> String {
        self.store.describe()
    }

    fn epoch(&self) -> String {
        self.store.epoch()
    }

    fn held_bytes(&self) -> usize {
        self.store.held_bytes()
    }

    fn server_name(&self) -> Option<String> {
        None
    }

    fn reachable(&self) -> Option<bool> {
        None
    }

    fn claim<'a>(&'a self, _: u64, _: &'a str, _: bool) -> BoxFuture<'a, Result<(), Refusal>> {
        ready(Ok(()))
    }

    fn release(&self, _: u64, _: &str) {}

    fn rename<'a>(
        &'a self,
        _: u64,
        _: &'a str,
        _: &'a str,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        ready(Ok(()))
    }

    fn find<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<String>, Refusal>> {
        ready(Ok(None))
    }

    /// No one beyond this server: a direct message for a configured user is kept for them
    /// (the sender told so before its ack); anything else is `not_online`.
    fn route(&self, _: &str, routed: Routed, not_online: Refusal) -> Result<(), Refusal> {
        let Routed::Direct {
            from,
            from_nick,
            text,
            action,
            id,
            keep: Some((user, limit)),
        } = routed
        else {
            return Err(not_online);
        };
        let said = Said {
            from: from_nick,
            text,
            action,
            at: std::time::SystemTime::now(),
        };
        let shown = user.clone();
        self.store.keep_direct(
            &user,
            said,
            limit,
            Box::new(move |kept| match kept {
                Ok(waiting) => {
                    from.deliver(Delivery::Notice(kept_notice(&shown, &waiting.to_string())));
                    from.deliver(Delivery::Ack { id });
                }
                Err(refusal) => {
                    from.deliver(Delivery::Refused(refusal.answering(Some(id))));
                }
            }),
        );
        Ok(())
    }

    fn take_directs(&self, user: &str, take: TakeDirects) {
        self.store.take_directs(user, take);
    }

    /// The room's latest lines (or those after the client's `since`), and the position up to
    /// which live lines are already among them.
    fn join<'a>(
        &'a self,
        room: &'a str,
        _: u64,
        _: &'a str,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<Past, Refusal>> {
        ready(self.past(room, options))
    }

    fn say(
        &self,
        room: &str,
        _: &Participant,
        said: Said,
        _: Option<u64>,
        kept: Kept,
    ) -> Result<Confirmed, Refusal> {
        self.store.append(room, said, kept)
    }

    fn set_topic(
        &self,
        room: &str,
        origin: &Participant,
        _: &str,
        topic: Option<&str>,
        id: Option<u64>,
        settled: Settled,
    ) -> Result<Confirmed, Refusal> {
        let origin = origin.clone();
        self.store.set_topic(
            room,
            topic,
            Box::new(move |kept, confirmed| {
                settled(kept.is_ok());
                if confirmed == Confirmed::Later {
                    origin.confirm(id, kept.err());
                }
            }),
        )
    }

    fn leave(&self, _: &str, _: u64, _: &str, _: bool) {}

    fn tell_now(&self, tell: Tell) {
        tell();
    }

    fn tell_in_order(&self, tell: Tell) {
        self.store.in_order(tell);
    }

    fn topic(&self, room: &str) -> Option<String> {
        self.store.topic(room)
    }

    fn room_emptied(&self, room: &str) {
        self.store.room_emptied(room);
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Option<Vec<RoomInfo>>, Refusal>> {
        ready(Ok(None))
    }

    fn older<'a>(
        &'a self,
        room: &'a str,
        before_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>> {
        ready(self.store.older(room, before_ms, n))
    }

    fn newer<'a>(
        &'a self,
        room: &'a str,
        after_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>> {
        ready(self.store.newer(room, after_ms, n))
    }

    fn hold_bot(&self) -> BoxFuture<'_, bool> {
        ready(true)
    }

    fn bot_renewal(&self) -> Option<std::time::Duration> {
        None
    }

    fn depart(&self) -> BoxFuture<'_, ()> {
        ready(())
    }

    fn close(&self) {
        self.store.close();
    }
}

impl OneServer {
    fn past(&self, room: &str, options: &JoinOptions) -> Result<Past, Refusal> {
        let recent = self.store.recent(room, options.history)?;
        let mut lines = recent.lines;
        let mut recovered = None;
        if let Some(since) = &options.since {
            let epoch = self.store.epoch();
            let caught = match Offset::parse(since).filter(|o| o.epoch == epoch) {
                Some(from) => self.store.since(room, from.id, MAX_CATCH_UP)?.map(|all| {
                    all.into_iter()
                        .filter(|(id, _)| recent.last.is_some_and(|last| *id <= last))
                        .collect()
                }),
                None => None,
            };
            recovered = Some(caught.is_some());
            if let Some(caught) = caught {
                lines = caught;
            }
        }
        Ok(Past {
            lines,
            last: recent.last,
            recovered,
            everywhere: None,
        })
    }
}
