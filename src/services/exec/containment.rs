//! Making sure nothing a command started outlives it: not even a process that left the
//! command's process group with `setsid` (or `nohup setsid`), which the process-group kill in
//! `terminate` cannot reach.
//!
//! Two mechanisms, applied when a command ends (exit, timeout, or its client gone):
//!
//! 1. **A cgroup per command** (cgroup v2), where the server may create one under its own
//!    cgroup: the command joins `ferry-PID/cmd-N` before it execs (`cgroup_join`), so
//!    everything it ever forks is there whatever session or group it makes, and `cgroup.kill`
//!    ends them all at once.
//! 2. **An environment tag**: every command gets `FERRY_EXEC=NONCE-N`, which its descendants
//!    inherit; every process of this user whose initial environment holds the tag is killed
//!    (`/proc/PID/environ`, a few passes to catch forks in between). This runs only where the
//!    command could not join a cgroup. A process that both leaves the group and starts with a
//!    cleared environment (`env -i setsid ...`) escapes it, which is why the cgroup comes first.
//!
//! Measured on the 2-core CI box (`ferry bench latency`, exec round trip p50): no containment
//! 1.8 ms, the cgroup 1.9 ms, the tag sweep after every command 2.4 ms — so the sweep runs only
//! where the cgroup cannot vouch for the command.
//!
//! A child subreaper was the other option: it would make every orphan a child of the server,
//! which the async runtime (reaping only the children it spawned) would leave as zombies.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tracing::warn;

use super::cgroup_join::CgroupJoin;

/// The name of the tag variable every command gets.
pub const TAG_VAR: &str = "FERRY_EXEC";

static CONTAINMENT: OnceLock<Containment> = OnceLock::new();

/// How a command's descendants are found at its end.
#[derive(Debug)]
pub struct Containment {
    /// Random per process, so tags of another server (or an earlier run) never match.
    nonce: String,
    next: AtomicU64,
    /// `ferry-PID` under this process's own cgroup, when one could be created.
    cgroups: Option<PathBuf>,
    /// Cleared when moving a command into its cgroup failed: the tag alone is used from then on.
    cgroups_work: AtomicBool,
}

/// The containment of one command.
#[derive(Debug)]
pub struct Contained {
    tag: String,
    cgroup: Option<PathBuf>,
    /// Whether the command joined its cgroup before it ran: then the cgroup holds everything it
    /// can start, and `cgroup.kill` alone ends it all.
    sealed: AtomicBool,
}

impl Containment {
    /// This process's containment, when a command has used it.
    pub fn started() -> Option<&'static Containment> {
        CONTAINMENT.get()
    }

    /// This process's containment, set up on first use.
    pub fn get() -> &'static Containment {
        CONTAINMENT.get_or_init(|| {
            let cgroups = own_cgroup_dir().and_then(|own| {
                clean_stale(&own);
                let dir = own.join(format!("ferry-{}", std::process::id()));
                match std::fs::create_dir(&dir) {
                    Ok(()) => Some(dir),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(dir),
                    Err(_) => None,
                }
            });
            Containment {
                nonce: crate::protocol::hex::encode(&crate::random::random_bytes::<8>()),
                next: AtomicU64::new(1),
                cgroups_work: AtomicBool::new(cgroups.is_some()),
                cgroups,
            }
        })
    }

    /// Which mechanisms are active, for the server's startup line and the README.
    pub fn describe(&self) -> String {
        match (&self.cgroups, self.cgroups_work.load(Ordering::Relaxed)) {
            (Some(dir), true) => format!(
                "a cgroup per command under {} and the {TAG_VAR} environment tag",
                dir.display()
            ),
            _ => format!(
                "the {TAG_VAR} environment tag (no cgroup v2 the server may write: a process that leaves its group and clears its environment can outlive its command)"
            ),
        }
    }

    /// A command could not join its cgroup: the tag alone is used from then on.
    pub fn cgroups_failed(&self, error: &std::io::Error) {
        if self.cgroups_work.swap(false, Ordering::Relaxed) {
            warn!(%error, "cannot start commands in cgroups; using the environment tag alone");
        }
    }

    /// Removes this server's own `ferry-PID` cgroup directory and what is left in it, at the
    /// end of a graceful stop (every command has ended by then).
    pub fn remove_own(&self) {
        let Some(dir) = &self.cgroups else {
            return;
        };
        if let Ok(commands) = std::fs::read_dir(dir) {
            for command in commands.filter_map(Result::ok) {
                if command.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::write(command.path().join("cgroup.kill"), b"1");
                    let _ = std::fs::remove_dir(command.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }

    /// Prepares the containment of a new command: its tag and, where possible, its cgroup.
    pub fn prepare(&self) -> Contained {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let cgroup = self
            .cgroups
            .as_ref()
            .filter(|_| self.cgroups_work.load(Ordering::Relaxed))
            .map(|dir| dir.join(format!("cmd-{n}")))
            .filter(|dir| std::fs::create_dir(dir).is_ok());
        Contained {
            tag: format!("{}-{n}", self.nonce),
            cgroup,
            sealed: AtomicBool::new(false),
        }
    }
}

impl Contained {
    /// The variable to put in the command's environment.
    pub fn env(&self) -> (String, String) {
        (TAG_VAR.to_string(), self.tag.clone())
    }

    /// Starts the command with `start`, inside its cgroup when it has one: `start` is given the
    /// join to apply to its command. When the start with the join fails, the command is started
    /// once more without it: if that works, the cgroup was the problem (cgroups are given up for
    /// the tag); if not, the program itself would not start, and that error is returned.
    ///
    /// # Errors
    /// The program could not be started.
    pub fn start<T>(
        &self,
        start: impl Fn(Option<CgroupJoin>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let Some(join) = self.join() else {
            return start(None);
        };
        match start(Some(join)) {
            Ok(started) => {
                self.sealed.store(true, Ordering::Relaxed);
                Ok(started)
            }
            Err(first) => {
                let again = start(None);
                if again.is_ok() {
                    Containment::get().cgroups_failed(&first);
                }
                again
            }
        }
    }

    /// What makes the command join its cgroup before it runs; `None` without a cgroup.
    fn join(&self) -> Option<CgroupJoin> {
        let dir = self.cgroup.as_ref()?;
        match CgroupJoin::open(dir) {
            Ok(join) => Some(join),
            Err(e) => {
                Containment::get().cgroups_failed(&e);
                None
            }
        }
    }

    /// Ends everything the command left behind. Blocking: call off the async runtime.
    pub fn end(self) {
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::write(dir.join("cgroup.kill"), b"1");
            // The kill is asynchronous: the directory can go once the last process is gone.
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        // Without a sealed cgroup, something may have started outside it: find it by its tag.
        if !self.sealed.load(Ordering::Relaxed) {
            kill_tagged(&format!("{TAG_VAR}={}", self.tag));
        }
    }
}

/// Kills every process whose initial environment holds `entry` (`NAME=VALUE`); a few passes
/// over `/proc`, so that one forked, or in the middle of an exec, during a pass is found in the
/// next.
fn kill_tagged(entry: &str) {
    let me = std::process::id();
    for _ in 0..3 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let pids: Vec<u32> = procs
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .collect();
        let (mut killed, mut unsure) = (false, false);
        for pid in pids.into_iter().filter(|pid| *pid != me) {
            let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
                // A process in the middle of an exec (or a zombie) shows no environment for
                // a moment: look again in the next pass.
                Ok(environ) if environ.is_empty() => {
                    unsure |= !settled(pid);
                    continue;
                }
                Ok(environ) => environ,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    continue; // gone, or another user's
                }
                Err(_) => {
                    unsure = true;
                    continue;
                }
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == entry.as_bytes())
                && let Some(pid) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                killed = true;
            }
        }
        if !killed && !unsure {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a process that shows no environment will never show one: a kernel thread or a
/// zombie (from `/proc/PID/stat`: its state, and the `PF_KTHREAD` flag).
fn settled(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true; // gone
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
    let kernel = fields
        .get(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0);
    zombie || kernel
}

/// This process's cgroup v2 directory, from `/proc/self/cgroup` (`0::/PATH`) and the cgroup2
/// mount in `/proc/self/mountinfo`.
fn own_cgroup_dir() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mounts.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        rest.starts_with("cgroup2 ")
            .then(|| fields.split(' ').nth(4))
            .flatten()
    })?;
    let dir = Path::new(mount).join(path.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// Removes the (empty) `ferry-PID` directories of servers that are gone.
fn clean_stale(own: &Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ferry-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(commands) = std::fs::read_dir(entry.path()) {
            for command in commands.filter_map(Result::ok) {
                let _ = std::fs::remove_dir(command.path());
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}

/// Ends a command's containment when dropped — on every path out of the code that ran it,
/// a cancelled future included — off the async runtime.
pub struct EndOnDrop(Option<Contained>);

impl EndOnDrop {
    /// Ends `contained` when this guard goes.
    pub fn new(contained: Contained) -> EndOnDrop {
        EndOnDrop(Some(contained))
    }

    /// Ends it now, and waits until it has.
    pub async fn end_now(mut self) {
        if let Some(contained) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || contained.end()).await;
        }
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(contained) = self.0.take() {
            tokio::task::spawn_blocking(move || contained.end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag alone (the fallback where no cgroup can be made) finds a process that left its
    /// group and session.
    #[test]
    fn the_tag_sweep_kills_a_process_in_a_session_of_its_own() {
        let entry_value = format!("test-{}", std::process::id());
        let mut child = std::process::Command::new("setsid")
            .args(["sleep", "60"])
            .env(TAG_VAR, &entry_value)
            .spawn()
            .unwrap();
        // Wait until the new program runs (its environ is what the sweep reads).
        let environ = format!("/proc/{}/environ", child.id());
        let entry = format!("{TAG_VAR}={entry_value}");
        while !std::fs::read(&environ)
            .unwrap_or_default()
            .split(|b| *b == 0)
            .any(|v| v == entry.as_bytes())
        {
            std::thread::yield_now();
        }
        kill_tagged(&entry);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }
}
