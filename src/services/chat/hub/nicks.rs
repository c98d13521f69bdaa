//! The hub's directory of participants by nick: registering (nicks unique server-wide, by
//! what they look like), reserved names, renames, and reaching a nick directly.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ChatHub, Delivery, Participant, Receipt, Room, RoomChange, lock, names};
use crate::protocol::{ErrorCode, Refusal};

/// The refusal for a nick someone else holds (possibly under a look-alike spelling).
fn nick_taken(wanted: &str, holder: &str) -> Refusal {
    let message = if wanted == holder {
        format!("the nick '{wanted}' is already used by someone online")
    } else {
        format!("the nick '{wanted}' is too much like '{holder}', which someone online uses")
    };
    Refusal::new(ErrorCode::NickInUse, message)
}

impl ChatHub {
    /// Reserves the configured users' names: a nick that looks like one of them (by its
    /// skeleton) is only for that user's own sessions. Replaces the previous set (config reload).
    pub fn reserve_user_names<'n>(&self, users: impl IntoIterator<Item = &'n str>) {
        let reserved = users
            .into_iter()
            .map(|name| (names::skeleton(name), name.to_string()))
            .collect();
        *self.reserved.write().unwrap_or_else(|e| e.into_inner()) = reserved;
    }

    /// Creates a participant reachable under `nick` and returns it with its inbox. `user` is the
    /// session's user (`None` when anonymous).
    ///
    /// # Errors
    /// An invalid nick, the bot's or another user's reserved nick, or a nick someone online
    /// already uses (or one that looks like it).
    pub fn register(
        &self,
        nick: &str,
        user: Option<&str>,
    ) -> Result<(Participant, mpsc::Receiver<Delivery>), Refusal> {
        self.check_nick(nick, user)?;
        let (participant, inbox) = self.new_participant();
        let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
        match directory.entry(names::skeleton(nick)) {
            std::collections::hash_map::Entry::Occupied(taken) => {
                Err(nick_taken(nick, &taken.get().0))
            }
            std::collections::hash_map::Entry::Vacant(free) => {
                free.insert((nick.to_string(), participant.clone()));
                Ok((participant, inbox))
            }
        }
    }

    /// Registers without the reserved-nick checks: for the bot itself.
    pub(in crate::services::chat) fn register_unchecked(
        &self,
        nick: &str,
    ) -> (Participant, mpsc::Receiver<Delivery>) {
        let (participant, inbox) = self.new_participant();
        let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
        directory.insert(
            names::skeleton(nick),
            (nick.to_string(), participant.clone()),
        );
        (participant, inbox)
    }

    pub(super) fn new_participant(&self) -> (Participant, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(self.config.member_queue);
        let participant = Participant {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            inbox: tx,
            kick: CancellationToken::new(),
        };
        (participant, rx)
    }

    /// Removes `participant` from the directory under `nick`.
    pub fn unregister(&self, participant: &Participant, nick: &str) {
        let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
        let key = names::skeleton(nick);
        if directory
            .get(&key)
            .is_some_and(|(_, p)| p.id == participant.id)
        {
            directory.remove(&key);
        }
    }

    pub(super) fn check_nick(&self, nick: &str, user: Option<&str>) -> Result<(), Refusal> {
        names::validate("nick", nick, self.config.max_nick_chars)?;
        let key = names::skeleton(nick);
        if self.config.bot.enabled && key == names::skeleton(&self.config.bot.nick) {
            return Err(Refusal::new(
                ErrorCode::NickInUse,
                format!("the nick '{nick}' belongs to the bot"),
            ));
        }
        let reserved = self.reserved.read().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = reserved.get(&key)
            && user != Some(owner.as_str())
        {
            return Err(Refusal::new(
                ErrorCode::NickInUse,
                format!("the nick '{nick}' is reserved for the user '{owner}'"),
            ));
        }
        Ok(())
    }

    /// Changes a participant's nick, in its rooms (a native member is in one at most; an IRC
    /// member in several) and in the directory; each room is told.
    ///
    /// # Errors
    /// An invalid or reserved nick, or one someone else online uses (or one like it).
    pub fn rename<'r>(
        &self,
        participant: &Participant,
        rooms: impl IntoIterator<Item = &'r Arc<Room>>,
        old: &str,
        new: &str,
        user: Option<&str>,
    ) -> Result<(), Refusal> {
        self.check_nick(new, user)?;
        let (old_key, new_key) = (names::skeleton(old), names::skeleton(new));
        {
            let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
            if let Some((taken, holder)) = directory.get(&new_key)
                && holder.id != participant.id
            {
                return Err(nick_taken(new, taken));
            }
            if directory
                .get(&old_key)
                .is_some_and(|(_, p)| p.id == participant.id)
            {
                directory.remove(&old_key);
            }
            directory.insert(new_key, (new.to_string(), participant.clone()));
        }
        for room in rooms {
            let mut members = lock(&room.members);
            members.by_nick.remove(old);
            members.by_nick.insert(new.to_string(), participant.id);
            drop(members);
            room.notice(
                participant.id,
                RoomChange::Renamed {
                    old: old.to_string(),
                    new: new.to_string(),
                },
            );
        }
        Ok(())
    }

    /// The participants reachable as `nick`.
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one online uses it.
    pub fn lookup(&self, nick: &str) -> Result<Vec<Participant>, Refusal> {
        self.directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&names::skeleton(nick))
            .map(|(_, p)| vec![p.clone()])
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NotFound,
                    format!("no one called '{nick}' is online"),
                )
            })
    }

    /// Sends a direct message; the sender's `chat_ack` for `id` follows once every recipient
    /// has taken it.
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one online uses `to`.
    pub fn direct(
        &self,
        from: &Participant,
        from_nick: &str,
        to: &str,
        text: &str,
        action: bool,
        id: u64,
    ) -> Result<(), Refusal> {
        let recipients = self.lookup(to)?;
        let receipt = Receipt::new(id, from.clone());
        for recipient in recipients {
            recipient.deliver(Delivery::Direct {
                from: from.clone(),
                from_nick: from_nick.to_string(),
                text: text.to_string(),
                action,
                receipt: Some(receipt.clone()),
            });
        }
        Ok(())
    }
}
