//! A program on a terminal, as a person would see it: tmux on a socket of its own, keys sent
//! with `send-keys`, the screen read back with `capture-pane`.

use std::process::Command;
use std::time::Duration;

use super::WAIT;

/// A tmux server of its own (its own socket), killed on drop.
pub struct Tmux {
    socket: tempfile::TempDir,
}

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        let tmux = Tmux {
            socket: tempfile::tempdir().unwrap(),
        };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-x", "160", "-y", "20", command])
            .status()
            .unwrap();
        assert!(status.success());
        tmux
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        let status = self.cmd().args(["send-keys", "-l", text]).status().unwrap();
        assert!(status.success());
        let status = self.cmd().args(["send-keys", "Enter"]).status().unwrap();
        assert!(status.success());
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(self.socket.path().join("s"));
        cmd
    }

    pub fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; the screen when it does.
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "'{text}' never appeared:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
