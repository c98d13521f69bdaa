//! Which chat engine a server runs: the Redis engine when `[cluster] redis` is set, otherwise
//! one server's engine over its line store (on disk in `STATE/chat/`, or in memory).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::ServerError;
use crate::config::ServerConfig;
use crate::services::chat::cluster::Cluster;
use crate::services::chat::engine::Engine;
use crate::services::chat::engine::one_server::OneServer;

/// The engine the hub is given, and the Redis engine again when it is that one (its tasks are
/// started once the hub exists: `Cluster::serve`). `addr` names a cluster node by default.
///
/// # Errors
/// Redis not answering, or the store that cannot be opened.
pub(super) async fn open(
    config: &ServerConfig,
    state_dir: &Path,
    addr: Option<SocketAddr>,
) -> Result<(Arc<dyn Engine>, Option<Arc<Cluster>>), ServerError> {
    if config.cluster.redis.is_none() {
        let engine = Arc::new(OneServer::new(chat_store(config, state_dir)?));
        return Ok((engine, None));
    }
    let name = config
        .cluster
        .node
        .clone()
        .unwrap_or_else(|| default_node_name(addr));
    let limits = (config.chat.room_bytes, config.chat.memory_bytes);
    let cluster = Cluster::connect(&config.cluster, limits, name).await?;
    Ok((Arc::clone(&cluster) as Arc<dyn Engine>, Some(cluster)))
}

/// Where a single server keeps chat lines (`[chat] store`): on disk in `STATE/chat/` unless
/// the config says memory. (A cluster keeps them in Redis.)
fn chat_store(
    config: &ServerConfig,
    state_dir: &Path,
) -> Result<Arc<dyn crate::services::chat::engine::store::LineStore>, ServerError> {
    use crate::config::ChatStore;
    use crate::services::chat::engine::{disk, memory};
    let chat = &config.chat;
    if chat.store == ChatStore::Memory {
        return Ok(Arc::new(memory::MemoryEngine::new(
            chat.history_messages,
            chat.history_total_bytes,
        )));
    }
    let retention = disk::Retention {
        entries: config.cluster.history_entries,
        age_secs: config.cluster.history_age_secs,
        bytes: chat.store_bytes,
    };
    Ok(Arc::new(disk::DiskEngine::open(
        &state_dir.join("chat"),
        retention,
    )?))
}

/// A cluster node's name when the config gives none: the machine's host name and the port.
fn default_node_name(addr: Option<SocketAddr>) -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    match addr {
        Some(addr) => format!("{host}:{}", addr.port()),
        None => host,
    }
}
