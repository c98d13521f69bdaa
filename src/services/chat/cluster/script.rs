//! The engine script (`engine.lua`) as commands: each operation on shared chat state is one
//! `EVALSHA` of one script, so it is atomic in Redis and costs one round trip (or less: the
//! link pipelines them).

use std::sync::LazyLock;

use redis::Cmd;

/// The script's source.
const SOURCE: &str = include_str!("engine.lua");

/// The loaded script's SHA1, as Redis names it.
static SHA: LazyLock<String> = LazyLock::new(|| redis::Script::new(SOURCE).get_hash().to_string());

/// How long a room's stream keeps its entries, and how many bytes of them.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Entries kept per room.
    pub entries: usize,
    /// Age kept, in ms.
    pub age_ms: u64,
    /// Bytes of lines kept per room (`[chat] room_bytes`).
    pub room_bytes: usize,
    /// Bytes of lines kept across all rooms (`[chat] memory_bytes`).
    pub total_bytes: usize,
}

/// What a refusal from a fenced server (one the others reaped) says first.
pub const FENCED: &str = "ferry-fenced";

/// `SCRIPT LOAD` of the engine: after connecting, and again when Redis answers `NOSCRIPT` (it
/// restarted, or its scripts were flushed).
pub fn load() -> Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(SOURCE);
    cmd
}

/// Operation `op` of the engine with `args`.
pub fn op(retention: Retention, op: &str, args: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(SHA.as_str())
        .arg(0)
        .arg(op)
        .arg(retention.entries)
        .arg(format!(
            "{},{},{}",
            retention.age_ms, retention.room_bytes, retention.total_bytes
        ));
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

/// Whether a reply means the script is not loaded.
pub fn is_noscript(value: &redis::Value) -> bool {
    matches!(value, redis::Value::ServerError(e) if e.code() == "NOSCRIPT")
}
