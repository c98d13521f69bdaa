//! Wire messages of the chat service: rooms, direct conversations, the bot.

use serde::{Deserialize, Serialize};

use super::serde_defaults::{is_false, yes};

/// Client → server: enter a room (`room`) or a direct conversation (`with`); inside a chat
/// exchange, move to another room (`nick` may then be omitted to keep the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatJoin {
    /// The room to enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The nick to talk with directly, instead of a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// The nick to use; the user's name (or a guest name) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// Replay the room's recent messages first. Default true.
    #[serde(default = "yes")]
    pub history: bool,
    /// On a server in a cluster: the `offset` of the last line this client saw in the room
    /// (on any server of the cluster); the join replays every line after it instead of the
    /// recent history. `chat_joined` says whether that was possible (`recovered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Server → client: the join succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatJoined {
    /// The room entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The partner of the direct conversation entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// The nick the member has.
    pub nick: String,
    /// Members of the room (or the conversation partner), including the joiner.
    pub members: Vec<String>,
    /// The room's topic, if one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Answering a join with `since`: true when every line after that offset followed as
    /// history; false when some are no longer kept (or the offset is from other data), in
    /// which case the recent history followed instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// How many `chat_message`s with `history` follow this answer (when history was asked
    /// for): a client knows where the replay ends and live lines begin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u32>,
}

/// Client → server: a line for the room, or for the partner of a direct conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSay {
    /// Answered by `chat_ack` or an `error` with the same id.
    pub id: u64,
    /// The line.
    pub text: String,
    /// An action (`/me waves`): shown as `* nick waves`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub action: bool,
}

/// Client → server: a direct message to `to` (`/msg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatDirect {
    /// Answered by `chat_ack` or an `error` with the same id.
    pub id: u64,
    /// The nick to reach.
    pub to: String,
    /// The line.
    pub text: String,
}

/// Client → server: who is in the room (`/who`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatWho {
    /// Answered by `chat_members` with the same id.
    pub id: u64,
}

/// Server → client: the answer to `chat_who`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMembers {
    /// The `chat_who`'s id.
    pub id: u64,
    /// The room asked about.
    pub room: String,
    /// Its members.
    pub nicks: Vec<String>,
}

/// Client → server: change nick (`/nick`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatNick {
    /// Answered by `chat_ack` or an `error` with the same id.
    pub id: u64,
    /// The new nick.
    pub nick: String,
}

/// Server → client: request `id` was carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAck {
    /// The request's id.
    pub id: u64,
}

/// Server → client: a message from `from`, in `room` or directly to this member (`to`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room it was said in; absent for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Who said it.
    pub from: String,
    /// For a direct message: the nick it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// What was said.
    pub text: String,
    /// An action (`/me`): shown as `* from text`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub action: bool,
    /// Part of the replay on join, not live.
    #[serde(default, skip_serializing_if = "is_false")]
    pub history: bool,
    /// On a server in a cluster, a room line's position in the room (`EPOCH:MS-SEQ`): what a
    /// client passes as `since` to catch up after reconnecting, to any server of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// On a history line: when it was said, RFC 3339 in UTC with milliseconds (as IRC's
    /// `server-time`), e.g. `2026-12-07T06:45:00.123Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Server → client: something happened (a join, a leave, a nick change, a drop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatNotice {
    /// The room it happened in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// What happened, for people.
    pub text: String,
}

/// Client → server: which rooms exist (`/list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatList {
    /// Answered by `chat_rooms` with the same id.
    pub id: u64,
}

/// Server → client: the answer to `chat_list` (every room) or to a `chat_topic` without a
/// topic (the member's room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRooms {
    /// The request's id.
    pub id: u64,
    /// The rooms, by name.
    pub rooms: Vec<RoomInfo>,
}

/// One room as `chat_rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Its name.
    pub room: String,
    /// How many are in it.
    pub members: u64,
    /// Its topic, if one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// Client → server: set the room's topic (`/topic TEXT`), or ask for it (no `topic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTopic {
    /// Answered by `chat_ack` (set) or `chat_rooms` (asked), or an `error`, with the same id.
    pub id: u64,
    /// The new topic; absent to ask for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}
