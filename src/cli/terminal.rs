//! The local terminal: its size, raw mode for `--tty`, and restoring it on every exit path.

use rustix::termios::{self, OptionalActions, Termios};

/// Restores the terminal mode saved at creation when dropped — including when the process
/// leaves while another thread (a line editor) or raw mode changed it.
pub struct TerminalMode(Option<Termios>);

impl TerminalMode {
    /// Saves the current mode of stdin (nothing when stdin is not a terminal).
    pub fn save() -> Self {
        TerminalMode(termios::tcgetattr(std::io::stdin()).ok())
    }

    /// Saves the mode, then switches stdin to raw mode: every key, Ctrl-C included, goes to
    /// the remote program instead of being acted on here.
    pub fn raw() -> Self {
        let saved = Self::save();
        if let Some(mode) = &saved.0 {
            let mut raw = mode.clone();
            raw.make_raw();
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &raw);
        }
        saved
    }
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        if let Some(mode) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, mode);
        }
    }
}

/// The terminal's size as (rows, cols), from stdout or stdin; 24x80 when neither is one.
pub fn size() -> (u16, u16) {
    [
        rustix::termios::tcgetwinsize(std::io::stdout()),
        rustix::termios::tcgetwinsize(std::io::stdin()),
    ]
    .into_iter()
    .flatten()
    .find(|w| w.ws_row > 0 && w.ws_col > 0)
    .map_or((24, 80), |w| (w.ws_row, w.ws_col))
}
