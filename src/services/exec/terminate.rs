//! Ending a command's whole process group, and making sure it ends on every exit path.
//!
//! Every command leads its own process group (a new session when on a pty), so one signal to
//! the group reaches everything it started that stayed in the group.

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// Sends `signal` to the process group `pgid`. A group that no longer exists is not an error.
pub fn signal_group(pgid: Pid, signal: Signal) {
    let _ = kill_process_group(pgid, signal);
}

/// Whether anything is left in the process group `pgid`.
pub fn group_alive(pgid: Pid) -> bool {
    test_kill_process_group(pgid).is_ok()
}

/// Asks the group to end the polite way: SIGHUP (as a closing terminal would), then SIGTERM.
/// The caller follows up with [`signal_group`]`(SIGKILL)` after its grace period.
pub fn hang_up(pgid: Pid) {
    signal_group(pgid, Signal::HUP);
    signal_group(pgid, Signal::TERM);
    // A stopped process must be continued to act on the signals.
    signal_group(pgid, Signal::CONT);
}

/// Kills the group with SIGKILL when dropped, unless disarmed: the backstop that keeps an
/// early return (an I/O error, a panic, a dropped future) from leaving anything running.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl GroupGuard {
    /// A guard for the group `pgid`, armed.
    pub fn new(pgid: Pid) -> Self {
        GroupGuard { pgid, armed: true }
    }

    /// The group ended and was reaped: nothing left to kill (and its id may be reused).
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::KILL);
        }
    }
}

/// Parses a signal name as clients send it: `INT` or `SIGINT`, for the signals a remote user
/// may reasonably send.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "HUP" => Signal::HUP,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "WINCH" => Signal::WINCH,
        "CONT" => Signal::CONT,
        "STOP" => Signal::STOP,
        "TSTP" => Signal::TSTP,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_and_without_the_prefix() {
        assert_eq!(parse_signal("INT"), Some(Signal::INT));
        assert_eq!(parse_signal("sigterm"), Some(Signal::TERM));
        assert_eq!(parse_signal("SEGV"), None);
        assert_eq!(parse_signal(""), None);
    }
}
