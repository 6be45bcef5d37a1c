//! Listen addresses and server specs: parsing (PEN-SPEC 1) and name/service resolution.
//!
//! The parsers are pure where possible so they can be fuzzed; host and service names are
//! resolved through the system resolver (`getaddrinfo`) at the moment of parsing.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::AddrError;

/// Where pen listens (or where its control socket listens).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP (or, with `-U`, UDP) socket address.
    Inet(SocketAddr),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One server from the command line: `host[:port[:max[:hard[:weight[:prio]]]]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// Resolved address and port.
    pub addr: SocketAddr,
    /// Soft connection limit (0 = unlimited).
    pub max: u32,
    /// Hard limit that still admits returning clients (0 = unlimited).
    pub hard: u32,
    /// Weight for weighted selection.
    pub weight: u32,
    /// Priority for prio selection (lower is preferred).
    pub prio: u32,
}

/// Parses a listen address: `port`, `host:port`, `[v6]:port`, `:::port`, `::1:port`, or a path.
///
/// # Errors
/// [`AddrError`] naming the bad token.
pub fn parse_listen(s: &str) -> Result<ListenAddr, AddrError> {
    let _ = s;
    Err(AddrError::Invalid {
        token: s.to_string(),
        expected: "unimplemented",
    })
}

/// Parses a server spec; a missing port means `default_port` (the listen port).
///
/// # Errors
/// [`AddrError`] naming the bad field.
pub fn parse_server(s: &str, default_port: u16) -> Result<ServerSpec, AddrError> {
    let _ = default_port;
    Err(AddrError::Invalid {
        token: s.to_string(),
        expected: "unimplemented",
    })
}

/// Resolves a host name or address literal (brackets allowed) to one IP address.
///
/// # Errors
/// [`AddrError::Resolve`] when the name does not resolve.
pub fn resolve_host(host: &str) -> Result<std::net::IpAddr, AddrError> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    (h, 0)
        .to_socket_addrs()
        .map_err(|e| AddrError::Resolve {
            host: host.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| AddrError::Resolve {
            host: host.to_string(),
            reason: "no address".to_string(),
        })
}
