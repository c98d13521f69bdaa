//! The open-file limit: each connection is a descriptor, and the common soft default (1024) is
//! far below what a server holds or a load generator opens.

/// Raises this process's soft open-file limit to its hard maximum (quietly: if it cannot, the
/// connection that runs out gets the clear error instead).
pub fn raise_to_hard_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!(error = %e, "could not raise the open-file limit");
    }
}
