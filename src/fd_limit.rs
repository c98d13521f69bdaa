//! The open-file limit: each connection is a descriptor, and the common soft default (1024) is
//! far below what a server holds, a load generator opens, or a client's `get -r` keeps in
//! flight.

/// Raises this process's soft open-file limit to its hard maximum (quietly: if it cannot, the
/// connection that runs out gets the clear error instead).
pub fn raise_to_hard_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum
        && let Err(e) = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
    {
        tracing::debug!(error = %e, "could not raise the open-file limit");
    }
}

/// This process's soft open-file limit; `None` when there is none.
pub fn soft() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}
