//! Chat settings, under `[chat]` and `[chat.bot]`. Defaults follow mature IRC servers (ergo):
//! short nicks, bounded messages rejected rather than truncated, and a flood limit that delays
//! ("fakelag") instead of dropping.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Chat limits and behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest nickname, in characters. Default 32.
    pub max_nick_chars: usize,
    /// Longest room name, in characters. Default 64.
    pub max_room_chars: usize,
    /// Longest message, in UTF-8 bytes; longer ones are refused, never truncated. Default 4096.
    pub max_message_bytes: usize,
    /// Messages a member may send at once before the flood limit applies. Default 16.
    pub flood_burst: u32,
    /// Steady rate allowed after the burst, in messages per second. Default 8.
    pub flood_per_second: f64,
    /// Recent messages kept per room and replayed on join (0 disables). Default 20.
    pub history_messages: usize,
    /// Bytes of history kept across all rooms together; past it, a room that speaks gives up
    /// its own oldest lines first. Default 32 MiB.
    pub history_total_bytes: usize,
    /// Rooms that may exist at once; joining a new room beyond it is refused. Default 1,000.
    pub max_rooms: usize,
    /// Bytes of recent lines one room keeps for members still to be written to; a member
    /// further behind is told how many lines it skipped. Default 8 MiB.
    pub room_bytes: usize,
    /// The same across all rooms together. Default 256 MiB.
    pub memory_bytes: usize,
    /// A member whose connection accepts nothing for this long is dropped, in ms. Default 10 s.
    pub send_timeout_ms: u64,
    /// Room events buffered for members; a member further behind (the server could not write
    /// to it as fast as lines came) is told how many lines it skipped. Default 4096 (a burst
    /// of that many lines reaches everyone; the lines' bytes are bounded by `room_bytes`).
    pub room_queue: usize,
    /// Direct messages and notices buffered per member; a full queue drops it. Default 256.
    pub member_queue: usize,
    /// Direct messages kept for one configured user while they are signed out, delivered when
    /// they next join chat (0: a message to someone signed out is refused). Default 100.
    pub kept_directs: usize,
    /// Where a single server keeps its rooms' lines: `disk` (in `STATE/chat/`, synced before
    /// a line is acknowledged, kept across restarts and after a room empties) or `memory`
    /// (gone when a room empties or the server stops). A cluster keeps them in Redis.
    /// Default `disk`.
    pub store: ChatStore,
    /// Bytes of lines the disk store keeps across all rooms (as written, before
    /// compression); past it, the oldest lines of all rooms are deleted first. Default 1 GiB.
    pub store_bytes: u64,
    /// The babyshen bot.
    pub bot: BotConfig,
}

/// Where a single server keeps chat lines (`[chat] store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatStore {
    /// In the server's state directory, durable.
    #[default]
    Disk,
    /// In memory only.
    Memory,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_nick_chars: 32,
            max_room_chars: 64,
            max_message_bytes: 4096,
            flood_burst: 16,
            flood_per_second: 8.0,
            history_messages: 20,
            history_total_bytes: 32 << 20,
            max_rooms: 1_000,
            room_bytes: 8 << 20,
            memory_bytes: 256 << 20,
            send_timeout_ms: 10_000,
            room_queue: 4096,
            member_queue: 256,
            kept_directs: 100,
            store: ChatStore::Disk,
            store_bytes: 1 << 30,
            bot: BotConfig::default(),
        }
    }
}

/// The built-in bot: the seed's chat bot as a participant of ferry's chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Whether the bot is online. Default true.
    pub enabled: bool,
    /// The bot's nick (reserved: no one else may use it). Default `babyshen`.
    pub nick: String,
    /// Sent when someone opens a direct conversation with the bot. Default `欢迎致电babyshen`.
    pub greeting: String,
    /// The reply to a line; `{line}` stands for the line. Default `{line}好`.
    pub reply: String,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            enabled: true,
            nick: "babyshen".into(),
            greeting: "欢迎致电babyshen".into(),
            reply: "{line}好".into(),
        }
    }
}

impl ChatConfig {
    /// Checks ranges; returns the first problem as a sentence naming the field.
    ///
    /// # Errors
    /// A field outside its range.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_nick_chars", self.max_nick_chars),
            ("max_room_chars", self.max_room_chars),
            ("max_message_bytes", self.max_message_bytes),
            ("flood_burst", self.flood_burst as usize),
            ("room_queue", self.room_queue),
            ("member_queue", self.member_queue),
            ("send_timeout_ms", self.send_timeout_ms as usize),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("chat.{name} must be positive"));
        }
        if self.max_message_bytes > 60 * 1024 {
            return Err("chat.max_message_bytes must be at most 61440".into());
        }
        if !(self.flood_per_second > 0.0 && self.flood_per_second.is_finite()) {
            return Err("chat.flood_per_second must be a positive number".into());
        }
        if self.bot.enabled && self.bot.nick.trim().is_empty() {
            return Err("chat.bot.nick must not be empty".into());
        }
        Ok(())
    }

    /// `send_timeout_ms` as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
}
