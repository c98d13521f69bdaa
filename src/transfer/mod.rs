//! What both ends of a file transfer share: the whole-file hash, the partial file a receiver
//! writes into, the chunked send and receive, the resume decision, file metadata, and
//! descriptor-relative file operations. Below `client` and `services`, above `connection`.

pub mod chunks;
pub mod commit;
pub mod compress;
pub mod delta;
pub mod dir_at;
pub mod hash_beside;
pub mod hash_cache;
pub mod hashing;
pub mod metadata;
pub mod partial;
pub mod replaced;
pub mod resume;
pub mod unnamed;
pub mod writeback;

/// Runs `f` on a blocking thread: file reads, writes, hashes and `fsync`s stay off the async
/// runtime. One helper for both ends; a panic in `f` comes back as an error, not a panic.
///
/// # Errors
/// `f` panicked, or the runtime is shutting down.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)
}
