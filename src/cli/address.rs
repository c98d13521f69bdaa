//! Where a command goes: `--server HOST[:PORT]`, and scp's `HOST:PATH` in file arguments.
//!
//! A file argument names a server when it has a colon and nothing before the first colon looks
//! like a path (no `/`), as scp decides: `box:notes.txt`, `box:9000:notes.txt`,
//! `[::1]:9000:notes.txt`. The port is told apart from the path by a second colon: the field
//! after the host is a port only when it is all digits *and* followed by `:`, so
//! `box:2024` is the file `2024` on port 9999 and `box:2024:` the root on port 2024. A local
//! name with a colon is written `./a:b`.

/// The port of a server named without one.
pub const DEFAULT_PORT: u16 = 9999;

/// `HOST:PORT` for `--server`: `HOST` alone (or `[V6]`) means port [`DEFAULT_PORT`]; a
/// `wss://`/`ws://` web door stays as it is.
pub fn server_address(server: &str) -> String {
    let server = server.trim();
    // A web door (`wss://HOST:PORT`) is used as it is written.
    if server.starts_with("wss://") || server.starts_with("ws://") {
        return server.to_string();
    }
    if let Some(rest) = server.strip_prefix('[') {
        // [V6] or [V6]:PORT
        return match rest.split_once(']') {
            Some((_, "")) => format!("{server}:{DEFAULT_PORT}"),
            _ => server.to_string(),
        };
    }
    match server.matches(':').count() {
        0 => format!("{server}:{DEFAULT_PORT}"),
        1 => server.to_string(),
        // A bare IPv6 address: bracket it.
        _ => format!("[{server}]:{DEFAULT_PORT}"),
    }
}

/// A file argument split into its server (if it names one) and its path under that server's
/// root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteArg {
    /// `HOST[:PORT]` (or a host alias), when the argument named a server.
    pub server: Option<String>,
    /// The path under the server's root (`""` for the root itself).
    pub path: String,
}

impl RemoteArg {
    /// Splits `HOST[:PORT]:PATH` and `wss://HOST:PORT:PATH` (`ws://` too: a web door);
    /// anything else is a plain path on `--server`.
    pub fn parse(arg: &str) -> RemoteArg {
        let plain = || RemoteArg {
            server: None,
            path: arg.to_string(),
        };
        for scheme in ["wss://", "ws://"] {
            if let Some(rest) = arg.strip_prefix(scheme) {
                let inner = RemoteArg::parse(rest);
                if let Some(server) = inner.server {
                    return RemoteArg {
                        server: Some(format!("{scheme}{}", server_address(&server))),
                        path: inner.path,
                    };
                }
            }
        }
        let (host, rest) = if let Some(bracketed) = arg.strip_prefix('[') {
            match bracketed.split_once("]:") {
                Some((v6, rest)) => (format!("[{v6}]"), rest),
                None => return plain(),
            }
        } else {
            match arg.split_once(':') {
                Some((host, rest)) if !host.is_empty() && !host.contains('/') => {
                    (host.to_string(), rest)
                }
                _ => return plain(),
            }
        };
        let (port, path) = match rest.split_once(':') {
            Some((port, path))
                if !port.is_empty()
                    && port.len() <= 5
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (port.parse::<u16>().ok(), path)
            }
            _ => (None, rest),
        };
        // Without a port the host stays as written: it may be a host alias (and
        // `server_address` gives a plain host the default port).
        RemoteArg {
            server: Some(match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }),
            path: path.to_string(),
        }
    }
}

/// Whether the last name of `path` is a glob (`*`, `?` or `[`): expanded against a listing.
pub fn is_glob(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(['*', '?', '[']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_door_may_be_named_in_a_path() {
        assert_eq!(
            RemoteArg::parse("wss://box:8443:notes.txt"),
            remote(Some("wss://box:8443"), "notes.txt")
        );
        assert_eq!(
            RemoteArg::parse("ws://127.0.0.1:8080:"),
            remote(Some("ws://127.0.0.1:8080"), "")
        );
    }

    fn remote(server: Option<&str>, path: &str) -> RemoteArg {
        RemoteArg {
            server: server.map(str::to_string),
            path: path.into(),
        }
    }

    #[test]
    fn a_server_without_a_port_gets_the_default_one() {
        assert_eq!(server_address("box"), "box:9999");
        assert_eq!(server_address("box:7000"), "box:7000");
        assert_eq!(server_address("[::1]"), "[::1]:9999");
        assert_eq!(server_address("[::1]:7000"), "[::1]:7000");
        assert_eq!(server_address("::1"), "[::1]:9999");
    }

    #[test]
    fn file_arguments_split_like_scp() {
        assert_eq!(RemoteArg::parse("notes.txt"), remote(None, "notes.txt"));
        assert_eq!(RemoteArg::parse("docs/a:b"), remote(None, "docs/a:b"));
        assert_eq!(RemoteArg::parse("./a:b"), remote(None, "./a:b"));
        assert_eq!(RemoteArg::parse(":x"), remote(None, ":x"));
        assert_eq!(
            RemoteArg::parse("box:notes.txt"),
            remote(Some("box"), "notes.txt")
        );
        assert_eq!(RemoteArg::parse("box:"), remote(Some("box"), ""));
        assert_eq!(
            RemoteArg::parse("box:9000:a/b"),
            remote(Some("box:9000"), "a/b")
        );
        assert_eq!(RemoteArg::parse("box:2024"), remote(Some("box"), "2024"));
        assert_eq!(RemoteArg::parse("box:2024:"), remote(Some("box:2024"), ""));
        assert_eq!(
            RemoteArg::parse("[::1]:9000:x"),
            remote(Some("[::1]:9000"), "x")
        );
        assert_eq!(RemoteArg::parse("[::1]:x"), remote(Some("[::1]"), "x"));
    }

    #[test]
    fn only_the_last_name_may_be_a_glob() {
        assert!(is_glob("logs/*.gz"));
        assert!(is_glob("a?.txt"));
        assert!(!is_glob("we*ird/file"));
        assert!(!is_glob("plain"));
    }
}
