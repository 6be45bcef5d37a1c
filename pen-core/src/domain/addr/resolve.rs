//! Resolution: service names to ports through `/etc/services`, host names to addresses through
//! the system resolver, and the whole listen addresses and server specs built on both.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use super::listen::split_listen;
use super::server_spec::split_server_spec;
use super::token::split_port;
use super::{in_spec, invalid, Host, ListenAddr, ListenParts, Port, ServerSpec, EXPECT_PORT};
use crate::error::AddrError;

/// Looks a service name up in text in `/etc/services` format (tcp entries, names and aliases).
pub fn lookup_service_in(services: &str, name: &str) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let official = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let matches = official == name || words.any(|alias| alias == name);
        (matches && proto == "tcp")
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// Resolves a [`Port`]: numbers as they are, service names through `/etc/services`.
///
/// # Errors
/// [`AddrError::Invalid`] for an unknown service name.
pub fn resolve_port(port: &Port) -> Result<u16, AddrError> {
    match port {
        Port::Number(n) => Ok(*n),
        Port::Service(name) => std::fs::read_to_string("/etc/services")
            .ok()
            .and_then(|text| lookup_service_in(&text, name))
            .ok_or_else(|| invalid(name, EXPECT_PORT)),
    }
}

/// Parses a port: a number (0-65535) or a tcp service name from `/etc/services` (`smtp`, `http`).
///
/// # Errors
/// [`AddrError::Invalid`] naming the token.
pub fn parse_port(s: &str) -> Result<u16, AddrError> {
    resolve_port(&split_port(s)?)
}

/// Resolves a host to a socket address with `port`; names take the resolver's first address.
///
/// # Errors
/// [`AddrError::Resolve`] if the name does not resolve.
pub fn resolve_host(host: &Host, port: u16) -> Result<SocketAddr, AddrError> {
    match host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        Host::Name(name) => {
            let resolve_err = |reason: String| AddrError::Resolve {
                host: name.clone(),
                reason,
            };
            (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| resolve_err(e.to_string()))?
                .next()
                .ok_or_else(|| resolve_err("no addresses".to_string()))
        }
    }
}

/// Parses a listen address: `port`, `host:port`, `[v6]:port`, `:::port`, `::1:port`, or a path.
///
/// A bare port listens on every IPv4 address (`0.0.0.0`), as C pen does.
///
/// # Errors
/// [`AddrError`] naming the bad token.
pub fn parse_listen(s: &str) -> Result<ListenAddr, AddrError> {
    match split_listen(s)? {
        ListenParts::Unix(p) => Ok(ListenAddr::Unix(p)),
        ListenParts::Inet { host, port } => {
            let port = resolve_port(&port).map_err(|e| in_spec(e, s))?;
            let host = host.unwrap_or(Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
            resolve_host(&host, port).map(ListenAddr::Inet)
        }
    }
}

/// Parses a server spec; a missing port means `default_port` (the listen port).
///
/// # Errors
/// [`AddrError`] naming the bad field.
pub fn parse_server(s: &str, default_port: u16) -> Result<ServerSpec, AddrError> {
    let parts = split_server_spec(s)?;
    let port = match &parts.port {
        Some(p) => resolve_port(p).map_err(|e| in_spec(e, s))?,
        None => default_port,
    };
    Ok(ServerSpec {
        addr: resolve_host(&parts.host, port)?,
        max: parts.max,
        hard: parts.hard,
        weight: parts.weight,
        prio: parts.prio,
    })
}
