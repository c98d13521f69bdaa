//! The hub with an engine whose pending lines the test controls: notices that wait for the
//! lines before them reach the members who were there when they happened, and no one else.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{ChatHub, JoinOptions, Joined, Participant, RoomChange};
use crate::config::ChatConfig;
use crate::protocol::Refusal;
use crate::services::chat::engine::memory::MemoryEngine;
use crate::services::chat::engine::one_server::OneServer;
use crate::services::chat::engine::store::LineStore;
use crate::services::chat::engine::{
    Confirmed, Kept, KeptDirect, KeptTopic, Recent, Said, TakeDirects,
};
use crate::services::chat::offset::StreamId;

/// The memory store, except that what waits for pending lines ([`LineStore::in_order`]) waits
/// until the test releases it, as if a line were still being synced.
struct Held {
    inner: MemoryEngine,
    waiting: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

impl Held {
    fn release(&self) {
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap());
        for then in waiting {
            then();
        }
    }
}

impl LineStore for Held {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn epoch(&self) -> String {
        self.inner.epoch()
    }
    fn append(&self, room: &str, said: Said, kept: Kept) -> Result<Confirmed, Refusal> {
        self.inner.append(room, said, kept)
    }
    fn recent(&self, room: &str, n: usize) -> Result<Recent, Refusal> {
        self.inner.recent(room, n)
    }
    fn since(
        &self,
        room: &str,
        after: StreamId,
        max: usize,
    ) -> Result<Option<Vec<(StreamId, Said)>>, Refusal> {
        self.inner.since(room, after, max)
    }
    fn in_order(&self, then: Box<dyn FnOnce() + Send>) {
        self.waiting.lock().unwrap().push(then);
    }
    fn older(
        &self,
        room: &str,
        before_ms: u64,
        n: usize,
    ) -> Result<Vec<(StreamId, Said)>, Refusal> {
        self.inner.older(room, before_ms, n)
    }
    fn newer(&self, room: &str, after_ms: u64, n: usize) -> Result<Vec<(StreamId, Said)>, Refusal> {
        self.inner.newer(room, after_ms, n)
    }
    fn topic(&self, room: &str) -> Option<String> {
        self.inner.topic(room)
    }
    fn set_topic(
        &self,
        room: &str,
        topic: Option<&str>,
        kept: KeptTopic,
    ) -> Result<Confirmed, Refusal> {
        self.inner.set_topic(room, topic, kept)
    }
    fn keep_direct(&self, user: &str, said: Said, limit: usize, kept: KeptDirect) {
        self.inner.keep_direct(user, said, limit, kept);
    }
    fn take_directs(&self, user: &str, take: TakeDirects) {
        self.inner.take_directs(user, take);
    }
    fn held_bytes(&self) -> usize {
        self.inner.held_bytes()
    }
    fn room_emptied(&self, room: &str) {
        self.inner.room_emptied(room);
    }
    fn close(&self) {
        self.inner.close();
    }
}

async fn member(hub: &ChatHub, id: u64, nick: &str) -> (Participant, Joined) {
    let (inbox, _) = mpsc::channel(16);
    let participant = Participant::local(id, inbox);
    let joined = hub
        .join_room("deck", &participant, nick, JoinOptions::default())
        .await
        .unwrap();
    (participant, joined)
}

/// The notices member `id` is told, in order, as the doors skip: its own, and those from
/// before its join.
fn told(joined: &mut Joined, id: u64) -> Vec<RoomChange> {
    let mut changes = Vec::new();
    while let Ok(event) = joined.events.try_recv() {
        if event.origin != id
            && !event.before(joined.mark)
            && let Some(change) = event.change()
        {
            changes.push(change.clone());
        }
    }
    changes
}

#[tokio::test]
async fn a_held_notice_reaches_those_who_were_there_and_not_who_joined_meanwhile() {
    let engine = Arc::new(Held {
        inner: MemoryEngine::new(20, 32 << 20),
        waiting: Mutex::default(),
    });
    let mut config = ChatConfig::default();
    config.bot.enabled = false;
    let store = Arc::clone(&engine) as Arc<dyn LineStore>;
    let hub = ChatHub::new(config, Arc::new(OneServer::new(store)));
    let (_alice, mut alice) = member(&hub, 1, "alice").await;
    let (bob, _) = member(&hub, 2, "bob").await;
    // Bob leaves and alice renames while lines are pending: both notices wait.
    let room = Arc::clone(&alice.room);
    hub.leave_room(&room, &bob, "bob", false);
    // Carol joins before they go out: her list has no bob, so she must not hear he left.
    let (_carol, mut carol) = member(&hub, 3, "carol").await;
    assert!(
        !carol.members.contains(&"bob".to_string()),
        "{:?}",
        carol.members
    );
    engine.release();
    assert_eq!(
        told(&mut alice, 1),
        vec![
            RoomChange::Joined("bob".into()),
            RoomChange::Joined("carol".into()),
            RoomChange::Left("bob".into()),
        ],
        "alice was there for all of it"
    );
    assert_eq!(
        told(&mut carol, 3),
        Vec::<RoomChange>::new(),
        "carol joined after bob left"
    );
}
