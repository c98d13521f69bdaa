//! Where chat output goes — above the line being edited on a terminal, plainly in a pipe — and
//! the two ways input is read.

use std::io::Write;

use rustyline::ExternalPrinter;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::Input;
use super::session::{echoed_on_ack, is_leave};

/// Where output goes: above the line being edited, or plainly to stdout/stderr.
pub(super) enum Printer {
    Terminal(Box<dyn ExternalPrinter + Send>),
    Plain,
}

impl Printer {
    /// Whether lines go above an edited line on a terminal.
    pub(super) fn is_terminal(&self) -> bool {
        matches!(self, Printer::Terminal(_))
    }

    /// Leaves the terminal clean: the line editor's prompt is not left half-drawn.
    pub(super) fn finish(&mut self) {
        if self.is_terminal() {
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "\r\x1b[2K");
            let _ = stdout.flush();
        }
    }

    pub(super) fn out(&mut self, line: &str) {
        let line = &*ferry::safe_text::escape(line);
        match self {
            // With its newline: rustyline adds one only while it edits a line (raw mode);
            // between edits (before the first prompt, when history arrives) it writes the text
            // as given, and the next prompt drew over a line without one.
            Printer::Terminal(p) => {
                let _ = p.print(format!("{line}\n"));
            }
            Printer::Plain => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
        }
    }

    pub(super) fn err(&mut self, line: &str) {
        let line = &*ferry::safe_text::escape(line);
        match self {
            Printer::Terminal(p) => {
                let _ = p.print(format!("ferry: {line}\n"));
            }
            Printer::Plain => eprintln!("ferry: {line}"),
        }
    }
}

/// The chat's input prompt.
const PROMPT: &str = "> ";

/// Clears the rows the prompt and `line` took, just above the cursor (rustyline leaves the
/// cursor on the row after the input), wrapped at the terminal's width.
fn erase_typed(editor: &mut rustyline::DefaultEditor, prompt: &str, line: &str) {
    use unicode_width::UnicodeWidthStr;
    let columns = editor
        .dimensions()
        .map_or(80, |(columns, _)| usize::from(columns))
        .max(1);
    let rows = (prompt.width() + line.width()).max(1).div_ceil(columns);
    let mut out = std::io::stdout().lock();
    for _ in 0..rows {
        let _ = out.write_all(b"\x1b[1A\x1b[2K");
    }
    let _ = out.write_all(b"\r");
    let _ = out.flush();
}

/// Runs rustyline on its own thread (it blocks) and returns a printer for incoming lines.
pub(super) fn spawn_line_editor(
    inputs: mpsc::Sender<Input>,
) -> anyhow::Result<Box<dyn ExternalPrinter + Send>> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let printer = editor.create_external_printer()?;
    std::thread::spawn(move || {
        loop {
            match editor.readline(PROMPT) {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    if echoed_on_ack(&line) {
                        // The server's confirmation shows the line with the nick: the typed copy
                        // goes, so each line is on the screen once (erased before it is sent,
                        // so before the confirmation can be printed).
                        erase_typed(&mut editor, PROMPT, &line);
                    }
                    // After a leave no prompt is drawn again, so none is left on the screen.
                    let leaving = is_leave(&line);
                    if inputs.blocking_send(Input::Line(line)).is_err() || leaving {
                        break;
                    }
                }
                Err(_) => {
                    // Ctrl-D, Ctrl-C or a terminal error: leave.
                    let _ = inputs.blocking_send(Input::End);
                    break;
                }
            }
        }
    });
    Ok(Box::new(printer))
}

/// Reads stdin line by line (invalid UTF-8 is replaced, not fatal).
pub(super) fn spawn_stdin_reader(inputs: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if inputs.send(Input::Line(line)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = inputs.send(Input::End).await;
    });
}
