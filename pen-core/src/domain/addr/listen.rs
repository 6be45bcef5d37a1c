//! Listen addresses split into their parts (a path, or an optional host and a port), without
//! resolving anything.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use super::token::{split_host, split_port};
use super::{field, in_spec, invalid, Host, ListenParts, EXPECT_LISTEN, EXPECT_PATH, EXPECT_V6};
use crate::error::AddrError;

/// Splits a listen address without resolving anything (pure; safe to fuzz).
///
/// Forms: a path (contains `/`), `port`, `:port` and `host:port` (host an IPv4 literal or name),
/// `[v6]:port`, `:::port` (every IPv6 address), `v6literal:port` such as `::1:8080`.
///
/// # Errors
/// [`AddrError`] naming the bad token.
pub fn split_listen(s: &str) -> Result<ListenParts, AddrError> {
    if s.contains('/') {
        if s.contains('\0') {
            return Err(invalid(&s.replace('\0', "\\0"), EXPECT_PATH));
        }
        return Ok(ListenParts::Unix(PathBuf::from(s)));
    }
    if s.is_empty() {
        return Err(invalid(s, EXPECT_LISTEN));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(s, EXPECT_LISTEN))?;
        let ip = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| field(inside, s, EXPECT_V6))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid(s, EXPECT_LISTEN))?;
        let port = split_port(port).map_err(|e| in_spec(e, s))?;
        return Ok(ListenParts::Inet {
            host: Some(Host::Ip(IpAddr::V6(ip))),
            port,
        });
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Ok(ListenParts::Inet {
            host: None,
            port: split_port(s)?,
        });
    };
    let port = split_port(port).map_err(|e| in_spec(e, s))?;
    let host = if host.is_empty() {
        None
    } else if host.contains(':') {
        // `:::port`, `::1:port`: everything before the last colon must be an IPv6 literal.
        let ip = host
            .parse::<Ipv6Addr>()
            .map_err(|_| field(host, s, EXPECT_V6))?;
        Some(Host::Ip(IpAddr::V6(ip)))
    } else {
        Some(split_host(host).map_err(|e| in_spec(e, s))?)
    };
    Ok(ListenParts::Inet { host, port })
}
