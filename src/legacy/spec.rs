//! `--legacy NAME=ADDR`: which seed program a listener speaks, and where.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Which seed program a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyKind {
    /// The chat bot: `欢迎致电babyshen`, then `X` → `X好`.
    Chatbot,
    /// The echo phone: answers in upper case.
    Upper,
    /// The toy SSH: size header, ack, output.
    Shell,
    /// The toy FTP: `get NAME` with size, ack and MD5.
    Ftp,
}

impl LegacyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LegacyKind::Chatbot => "chatbot",
            LegacyKind::Upper => "upper",
            LegacyKind::Shell => "shell",
            LegacyKind::Ftp => "ftp",
        }
    }
}

/// One `--legacy NAME=ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacySpec {
    /// Which seed program.
    pub kind: LegacyKind,
    /// Where to listen.
    pub addr: SocketAddr,
}

impl fmt::Display for LegacySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind.name(), self.addr)
    }
}

impl FromStr for LegacySpec {
    type Err = String;

    /// Parses `NAME=ADDR`; `shell` only on a loopback address, since it runs commands for
    /// anyone who connects.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}': expected NAME=ADDR, e.g. chatbot=127.0.0.1:9001"))?;
        let kind = match name {
            "chatbot" => LegacyKind::Chatbot,
            "upper" => LegacyKind::Upper,
            "shell" => LegacyKind::Shell,
            "ftp" => LegacyKind::Ftp,
            other => {
                return Err(format!(
                    "unknown legacy listener '{other}': use chatbot, upper, shell or ftp"
                ));
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IP:PORT address"))?;
        if kind == LegacyKind::Shell && !addr.ip().is_loopback() {
            return Err(format!(
                "the legacy shell listener runs commands without authentication, so it may only listen on loopback (127.0.0.1 or ::1), not {addr}"
            ));
        }
        Ok(LegacySpec { kind, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_keeps_shell_on_loopback() {
        let spec: LegacySpec = "upper=127.0.0.1:6969".parse().unwrap();
        assert_eq!(spec.kind, LegacyKind::Upper);
        assert!("shell=[::1]:9000".parse::<LegacySpec>().is_ok());
        let err = "shell=0.0.0.0:9000".parse::<LegacySpec>().unwrap_err();
        assert!(err.contains("only listen on loopback"), "{err}");
        assert!("ftp=0.0.0.0:9000".parse::<LegacySpec>().is_ok());
        assert!("telnet=127.0.0.1:1".parse::<LegacySpec>().is_err());
        assert!("chatbot".parse::<LegacySpec>().is_err());
    }
}
