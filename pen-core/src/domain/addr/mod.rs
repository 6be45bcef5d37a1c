//! Listen addresses and server specs: parsing (PEN-SPEC 1) and name/service resolution.
//!
//! Two layers:
//! - a pure syntactic layer ([`split_listen`], [`split_server_spec`], [`split_port`]) that only
//!   looks at the text and never touches the system, so it can be fuzzed and property-tested;
//! - resolution ([`parse_listen`], [`parse_server`], [`parse_port`]) that turns host names into
//!   addresses through the system resolver and service names into ports through `/etc/services`.
//!
//! Every error names the offending token and what was expected instead.
//!
//! The files: `token` splits host and port tokens, `listen` listen addresses,
//! `server_spec` server specs; `resolve` turns the parts into addresses. This file holds the
//! types they share, the texts of what each error expected, and the error builders.

mod listen;
mod resolve;
mod server_spec;
mod token;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::error::AddrError;

pub use listen::split_listen;
pub use resolve::{
    lookup_service_in, parse_listen, parse_port, parse_server, resolve_host, resolve_port,
};
pub use server_spec::split_server_spec;
pub use token::{split_host, split_port};

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

/// A host as written: an IP literal or a name still to be resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A host name (syntactically checked, not yet resolved).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// A port as written: a number or a service name still to be looked up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// A numeric port.
    Number(u16),
    /// A service name such as `smtp` (looked up among the tcp entries of `/etc/services`).
    Service(String),
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Service(s) => f.write_str(s),
        }
    }
}

/// A listen address split into its parts, before any resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenParts {
    /// A Unix-domain socket path (the text contained a `/`).
    Unix(PathBuf),
    /// A TCP address; `host: None` means every IPv4 address (`0.0.0.0`), as C pen binds a bare port.
    Inet {
        /// The host, if one was given.
        host: Option<Host>,
        /// The port.
        port: Port,
    },
}

/// A server spec split into its fields, before any resolution. Absent numeric fields are 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerSpecParts {
    /// The host.
    pub host: Host,
    /// The port; `None` means "the listen port".
    pub port: Option<Port>,
    /// Soft connection limit (0 = unlimited).
    pub max: u32,
    /// Hard connection limit (0 = unlimited).
    pub hard: u32,
    /// Weight.
    pub weight: u32,
    /// Priority.
    pub prio: u32,
}

impl fmt::Display for ServerSpecParts {
    /// Formats the spec back into command-line form, always with every field (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            h => write!(f, "{h}")?,
        }
        // An absent port is written as an empty field, which parses back as absent.
        let port = self
            .port
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        write!(
            f,
            ":{port}:{}:{}:{}:{}",
            self.max, self.hard, self.weight, self.prio
        )
    }
}

const EXPECT_LISTEN: &str = "a listen address: port, host:port, [v6addr]:port, :::port or a path";
const EXPECT_SERVER: &str =
    "a server: host[:port[:max[:hard[:weight[:prio]]]]] or [v6addr]:port...";
const EXPECT_PORT: &str = "a port number or service name";
const EXPECT_HOST: &str = "a host name or IP address (IPv6 as [addr])";
const EXPECT_V6: &str = "an IPv6 address";
const EXPECT_V4: &str = "an IPv4 address";
const EXPECT_PATH: &str = "a socket path without NUL bytes";
const EXPECT_TOO_MANY: &str = "at most host:port:max:hard:weight:prio (IPv6 as [addr]:port...)";

fn invalid(token: &str, expected: &'static str) -> AddrError {
    AddrError::Invalid {
        token: token.to_string(),
        expected,
    }
}

fn field(token: &str, spec: &str, expected: &'static str) -> AddrError {
    AddrError::Field {
        token: token.to_string(),
        spec: spec.to_string(),
        expected,
    }
}

/// Rewrites a bare [`AddrError::Invalid`] as a [`AddrError::Field`] inside `spec`.
fn in_spec(e: AddrError, spec: &str) -> AddrError {
    match e {
        AddrError::Invalid { token, expected } if token != spec => AddrError::Field {
            token,
            spec: spec.to_string(),
            expected,
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "addr_tests.rs"]
mod tests;
