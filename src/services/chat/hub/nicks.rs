//! The hub's directory of participants by nick: registering (nicks unique server-wide, by
//! what they look like), reserved names, renames, and reaching a nick directly.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::{ChatHub, Delivery, Participant, Receipt, Room, RoomChange, lock, names};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::engine::Routed;
use crate::services::chat::names::nick_taken;

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
    /// session's user (`None` when anonymous). In a cluster the nick is claimed across servers.
    ///
    /// # Errors
    /// An invalid nick, the bot's or another user's reserved nick, a nick someone online
    /// already uses (or one that looks like it), or a cluster's Redis unreachable.
    pub async fn register(
        &self,
        nick: &str,
        user: Option<&str>,
    ) -> Result<(Participant, mpsc::Receiver<Delivery>), Refusal> {
        self.check_nick(nick, user)?;
        let (participant, inbox) = self.new_participant();
        {
            let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
            match directory.entry(names::skeleton(nick)) {
                std::collections::hash_map::Entry::Occupied(taken) => {
                    let refusal = nick_taken(nick, &taken.get().0);
                    drop(directory);
                    self.forget(&participant);
                    return Err(refusal);
                }
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert((nick.to_string(), participant.clone()));
                }
            }
        }
        if let Err(refusal) = self.engine.claim(participant.id, nick, false).await {
            self.remove_from_directory(&participant, nick);
            self.forget(&participant);
            return Err(refusal);
        }
        if let Some(user) = user {
            self.hand_over_kept(&participant, user);
        }
        Ok((participant, inbox))
    }

    /// Ends the session of this server's participant holding `nick`, saying `reason`: in a
    /// cluster, another server's member took the nick while this server was cut off.
    pub fn evict(&self, nick: &str, reason: &str) {
        let directory = self.directory.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, participant)) = directory.get(&names::skeleton(nick)) {
            participant.deliver(Delivery::Ended {
                reason: reason.to_string(),
            });
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
        let participant = Participant::local(self.next_id.fetch_add(1, Ordering::Relaxed), tx);
        self.by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(participant.id, participant.clone());
        (participant, rx)
    }

    /// Removes `participant` from the directory under `nick` (and gives the nick up in the
    /// cluster).
    pub fn unregister(&self, participant: &Participant, nick: &str) {
        self.remove_from_directory(participant, nick);
        self.forget(participant);
        self.engine.release(participant.id, nick);
    }

    fn remove_from_directory(&self, participant: &Participant, nick: &str) {
        let mut directory = self.directory.write().unwrap_or_else(|e| e.into_inner());
        let key = names::skeleton(nick);
        if directory
            .get(&key)
            .is_some_and(|(_, p)| p.id == participant.id)
        {
            directory.remove(&key);
        }
    }

    fn forget(&self, participant: &Participant) {
        self.by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&participant.id);
    }

    /// This server's participant `id`, if it is still here.
    pub(crate) fn local_participant(&self, id: u64) -> Option<Participant> {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub(super) fn check_nick(&self, nick: &str, user: Option<&str>) -> Result<(), Refusal> {
        names::validate("nick", nick, self.config.max_nick_chars)?;
        let key = names::skeleton(nick);
        if let Some(service) = names::service_name(nick) {
            return Err(Refusal::new(
                ErrorCode::NickInUse,
                format!(
                    "the nick '{nick}' is reserved: it looks like the server's own '{service}'"
                ),
            ));
        }
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
    /// member in several) and in the directory; each room is told (in a cluster, through the
    /// rooms' streams).
    ///
    /// # Errors
    /// An invalid or reserved nick, one someone else online uses (or one like it), or a
    /// cluster's Redis unreachable.
    pub async fn rename<'r>(
        &self,
        participant: &Participant,
        rooms: impl IntoIterator<Item = &'r Arc<Room>>,
        old: &str,
        new: &str,
        user: Option<&str>,
    ) -> Result<(), Refusal> {
        self.check_nick(new, user)?;
        let (old_key, new_key) = (names::skeleton(old), names::skeleton(new));
        let rooms: Vec<&Arc<Room>> = rooms.into_iter().collect();
        if let Some((taken, holder)) = self
            .directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&new_key)
            && holder.id != participant.id
        {
            return Err(nick_taken(new, taken));
        }
        let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
        self.engine.rename(participant.id, old, new, &names).await?;
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
            let joins = members.joins;
            drop(members);
            self.notice_in_order(
                room,
                participant.id,
                RoomChange::Renamed {
                    old: old.to_string(),
                    new: new.to_string(),
                },
                joins,
            );
        }
        Ok(())
    }

    /// The nick of whoever is reachable as `nick` (spelled as they chose it), on this server
    /// or, in a cluster, on any.
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one online uses it; a cluster's Redis unreachable.
    pub async fn find(&self, nick: &str) -> Result<String, Refusal> {
        if let Some((held, _)) = self
            .directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&names::skeleton(nick))
        {
            return Ok(held.clone());
        }
        let found = self.engine.find(nick).await?;
        found.ok_or_else(|| not_online(nick))
    }

    /// The participants on this server reachable as `nick`.
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one online uses it.
    pub fn lookup(&self, nick: &str) -> Result<Vec<Participant>, Refusal> {
        self.directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&names::skeleton(nick))
            .map(|(_, p)| vec![p.clone()])
            .ok_or_else(|| not_online(nick))
    }

    /// Sends a direct message; the sender's `chat_ack` for `id` follows once every recipient
    /// has taken it (in a cluster, a recipient on another server acks through Redis).
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one on this server uses `to` and there is no cluster to
    /// look further; a cluster's Redis unreachable.
    pub fn direct(
        &self,
        from: &Participant,
        from_nick: &str,
        to: &str,
        text: &str,
        action: bool,
        id: u64,
    ) -> Result<(), Refusal> {
        let recipients = match self.lookup(to) {
            Ok(recipients) => recipients,
            Err(not_online) => {
                let keep = self
                    .user_named(to)
                    .filter(|_| self.config.kept_directs > 0)
                    .map(|user| (user, self.config.kept_directs));
                let routed = Routed::Direct {
                    from: from.clone(),
                    from_nick: from_nick.to_string(),
                    text: text.to_string(),
                    action,
                    id,
                    keep,
                };
                return self.engine.route(to, routed, not_online);
            }
        };
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

    /// Tells whoever is `to` (here or, in a cluster, anywhere) that `from` opened a direct
    /// conversation with them.
    ///
    /// # Errors
    /// [`ErrorCode::NotFound`] when no one online uses `to`; a cluster's Redis unreachable.
    pub async fn open_direct(
        &self,
        from: &Participant,
        from_nick: &str,
        to: &str,
    ) -> Result<(), Refusal> {
        match self.lookup(to) {
            Ok(partners) => {
                for partner in partners {
                    partner.deliver(Delivery::Opened {
                        from: from.clone(),
                        from_nick: from_nick.to_string(),
                    });
                }
                Ok(())
            }
            Err(not_online) => {
                self.find(to).await?;
                let routed = Routed::Opened {
                    from: from.clone(),
                    from_nick: from_nick.to_string(),
                };
                self.engine.route(to, routed, not_online)
            }
        }
    }
}

fn not_online(nick: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NotFound,
        format!("no one called '{nick}' is online"),
    )
}
