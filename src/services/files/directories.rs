//! `mkdir`, `rename`, `remove` and `attrs`: directories made and names removed only through descriptors beneath
//! the root, never through a symlink that leaves it, and never the root itself.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{Mode, OFlags};
use tokio::io::{AsyncRead, AsyncWrite};

use super::sandbox::{self, Sandbox, io_error};
use crate::audit::AuditEvent;
use crate::connection::Connection;
use crate::protocol::{Attrs, ErrorCode, Message, Mkdir, Permission, Refusal, Remove, Rename};
use crate::services::{RequestError, SessionContext, off_runtime};
use crate::transfer::dir_at::open_read_at;

/// Serves one `mkdir`: creates a directory and its parents; sets mode and mtime when given.
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_mkdir<S>(
    conn: &mut Connection<S>,
    request: Mkdir,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "mkdir")?;
    let sandbox = ctx.sandbox.clone();
    let path = request.path.clone();
    off_runtime(move || make_dirs(&sandbox, &request.path, request.mode, request.mtime_ns))
        .await??;
    ctx.audit.record(AuditEvent::Mkdir {
        actor: ctx.actor(),
        path,
    });
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Serves one `rename`: moves a name to another place beneath the root, through the
/// descriptors of both parent directories (neither name is followed if it is a symlink).
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_rename<S>(
    conn: &mut Connection<S>,
    request: Rename,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "rename")?;
    let sandbox = ctx.sandbox.clone();
    let (from, to) = (request.from.clone(), request.to.clone());
    off_runtime(move || rename(&sandbox, &request.from, &request.to)).await??;
    ctx.audit.record(AuditEvent::Move {
        actor: ctx.actor(),
        from,
        to,
    });
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Moves the last name of `from` to the last name of `to`.
fn rename(sandbox: &Sandbox, from: &str, to: &str) -> Result<(), Refusal> {
    for path in [from, to] {
        if sandbox::client_components(path)?.is_empty() {
            return Err(Refusal::new(
                ErrorCode::BadPath,
                "the server root itself cannot be moved or replaced",
            ));
        }
    }
    let source = sandbox.place(from)?;
    let target = sandbox.place(to)?;
    if source.lstat().map_err(|e| io_error(from, &e))?.is_none() {
        return Err(Refusal::new(
            ErrorCode::NotFound,
            format!("'{from}' does not exist"),
        ));
    }
    rustix::fs::renameat(
        source.dir.as_fd(),
        &*source.name,
        target.dir.as_fd(),
        &*target.name,
    )
    .map_err(|e| match e {
        rustix::io::Errno::ISDIR => Refusal::new(
            ErrorCode::NotAFile,
            format!("'{to}' is a directory; move into it by naming the path inside it"),
        ),
        rustix::io::Errno::NOTDIR => Refusal::new(
            ErrorCode::NotAFile,
            format!("cannot move the directory '{from}' onto the file '{to}'"),
        ),
        rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST => Refusal::new(
            ErrorCode::NotEmpty,
            format!("'{to}' is a directory that still holds something"),
        ),
        rustix::io::Errno::INVAL => Refusal::new(
            ErrorCode::BadPath,
            format!("cannot move '{from}' into itself"),
        ),
        e => io_error(from, &e.into()),
    })
}

/// Serves one `attrs`: sets a regular file's mode and mtime, reached by its own name (a
/// symlink there is `bad_path`, anything but a file `not_a_file`).
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_attrs<S>(
    conn: &mut Connection<S>,
    request: Attrs,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "attrs")?;
    let sandbox = ctx.sandbox.clone();
    off_runtime(move || {
        let path = request.path.as_str();
        let place = sandbox.place(path)?;
        let fd = open_read_at(place.dir.as_fd(), &place.name).map_err(|e| match e {
            rustix::io::Errno::LOOP => Refusal::new(
                ErrorCode::BadPath,
                format!("'{path}' is a symlink; ferry does not write through symlinks"),
            ),
            rustix::io::Errno::NOENT => {
                Refusal::new(ErrorCode::NotFound, format!("'{path}' does not exist"))
            }
            e => io_error(path, &e.into()),
        })?;
        let file = File::from(fd);
        if !file.metadata().map_err(|e| io_error(path, &e))?.is_file() {
            return Err(Refusal::new(
                ErrorCode::NotAFile,
                format!("'{path}' is not a regular file"),
            ));
        }
        crate::transfer::metadata::apply_metadata(&file, request.mode, request.mtime_ns)
            .map_err(|e| io_error(path, &e))
    })
    .await??;
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Serves one `remove`: deletes a file, a symlink (not its target) or an empty directory.
///
/// # Errors
/// The refusal to answer with, or the connection failed.
pub async fn serve_remove<S>(
    conn: &mut Connection<S>,
    request: Remove,
    ctx: &SessionContext,
) -> Result<(), RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ctx.need(Permission::Write, "remove")?;
    let sandbox = ctx.sandbox.clone();
    let path = request.path.clone();
    off_runtime(move || remove(&sandbox, &request.path)).await??;
    ctx.audit.record(AuditEvent::Remove {
        actor: ctx.actor(),
        path,
    });
    conn.write_message(&Message::Done).await?;
    Ok(())
}

/// Creates each missing directory of `path` with `mkdirat` in its verified parent, re-opening
/// every level beneath the root. Mode and mtime go only to a directory this request named by
/// its own final name — never through a symlink, and never to the root itself.
fn make_dirs(
    sandbox: &Sandbox,
    path: &str,
    mode: Option<u32>,
    mtime_ns: Option<i64>,
) -> Result<(), Refusal> {
    let names = sandbox::client_components(path)?;
    if names.is_empty() {
        return Err(Refusal::new(
            ErrorCode::BadPath,
            "the server root itself cannot be changed",
        ));
    }
    let mut last = None;
    for depth in 1..=names.len() {
        let prefix = names[..depth].join("/");
        let place = sandbox.place(&prefix)?;
        let existing = place.lstat().map_err(|e| io_error(path, &e))?;
        let through_link = match existing {
            Some(meta) if meta.is_dir() => false,
            Some(meta) if meta.is_symlink() => true,
            Some(_) => {
                return Err(Refusal::new(
                    ErrorCode::NotAFile,
                    format!("'{}' in '{path}' exists and is not a directory", place.name),
                ));
            }
            None => {
                match rustix::fs::mkdirat(
                    place.dir.as_fd(),
                    &*place.name,
                    Mode::from_raw_mode(0o777),
                ) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_error(path, &e.into())),
                }
                false
            }
        };
        // The level must be a directory beneath the root, whatever a link or a swap made of it.
        let opened = sandbox.open(
            &prefix,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        )?;
        last = Some((opened, through_link));
    }
    if let Some((dir, through_link)) = last
        && (mode.is_some() || mtime_ns.is_some())
        && !through_link
    {
        let dir = File::from(dir);
        let root = File::from(
            sandbox
                .root_fd()
                .try_clone_to_owned()
                .map_err(|e| io_error(path, &e))?,
        );
        let (d, r) = (
            dir.metadata().map_err(|e| io_error(path, &e))?,
            root.metadata().map_err(|e| io_error(path, &e))?,
        );
        if (d.dev(), d.ino()) != (r.dev(), r.ino()) {
            crate::transfer::metadata::apply_metadata(&dir, mode, mtime_ns)
                .map_err(|e| io_error(path, &e))?;
        }
    }
    Ok(())
}

/// Removes the last name of `path` from its verified parent directory.
fn remove(sandbox: &Sandbox, path: &str) -> Result<(), Refusal> {
    let place = sandbox.place(path).map_err(|e| match e.code {
        ErrorCode::BadPath if sandbox::client_components(path).is_ok_and(|n| n.is_empty()) => {
            Refusal::new(
                ErrorCode::BadPath,
                "the server root itself cannot be removed",
            )
        }
        _ => e,
    })?;
    let meta = place
        .lstat()
        .map_err(|e| io_error(path, &e))?
        .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("'{path}' does not exist")))?;
    sandbox::remove_at(place.dir.as_fd(), &place.name, meta.is_dir()).map_err(|e| {
        if e.kind() == io::ErrorKind::DirectoryNotEmpty {
            Refusal::new(
                ErrorCode::NotEmpty,
                format!(
                    "'{path}' is a directory that still holds something; remove its contents first (ferry rm -r removes a whole tree)"
                ),
            )
        } else {
            io_error(path, &e)
        }
    })
}
