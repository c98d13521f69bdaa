//! Which `Host` values the web door answers: the defence against DNS rebinding.
//!
//! A page at `evil.example` can make its own name resolve to 127.0.0.1 and then read a loopback
//! door with requests that are same-origin *for the browser* (origin `http://evil.example:PORT`),
//! so an Origin check alone lets them through. What such a request cannot change is its `Host`
//! header: it names the attacker's domain. So every request — the page's files, `/ferry.json`
//! and the WebSocket upgrade alike — must name this door: an IP literal of the address the
//! connection arrived on (an IP cannot be rebound), `localhost` when that address is loopback,
//! or a name the operator lists in `[web] hosts`. Anything else gets `421 Misdirected Request`
//! before any handler runs.
//!
//! The port is not compared: the defence is the name, and a reverse proxy in front of the door
//! may well present another port than the one the door listens on.

use std::net::IpAddr;

/// The names a door answers to beyond its own address.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedHosts {
    /// `[web] hosts`, lower case, without a trailing dot.
    names: Vec<String>,
}

impl AllowedHosts {
    /// The door's allowed names from `[web] hosts`.
    pub(crate) fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        AllowedHosts {
            names: names
                .into_iter()
                .map(|name| normalise(&name.as_ref().to_ascii_lowercase()).to_owned())
                .collect(),
        }
    }

    /// Whether a request with `Host: host` (`None`: without one) that arrived on `local` (the
    /// address the connection was accepted on) is meant for this door. Names compare without
    /// regard to ASCII case.
    pub(crate) fn allows_header(&self, host: Option<&str>, local: IpAddr) -> bool {
        let Some(host) = host else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let name = normalise(strip_port(&host));
        if name.is_empty() {
            return false;
        }
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return same_ip(ip, local);
        }
        if name == "localhost" {
            return local.is_loopback();
        }
        self.names.iter().any(|allowed| allowed == name)
    }
}

/// Two addresses equal, an IPv4-mapped IPv6 address counting as its IPv4 form.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; a bare IPv6 address is left whole.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        // More than one colon without brackets: an IPv6 address, not host:port.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

/// A name as compared: lower case ASCII, one trailing dot dropped (`localhost.` is `localhost`).
fn normalise(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn allowed() -> AllowedHosts {
        AllowedHosts::new(["ferry.example.org", "box.lan."])
    }

    #[test]
    fn a_rebound_name_is_refused() {
        assert!(!allowed().allows_header(Some("evil.example:8080"), LOOPBACK));
        assert!(!allowed().allows_header(Some("evil.example"), LOOPBACK));
        assert!(!allowed().allows_header(Some("localhost.evil.example"), LOOPBACK));
        assert!(!allowed().allows_header(None, LOOPBACK));
        assert!(!allowed().allows_header(Some(""), LOOPBACK));
    }

    #[test]
    fn the_door_s_own_address_localhost_and_listed_names_are_allowed() {
        let hosts = allowed();
        assert!(hosts.allows_header(Some("127.0.0.1:8443"), LOOPBACK));
        assert!(hosts.allows_header(Some("127.0.0.1"), LOOPBACK));
        assert!(hosts.allows_header(Some("LocalHost:8443"), LOOPBACK));
        assert!(hosts.allows_header(Some("localhost.:8443"), LOOPBACK));
        assert!(hosts.allows_header(Some("Ferry.Example.org:443"), LOOPBACK));
        assert!(hosts.allows_header(Some("box.lan"), LOOPBACK));
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(hosts.allows_header(Some("[::1]:8443"), v6));
        assert!(hosts.allows_header(Some("localhost"), v6));
    }

    #[test]
    fn another_address_or_localhost_off_loopback_is_refused() {
        let public: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!allowed().allows_header(Some("127.0.0.1:8443"), public));
        assert!(!allowed().allows_header(Some("localhost"), public));
        assert!(allowed().allows_header(Some("192.0.2.7:8443"), public));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(allowed().allows_header(Some("192.0.2.7"), mapped));
    }
}
