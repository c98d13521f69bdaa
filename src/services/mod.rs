//! Services: what a session can ask for once the handshake is done — the server's side of
//! chat, exec, files and echo. [`dispatch`] routes each request to its service and writes its
//! refusals; the client's peers are in `client`. Services do not know which door (TCP, a
//! browser, IRC) a request came through.

pub mod chat;
mod context;
mod dispatch;
pub mod echo;
pub mod exec;
pub mod files;
pub mod forward;
mod request_error;
pub mod stats;

pub use context::SessionContext;
pub use dispatch::{dispatch, dispatch_gets, service_of};
pub use request_error::{CloseReason, RequestError};

/// Runs `f` on a blocking thread (file system work stays off the async runtime).
///
/// # Errors
/// [`RequestError::Blocking`] when `f` panicked or the runtime is stopping.
pub(crate) async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RequestError> {
    crate::transfer::blocking(f)
        .await
        .map_err(RequestError::Blocking)
}
