//! Trust on first use, asked as ssh asks: the fingerprint shown, yes or no.

use std::io::{BufRead, Write};

use ferry::safe_text::escape;

/// Asks on the terminal whether to trust `server`, which presented `fingerprint`; anything
/// but `yes` or `y` is no.
///
/// # Errors
/// The terminal cannot be read.
pub fn ask(server: &str, fingerprint: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "The identity of {} is not known yet.\nIts fingerprint is {}.\nTrust it and connect (yes/no)? ",
        escape(server),
        escape(fingerprint)
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "yes" || answer == "y")
}
