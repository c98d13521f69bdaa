//! Direct messages for configured users who are signed out: kept by the engine (or, in a
//! cluster, in Redis), the sender told so, and handed over when the user next joins chat.

use super::{ChatHub, Delivery, Participant, Said, names};
use crate::protocol::Refusal;

impl ChatHub {
    /// A direct message to `to`, whom no one online holds: kept by the engine when `to` is a
    /// configured user's name (they get it when they next join chat, from any door), and the
    /// sender told so before its ack; otherwise `not_found`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep_direct(
        &self,
        from: &Participant,
        from_nick: &str,
        to: &str,
        text: &str,
        action: bool,
        id: u64,
        not_found: Refusal,
    ) -> Result<(), Refusal> {
        let (Some(user), limit @ 1..) = (self.user_named(to), self.config.kept_directs) else {
            return Err(not_found);
        };
        let said = Said {
            from: from_nick.to_string(),
            text: text.to_string(),
            action,
            at: std::time::SystemTime::now(),
        };
        let sender = from.clone();
        let shown = user.clone();
        self.engine.keep_direct(
            &user,
            said,
            limit,
            Box::new(move |kept| match kept {
                Ok(waiting) => {
                    sender.deliver(Delivery::Notice(
                        crate::services::chat::engine::kept_notice(&shown, &waiting.to_string()),
                    ));
                    sender.deliver(Delivery::Ack { id });
                }
                Err(refusal) => {
                    sender.deliver(Delivery::Refused(refusal.answering(Some(id))));
                }
            }),
        );
        Ok(())
    }

    /// The configured user whose name `nick` is (by skeleton), if any.
    pub(super) fn user_named(&self, nick: &str) -> Option<String> {
        self.reserved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&names::skeleton(nick))
            .cloned()
    }

    /// Hands `participant`, who just joined chat as configured user `user`, the direct
    /// messages kept for that user while they were signed out (by the engine, or in a
    /// cluster by Redis), oldest first.
    pub(super) async fn hand_over_kept(&self, participant: &Participant, user: &str) {
        if let Some(cluster) = self.cluster() {
            // Redis unreachable: they stay kept for the next sign-in.
            for kept in cluster.take_kept(user).await.unwrap_or_default() {
                participant.deliver(Delivery::Kept(kept.into_said()));
            }
            return;
        }
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
