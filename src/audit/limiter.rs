//! Who may fill the audit log how fast: the defence against flushing the record away.
//!
//! The log is bounded on disk, so an actor that could write entries as fast as it can make
//! requests (600 commands, 45,000 pipelined renames, anonymous sign-ins from one address) could
//! push every earlier entry — its own included — out through rotation. So each actor (a user, or
//! an address for anonymous sessions) has a token bucket: [`RATE`] entries a second after a
//! [`BURST`]. What goes beyond is not written one by one but counted, per actor and kind, and
//! written once a second as one `repeated` entry with the count and the first and last times
//! (`sign_in` ×N). Server events (reloads, user changes) have no actor and always pass.
//!
//! The limiter sits before the queue, on the recording side: an actor over its budget must not
//! fill the queue either, or it would make the entries of everyone else be dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use super::event::{Actor, AuditEvent};
use crate::token_bucket::TokenBucket;

/// Entries a second one actor may write one by one, once its burst is spent.
pub(super) const RATE: f64 = 20.0;
/// Entries one actor may write in a burst.
pub(super) const BURST: f64 = 200.0;
/// How long counted entries wait before their `repeated` entry is written.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Actors remembered at most; beyond it, the fullest buckets are forgotten (a forgotten actor
/// starts with a fresh burst, which bounds what forgetting can give away).
const MAX_ACTORS: usize = 100_000;

/// Who a bucket belongs to: a user by name (wherever it signs in from), or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ActorKey {
    User(String),
    Address(IpAddr),
}

impl ActorKey {
    fn of(actor: &Actor) -> ActorKey {
        match &actor.user {
            Some(user) => ActorKey::User(user.clone()),
            None => ActorKey::Address(actor.address),
        }
    }
}

/// Entries of one actor and kind counted instead of written.
#[derive(Debug)]
struct Counted {
    actor: Actor,
    count: u64,
    first: SystemTime,
    last: SystemTime,
    since: Instant,
}

/// The buckets and the counts waiting to be written.
#[derive(Debug, Default)]
pub(super) struct Limiter {
    buckets: HashMap<ActorKey, TokenBucket>,
    counted: HashMap<(ActorKey, &'static str), Counted>,
}

impl Limiter {
    /// Whether `event`, happening `at`, is written as itself; if not, it is counted.
    pub(super) fn admit(&mut self, event: &AuditEvent, at: SystemTime, now: Instant) -> bool {
        let Some(actor) = event.actor() else {
            return true;
        };
        let key = ActorKey::of(actor);
        if self.buckets.len() >= MAX_ACTORS && !self.buckets.contains_key(&key) {
            self.forget_full(now);
        }
        let bucket = self
            .buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::full(BURST, now));
        if bucket.take(1.0, RATE, BURST, now) {
            return true;
        }
        let counted = self
            .counted
            .entry((key, event.kind()))
            .or_insert_with(|| Counted {
                actor: actor.clone(),
                count: 0,
                first: at,
                last: at,
                since: now,
            });
        counted.count += 1;
        counted.last = at;
        false
    }

    /// The `repeated` entries due now (their counts began at least [`REPORT_EVERY`] ago, or
    /// all of them when `all`), taken out of the limiter.
    pub(super) fn due(&mut self, now: Instant, all: bool) -> Vec<AuditEvent> {
        let due: Vec<(ActorKey, &'static str)> = self
            .counted
            .iter()
            .filter(|(_, c)| all || now.saturating_duration_since(c.since) >= REPORT_EVERY)
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter()
            .filter_map(|key| {
                let counted = self.counted.remove(&key)?;
                Some(AuditEvent::Repeated {
                    actor: counted.actor,
                    of: key.1.to_string(),
                    count: counted.count,
                    first: humantime::format_rfc3339_millis(counted.first).to_string(),
                    last: humantime::format_rfc3339_millis(counted.last).to_string(),
                })
            })
            .collect()
    }

    /// Whether counts wait to be written.
    pub(super) fn has_counts(&self) -> bool {
        !self.counted.is_empty()
    }

    /// Forgets the actors whose buckets have refilled (they lose nothing by it).
    fn forget_full(&mut self, now: Instant) {
        self.buckets
            .retain(|_, bucket| !bucket.is_full(RATE, BURST, now));
        if self.buckets.len() >= MAX_ACTORS {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in(address: &str) -> AuditEvent {
        AuditEvent::SignIn {
            actor: Actor {
                user: None,
                address: address.parse().unwrap(),
            },
            transport: crate::transport::Transport::Tcp,
            ok: false,
            reason: None,
            key: None,
        }
    }

    #[test]
    fn past_its_burst_an_actor_is_counted_and_reported_once_a_second() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        let at = SystemTime::now();
        let written = (0..1000)
            .filter(|_| limiter.admit(&sign_in("192.0.2.1"), at, start))
            .count();
        assert_eq!(written, BURST as usize);
        // Another address is not held back by the first one.
        assert!(limiter.admit(&sign_in("192.0.2.2"), at, start));
        assert!(limiter.due(start, false).is_empty());
        let due = limiter.due(start + REPORT_EVERY, false);
        assert!(
            matches!(&due[..], [AuditEvent::Repeated { of, count: 800, .. }] if of == "sign_in"),
            "{due:?}"
        );
        // A second later the bucket has refilled by RATE.
        let later = start + Duration::from_secs(1);
        let again = (0..100)
            .filter(|_| limiter.admit(&sign_in("192.0.2.1"), at, later))
            .count();
        assert_eq!(again, RATE as usize);
    }

    #[test]
    fn server_events_always_pass() {
        let mut limiter = Limiter::default();
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.admit(
                &AuditEvent::UserRemoved {
                    user: "alice".into()
                },
                SystemTime::now(),
                now
            ));
        }
    }
}
