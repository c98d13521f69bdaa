//! Where forwarded streams may go and where `-R` may listen: the server's `[forward]` rules,
//! each `HOST:PORTS` — `HOST` an IP address, a CIDR block (`10.0.0.0/8`), `*`, or a name;
//! `PORTS` a port, a range (`8000-8100`) or `*`. Nothing is allowed unless a rule says so, so a
//! server never becomes an open proxy into its network by default.
//!
//! A destination named by a DNS name is allowed when a rule names that very name, or when every
//! address it resolves to matches an address rule; the stream then connects to exactly the
//! addresses that were checked (never resolved again), so a name cannot be made to point
//! elsewhere between the check and the connect.

use std::net::{IpAddr, SocketAddr};

/// One `HOST:PORTS` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    host: HostPattern,
    ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Block(IpAddr, u8),
    Name(String),
}

impl Rule {
    /// Parses `HOST:PORTS` (`[V6]:PORTS` for IPv6).
    ///
    /// # Errors
    /// Why the text is not a rule.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let bad = |why: &str| format!("'{text}' is not HOST:PORTS ({why})");
        let (host, ports) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, ports) = rest.split_once("]:").ok_or_else(|| bad("no ]:PORTS"))?;
                (host, ports)
            }
            None => text.rsplit_once(':').ok_or_else(|| bad("no :PORTS"))?,
        };
        let ports = match ports {
            "*" => (1, u16::MAX),
            range => match range.split_once('-') {
                Some((low, high)) => (
                    low.parse().map_err(|_| bad("a bad port"))?,
                    high.parse().map_err(|_| bad("a bad port"))?,
                ),
                None => {
                    let port = range.parse().map_err(|_| bad("a bad port"))?;
                    (port, port)
                }
            },
        };
        if ports.0 == 0 || ports.0 > ports.1 {
            return Err(bad("ports run from 1 up"));
        }
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some((ip, bits)) = host.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| bad("a bad address block"))?;
            let bits: u8 = bits.parse().map_err(|_| bad("a bad prefix length"))?;
            if bits > if ip.is_ipv4() { 32 } else { 128 } {
                return Err(bad("a prefix longer than the address"));
            }
            HostPattern::Block(ip, bits)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Block(ip, if ip.is_ipv4() { 32 } else { 128 })
        } else if !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            HostPattern::Name(host.to_ascii_lowercase())
        } else {
            return Err(bad("a bad host"));
        };
        Ok(Rule { host, ports })
    }

    fn port_fits(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    fn name_fits(&self, name: &str, port: u16) -> bool {
        matches!(&self.host, HostPattern::Name(n) if n.eq_ignore_ascii_case(name.trim_end_matches('.')))
            && self.port_fits(port)
    }

    fn address_fits(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        let host = match &self.host {
            HostPattern::Any => true,
            HostPattern::Block(net, bits) => in_block(ip, canonical(*net), *bits),
            HostPattern::Name(_) => false,
        };
        host && self.port_fits(addr.port())
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 addresses they are (so `::ffff:10.0.0.1` is judged
/// as `10.0.0.1`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A list of rules (`[forward] connect` or `listen`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Parses every rule.
    ///
    /// # Errors
    /// The first rule that does not parse.
    pub fn parse(texts: &[String]) -> Result<Rules, String> {
        texts
            .iter()
            .map(|t| Rule::parse(t))
            .collect::<Result<_, _>>()
            .map(Rules)
    }

    /// Whether no rule allows anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a stream to `name:port`, which resolved to `addrs`, may go: a rule names it, or
    /// every address matches an address rule (and there is one).
    pub fn allows(&self, name: &str, port: u16, addrs: &[SocketAddr]) -> bool {
        self.0.iter().any(|r| r.name_fits(name, port))
            || (!addrs.is_empty()
                && addrs
                    .iter()
                    .all(|addr| self.0.iter().any(|r| r.address_fits(*addr))))
    }

    /// Whether a listener may open on `addr`.
    pub fn allows_listen(&self, addr: SocketAddr) -> bool {
        self.0.iter().any(|r| r.address_fits(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Rules {
        Rules::parse(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn names_addresses_and_ports_are_matched_as_written() {
        let r = rules(&["127.0.0.1:*", "db.internal:5432", "10.0.0.0/8:8000-8100"]);
        assert!(r.allows("127.0.0.1", 22, &[at("127.0.0.1:22")]));
        assert!(r.allows("db.internal", 5432, &[at("192.168.1.9:5432")]));
        assert!(!r.allows("db.internal", 5433, &[at("192.168.1.9:5433")]));
        assert!(r.allows("10.1.2.3", 8050, &[at("10.1.2.3:8050")]));
        assert!(!r.allows("10.1.2.3", 8101, &[at("10.1.2.3:8101")]));
        assert!(!r.allows("127.0.0.2", 22, &[at("127.0.0.2:22")]));
        // A name that resolves to an allowed address and a forbidden one: refused.
        assert!(!r.allows("sneaky", 22, &[at("127.0.0.1:22"), at("192.168.1.1:22")]));
        assert!(r.allows("localhost", 22, &[at("127.0.0.1:22")]));
        assert!(
            r.allows("m", 22, &[at("[::ffff:127.0.0.1]:22")]),
            "mapped v4"
        );
        assert!(!Rules::default().allows("127.0.0.1", 22, &[at("127.0.0.1:22")]));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in ["127.0.0.1", "x:0", "x:9-3", "10.0.0.0/33:1", "a b:1", ":*"] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }
}
