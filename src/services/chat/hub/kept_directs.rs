//! Direct messages for configured users who are signed out: whom a nick names (the engine
//! keeps them, as `route` says), and handing them over when the user next joins chat.

use super::{ChatHub, Delivery, Participant, names};

impl ChatHub {
    /// The configured user whose name `nick` is (by skeleton), if any.
    pub(super) fn user_named(&self, nick: &str) -> Option<String> {
        self.reserved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&names::skeleton(nick))
            .cloned()
    }

    /// Hands `participant`, who just joined chat as configured user `user`, the direct
    /// messages the engine kept for that user while they were signed out, oldest first.
    pub(super) fn hand_over_kept(&self, participant: &Participant, user: &str) {
        let participant = participant.clone();
        self.engine.take_directs(
            user,
            Box::new(move |waiting| {
                for said in waiting {
                    participant.deliver(Delivery::Kept(said));
                }
            }),
        );
    }
}
