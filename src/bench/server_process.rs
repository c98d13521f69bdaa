//! Finding and reading the server's process when it runs on this machine, to report its memory
//! per connection. Linux only (it reads /proc); elsewhere the figure is simply absent.

use std::net::SocketAddr;

/// The pid of the local process listening on `addr`'s port, found through /proc/net/tcp{,6}
/// (the listening socket's inode) and each process's descriptors. `None` if it is not here or
/// not visible to this user.
pub fn find_listener(addr: SocketAddr) -> Option<u32> {
    let inodes = listening_inodes(addr.port());
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && let Some(inode) = link
                    .to_str()
                    .and_then(|l| l.strip_prefix("socket:["))
                    .and_then(|l| l.strip_suffix(']'))
                && inodes.iter().any(|i| i == inode)
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Inodes of sockets listening on `port` (state 0A), IPv4 and IPv6.
fn listening_inodes(port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
                && *state == "0A"
                && local.rsplit(':').next() == Some(port_hex.as_str())
            {
                inodes.push((*inode).to_string());
            }
        }
    }
    inodes
}

/// A process's resident memory in KiB (VmRSS), if readable.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_by_its_listening_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(find_listener(addr), Some(std::process::id()));
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
        drop(listener);
        assert_eq!(find_listener(addr), None);
    }
}
