//! Looking a server name up, bounded in time and in addresses: through the system resolver
//! (`getaddrinfo` on a helper thread, [`super::super::host::resolve_within`]) or, with
//! `dns_server`, by asking that server directly over UDP (an A and an AAAA query on one
//! connected socket, so only that server's datagrams are read).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use super::wire::{self, TYPE_A, TYPE_AAAA};
use crate::domain::dns::ADDRESSES_MAX;

/// Longest wait for one lookup.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// A query not answered within this is sent again (once).
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// Largest datagram read (answers over 512 bytes come only with EDNS, which pen does not ask).
const DATAGRAM_MAX: usize = 4096;

/// Why a name gave no address; the servers keep their last ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LookupError {
    /// NXDOMAIN.
    #[error("no such name (NXDOMAIN)")]
    NoSuchName,
    /// The name exists and has no address.
    #[error("no addresses in the answer")]
    NoAddresses,
    /// The server answered with an error code.
    #[error("the DNS server answered with error code {0}")]
    Server(u8),
    /// No answer in time.
    #[error("no answer within {} s", LOOKUP_TIMEOUT.as_secs())]
    Timeout,
    /// The name cannot be asked for, or the answer cannot be read.
    #[error("{0}")]
    Wire(#[from] wire::WireError),
    /// The socket failed (the server refused: nothing listens there).
    #[error("{0}")]
    Io(String),
    /// The system resolver failed.
    #[error("{0}")]
    System(String),
}

/// The addresses of `name`: from the DNS server `server`, or the system resolver when none.
pub(crate) fn lookup(name: &str, server: Option<SocketAddr>) -> Result<Vec<IpAddr>, LookupError> {
    match server {
        Some(s) => ask(s, name, LOOKUP_TIMEOUT),
        None => system(name),
    }
}

/// The system resolver's addresses for `name` (first `ADDRESSES_MAX`, no duplicates).
fn system(name: &str) -> Result<Vec<IpAddr>, LookupError> {
    let owned = name.to_string();
    let found = super::super::host::resolve_within(name, LOOKUP_TIMEOUT, move || {
        (owned.as_str(), 0)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect::<Vec<_>>())
            .map_err(|e| crate::error::AddrError::Resolve {
                host: owned.clone(),
                reason: e.to_string(),
            })
    })
    .map_err(|e| LookupError::System(e.to_string()))?;
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in found {
        if !out.contains(&ip) && out.len() < ADDRESSES_MAX {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err(LookupError::NoAddresses);
    }
    Ok(out)
}

/// A query id no one can guess from outside (per-process random keys of std's hasher).
fn random_id(salt: u64) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    (h.finish() & 0xFFFF) as u16
}

/// Asks `server` for the A and AAAA records of `name`, within `timeout`: IPv4 addresses
/// first, then IPv6. Both answers are needed (a lost one would drop a family's servers).
pub(crate) fn ask(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, LookupError> {
    let io = |e: std::io::Error| LookupError::Io(format!("DNS server {server}: {e}"));
    let local: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    let id = random_id(u64::from(std::process::id()));
    let sent = [
        wire::query(id, name, TYPE_A)?,
        wire::query(id.wrapping_add(1), name, TYPE_AAAA)?,
    ];
    let mut answers: [Option<wire::Answer>; 2] = [None, None];
    let start = Instant::now();
    let mut resent = false;
    for q in &sent {
        socket.send(q).map_err(io)?;
    }
    let mut buf = vec![0u8; DATAGRAM_MAX];
    while answers.iter().any(Option::is_none) {
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(LookupError::Timeout);
        }
        if !resent && elapsed >= RESEND_AFTER {
            resent = true;
            for (q, a) in sent.iter().zip(&answers) {
                if a.is_none() {
                    socket.send(q).map_err(io)?;
                }
            }
        }
        let wait = if resent {
            timeout
        } else {
            RESEND_AFTER.min(timeout)
        };
        let left = wait.saturating_sub(elapsed).max(Duration::from_millis(1));
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(io(e)),
        };
        let msg = buf.get(..n).unwrap_or_default();
        for (q, a) in sent.iter().zip(answers.iter_mut()) {
            if a.is_none() {
                // A datagram that answers neither query (late, forged) is dropped.
                if let Ok(got) = wire::parse_answer(msg, q, ADDRESSES_MAX) {
                    *a = Some(got);
                    break;
                }
            }
        }
    }
    combine(answers.into_iter().flatten().collect())
}

/// The addresses of both answers, or why there are none.
fn combine(answers: Vec<wire::Answer>) -> Result<Vec<IpAddr>, LookupError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in &answers {
        for (ip, _ttl) in &a.addrs {
            if !out.contains(ip) && out.len() < ADDRESSES_MAX {
                out.push(*ip);
            }
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    if answers.iter().all(|a| a.rcode == 3) {
        return Err(LookupError::NoSuchName);
    }
    match answers.iter().find(|a| a.rcode != 0 && a.rcode != 3) {
        Some(a) => Err(LookupError::Server(a.rcode)),
        None => Err(LookupError::NoAddresses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every A query with `a` and every AAAA query with nothing, or
    /// NXDOMAIN for the name `gone.test`; the test's own, on loopback.
    fn server(a: [u8; 4]) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let mut m = buf[..n].to_vec();
                let nx = m.windows(4).any(|w| w == b"gone");
                let qtype = u16::from_be_bytes([m[n - 4], m[n - 3]]);
                m[2] = 0x81;
                m[3] = if nx { 0x83 } else { 0x80 };
                if qtype == TYPE_A && !nx {
                    m[7] = 1;
                    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
                    m.extend_from_slice(&a);
                }
                let _ = s.send_to(&m, from);
            }
        });
        addr
    }

    #[test]
    fn a_server_is_asked_for_both_families() {
        let s = server([10, 1, 2, 3]);
        let got = ask(s, "svc.test", Duration::from_secs(3)).unwrap();
        assert_eq!(got, [IpAddr::from([10, 1, 2, 3])]);
        assert_eq!(
            ask(s, "gone.test", Duration::from_secs(3)),
            Err(LookupError::NoSuchName)
        );
    }

    /// A server that never answers: a timeout, bounded.
    #[test]
    fn a_silent_server_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let t = Instant::now();
        let r = ask(addr, "svc.test", Duration::from_millis(300));
        assert_eq!(r, Err(LookupError::Timeout));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
