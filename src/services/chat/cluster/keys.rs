//! Where the cluster keeps what in Redis (all under `ferry:`; `engine.lua` builds the same
//! names):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `ferry:epoch` | string | the data's epoch, made by the first server (see `Offset`) |
//! | `ferry:nodes` | set | node IDs of the servers |
//! | `ferry:node:ID` | string, expiring | the server's name: its heartbeat |
//! | `ferry:node:ID:rooms` | set | rooms where it has (or had) members: what to clean when it dies |
//! | `ferry:nicks` | hash | nick skeleton → `NODE PID NICK`: nicks unique across servers |
//! | `ferry:rooms` | set | rooms with members anywhere |
//! | `ferry:room:R:log` | stream | the room's records (lines and changes), bounded in length and age |
//! | `ferry:room:R:members` | hash | nick → `NODE PID` |
//! | `ferry:room:R:topic` | string | the topic |
//! | `ferry:bot` | string, expiring | the node holding the bot |
//! | `ferry:kept:USER` | list | direct messages kept for a signed-out user (`{"f","t","a","ms"}`) |
//!
//! Channels: `ferry:room:R` carries each record as `ID JSON` the moment it is appended;
//! `ferry:node:ID` carries `PID JSON` messages for that server's participants.

/// The epoch key.
pub const EPOCH: &str = "ferry:epoch";

/// Prefix of room channels.
const ROOM_CHANNEL: &str = "ferry:room:";

/// The channel of room `room`.
pub fn room_channel(room: &str) -> String {
    format!("{ROOM_CHANNEL}{room}")
}

/// The room a room channel is for.
pub fn room_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix(ROOM_CHANNEL)
}

/// The channel of server `node`.
pub fn node_channel(node: &str) -> String {
    format!("ferry:node:{node}")
}
