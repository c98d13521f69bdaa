//! Transfer progress: a bar per file, or one line for a whole tree (rsync's
//! `--info=progress2`), drawn on stderr when it is a terminal, absent otherwise.

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

/// One line for a whole tree: bytes moved of the total, files done of the total, rate, ETA,
/// and the file in progress.
pub struct TreeProgress {
    draw: bool,
    bar: Option<ProgressBar>,
    files: u64,
    done: u64,
}

impl TreeProgress {
    /// Draws only if stderr is a terminal and no machine-readable output was asked for.
    pub fn new(json: bool) -> Self {
        TreeProgress {
            draw: !json && std::io::stderr().is_terminal(),
            bar: None,
            files: 0,
            done: 0,
        }
    }

    fn show(&self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}/{} files  {name}", self.done, self.files));
        }
    }
}

impl Progress for TreeProgress {
    fn plan(&mut self, files: u64, bytes: u64) {
        self.files = files;
        if self.draw && files > 0 {
            let bar = ProgressBar::new(bytes);
            let style = ProgressStyle::with_template(
                "{bytes:>10}/{total_bytes} {percent:>3}% {bytes_per_sec:>12} eta {eta:>4}  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
        }
    }

    fn begin(&mut self, name: &str, _size: u64, resumed_from: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(resumed_from);
        }
        self.show(&ferry::safe_text::escape(name));
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn end(&mut self) {
        self.done += 1;
        self.show("");
        if self.done == self.files
            && let Some(bar) = self.bar.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Drop for TreeProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
