//! The transfer progress bar: drawn on stderr when it is a terminal, absent otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use ferry::client::files::Progress;

/// A bar per file (bytes, rate, ETA) on a terminal; "resuming at N bytes" is said either way.
pub struct BarProgress {
    draw: bool,
    bar: Option<ProgressBar>,
}

impl BarProgress {
    /// Draws only if stderr is a terminal and no machine-readable output was asked for.
    pub fn new(json: bool) -> Self {
        BarProgress {
            draw: !json && std::io::stderr().is_terminal(),
            bar: None,
        }
    }
}

impl Progress for BarProgress {
    fn begin(&mut self, name: &str, size: u64, resumed_from: u64) {
        if resumed_from > 0 {
            eprintln!("ferry: {name}: resuming at {resumed_from} bytes");
        }
        if self.draw {
            let bar = ProgressBar::new(size).with_position(resumed_from);
            let style = ProgressStyle::with_template(
                "{msg:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(name.to_string());
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
