//! `symlink` and `link`: links made beneath the root. A symbolic link's text is kept byte for
//! byte; a hard link joins two names beneath the root to one regular file.
//!
//! A link's text is only data to the server: it is stored as given (pointing anywhere, even
//! outside the root) and never followed — every path the server resolves goes through
//! `openat2` with `RESOLVE_BENEATH`, so a link that leads out is `bad_path` when used, and a
//! tree listing shows it as a link. The link is made under a temporary name and renamed over
//! the final one, so a file or link already there is replaced at once, never half; a
//! directory is never replaced.

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};

use super::sandbox::{Place, Sandbox, io_error};
use crate::audit::AuditEvent;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, HardLink, Message, Permission, Refusal, Symlink};
use crate::services::{RequestError, SessionContext, off_runtime};

/// The longest link text accepted (Linux's `PATH_MAX`).
pub const MAX_TARGET: usize = 4096;

/// Serves one `symlink`.
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_symlink<S>(
    conn: &mut Connection<S>,
    request: Symlink,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "symlink")?;
    let sandbox = ctx.sandbox.clone();
    let path = request.path.clone();
    off_runtime(move || make_symlink(&sandbox, &request)).await??;
    ctx.audit.record(AuditEvent::Symlink {
        actor: ctx.actor(),
        path,
    });
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Serves one `link` (a hard link).
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_hard_link<S>(
    conn: &mut Connection<S>,
    request: HardLink,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "link")?;
    let sandbox = ctx.sandbox.clone();
    let path = request.path.clone();
    off_runtime(move || make_hard_link(&sandbox, &request)).await??;
    ctx.audit.record(AuditEvent::Symlink {
        actor: ctx.actor(),
        path,
    });
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Links `request.path` to the regular file `request.existing`, both reached beneath the root
/// by their directories' descriptors (the existing name itself not followed).
fn make_hard_link(sandbox: &Sandbox, request: &HardLink) -> Result<(), Refusal> {
    let (path, existing) = (request.path.as_str(), request.existing.as_str());
    let original = sandbox.place(existing)?;
    match original.lstat().map_err(|e| io_error(existing, &e))? {
        Some(meta) if meta.is_file() => {}
        Some(_) => {
            return Err(Refusal::new(
                ErrorCode::NotAFile,
                format!("'{existing}' is not a regular file; only files are hard-linked"),
            ));
        }
        None => {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!("'{existing}' does not exist"),
            ));
        }
    }
    let place = sandbox.place(path)?;
    refuse_directory(&place, path)?;
    let temporary = crate::transfer::partial::unique_partial_name(&place.name);
    rustix::fs::linkat(
        original.dir.as_fd(),
        &*original.name,
        place.dir.as_fd(),
        temporary.as_str(),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| io_error(path, &e.into()))?;
    rename_into_place(&place, &temporary, path, None)
}

/// Refuses when a directory holds the name (a link never replaces one).
fn refuse_directory(place: &Place, path: &str) -> Result<(), Refusal> {
    if place
        .lstat()
        .map_err(|e| io_error(path, &e))?
        .is_some_and(|meta| meta.is_dir())
    {
        return Err(Refusal::new(
            ErrorCode::NotAFile,
            format!("'{path}' is a directory; a link does not replace one"),
        ));
    }
    Ok(())
}

/// Renames the link made under `temporary` over the place's name (setting a symlink's own
/// time first); on failure the temporary name is removed.
fn rename_into_place(
    place: &Place,
    temporary: &str,
    path: &str,
    link_mtime_ns: Option<i64>,
) -> Result<(), Refusal> {
    let placed = (|| -> std::io::Result<()> {
        if let Some(mtime_ns) = link_mtime_ns {
            crate::transfer::metadata::set_link_mtime(place.dir.as_fd(), temporary, mtime_ns)?;
        }
        rustix::fs::renameat(
            place.dir.as_fd(),
            temporary,
            place.dir.as_fd(),
            &*place.name,
        )?;
        Ok(())
    })();
    if let Err(e) = placed {
        let _ = rustix::fs::unlinkat(place.dir.as_fd(), temporary, rustix::fs::AtFlags::empty());
        return Err(io_error(path, &e));
    }
    Ok(())
}

fn make_symlink(sandbox: &Sandbox, request: &Symlink) -> Result<(), Refusal> {
    let path = request.path.as_str();
    if request.target.is_empty()
        || request.target.len() > MAX_TARGET
        || request.target.contains('\0')
    {
        return Err(Refusal::new(
            ErrorCode::BadPath,
            format!("a link's text must be 1 to {MAX_TARGET} bytes without NUL"),
        ));
    }
    let place = sandbox.place(path)?;
    refuse_directory(&place, path)?;
    let temporary = crate::transfer::partial::unique_partial_name(&place.name);
    rustix::fs::symlinkat(
        request.target.as_str(),
        place.dir.as_fd(),
        temporary.as_str(),
    )
    .map_err(|e| io_error(path, &e.into()))?;
    rename_into_place(&place, &temporary, path, request.mtime_ns)
}
