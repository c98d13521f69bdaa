//! A command joins its cgroup *before* it runs a single instruction of its own: the child
//! writes `0` (itself) into the cgroup's `cgroup.procs` between `fork` and `exec`. Moving it
//! after it started (what ferry did before) left a window in which whatever it forked first —
//! `setsid sleep 300 &`, started under load before the move — stayed outside and outlived it.
//!
//! The only `unsafe` in ferry: `CommandExt::pre_exec` is unsafe because the closure runs in the
//! forked child of a multi-threaded process, where only async-signal-safe operations are
//! allowed (another thread may have held the allocator's lock at the fork). Why this closure is
//! sound:
//!
//! - it makes one `write(2)` system call (rustix's `write`, a thin wrapper over the syscall) of
//!   a static two-byte buffer — `write` is async-signal-safe, and nothing allocates, locks or
//!   touches a thread-local;
//! - the descriptor it writes to was opened by the parent before the fork and is owned by the
//!   closure, so it is open in the child (descriptors are copied by `fork`); `O_CLOEXEC` closes
//!   it at the `exec`, so the command never sees it;
//! - on failure it builds an `io::Error` from the raw errno (`Error::from_raw_os_error` stores
//!   the number, no allocation), which std reports to the parent through its own pipe.
//!
//! The parent learns from that error that the cgroup could not be joined, and starts the
//! command again without it (`spawn`): a cgroup that does not work never stops a command from
//! running, the environment tag then contains it.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// A cgroup's `cgroup.procs`, open for writing: a child given it joins the cgroup before exec.
#[derive(Debug)]
pub struct CgroupJoin(OwnedFd);

impl CgroupJoin {
    /// Opens `dir/cgroup.procs` for writing (close-on-exec).
    ///
    /// # Errors
    /// The cgroup is gone or not writable.
    pub fn open(dir: &Path) -> io::Result<CgroupJoin> {
        let fd = rustix::fs::open(
            dir.join("cgroup.procs"),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(CgroupJoin(fd))
    }

    /// The closure the child runs before `exec`: see the module's comment for why it is sound.
    fn into_pre_exec(self) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
        let fd = self.0;
        move || match rustix::io::write(&fd, b"0") {
            Ok(_) => Ok(()),
            Err(errno) => Err(io::Error::from_raw_os_error(errno.raw_os_error())),
        }
    }

    /// Makes the child of `command` join the cgroup before it runs.
    pub fn apply(self, command: &mut tokio::process::Command) {
        let join = self.into_pre_exec();
        // SAFETY: the closure only makes one async-signal-safe system call on a descriptor it
        // owns (see the module's comment).
        unsafe {
            command.pre_exec(join);
        }
    }

    /// [`CgroupJoin::apply`] for a command on a pseudo-terminal.
    pub fn apply_to_pty(self, command: pty_process::Command) -> pty_process::Command {
        let join = self.into_pre_exec();
        // SAFETY: as in `apply`; pty-process runs its own `setsid` and `TIOCSCTTY` (both
        // async-signal-safe) before this closure.
        unsafe { command.pre_exec(join) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child writes into the descriptor before it execs: a pipe in place of
    /// `cgroup.procs` shows exactly what it wrote, and that the command then ran.
    #[tokio::test]
    async fn the_child_writes_itself_before_it_runs() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let mut command = tokio::process::Command::new("true");
        CgroupJoin(write).apply(&mut command);
        let status = command.status().await.unwrap();
        assert!(status.success());
        let mut buf = [0u8; 8];
        let n = rustix::io::read(&read, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"0");
    }

    /// A join that fails makes the spawn fail (so the caller can start it without one).
    #[tokio::test]
    async fn a_failed_join_fails_the_spawn() {
        // A descriptor open only for reading: the write fails (EBADF).
        let read_only = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let mut command = tokio::process::Command::new("true");
        CgroupJoin(read_only).apply(&mut command);
        assert!(command.status().await.is_err());
    }
}
