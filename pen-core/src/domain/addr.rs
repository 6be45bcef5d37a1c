//! Listen addresses and server specs: parsing (PEN-SPEC 1) and name/service resolution.
//!
//! Two layers:
//! - a pure syntactic layer ([`split_listen`], [`split_server_spec`], [`split_port`]) that only
//!   looks at the text and never touches the system, so it can be fuzzed and property-tested;
//! - resolution ([`parse_listen`], [`parse_server`], [`parse_port`]) that turns host names into
//!   addresses through the system resolver and service names into ports through `/etc/services`.
//!
//! Every error names the offending token and what was expected instead.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
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
/// Names of the numeric fields after the port, in order.
const FIELD_NAMES: [&str; 4] = [
    "a number (max connections)",
    "a number (hard limit)",
    "a number (weight)",
    "a number (prio)",
];

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

/// Whether `s` is a nonempty string of ASCII digits (what `u16::from_str` would accept minus `+`).
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits a port token: digits become [`Port::Number`], a plausible name [`Port::Service`].
///
/// # Errors
/// [`AddrError::Invalid`] for an out-of-range number or a token that cannot be a service name.
pub fn split_port(s: &str) -> Result<Port, AddrError> {
    if all_digits(s) {
        return s
            .parse()
            .map(Port::Number)
            .map_err(|_| invalid(s, EXPECT_PORT));
    }
    let name_ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
    if name_ok {
        Ok(Port::Service(s.to_string()))
    } else {
        Err(invalid(s, EXPECT_PORT))
    }
}

/// Splits a host token: an IPv4/IPv6 literal or a syntactically valid host name.
/// (Public so `server N address H` can check and resolve a host with the same rules.)
pub fn split_host(s: &str) -> Result<Host, AddrError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    // Digits and dots only: the user meant an IPv4 literal; do not send it to the resolver.
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(s, EXPECT_V4));
    }
    let name_ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if name_ok {
        Ok(Host::Name(s.to_string()))
    } else {
        Err(invalid(s, EXPECT_HOST))
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

/// Splits a server spec without resolving anything (pure; safe to fuzz).
///
/// `host[:port[:max[:hard[:weight[:prio]]]]]` or `[v6]` / `[v6]:port:...`. An empty
/// field counts as absent (so `host::10` is "listen port, max 10").
///
/// # Errors
/// [`AddrError`] naming the bad field, the spec and what was expected.
pub fn split_server_spec(s: &str) -> Result<ServerSpecParts, AddrError> {
    if s.is_empty() {
        return Err(invalid(s, EXPECT_SERVER));
    }
    let (host, rest) = if let Some(after_bracket) = s.strip_prefix('[') {
        let (inside, after) = after_bracket
            .split_once(']')
            .ok_or_else(|| invalid(s, EXPECT_SERVER))?;
        let ip = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| field(inside, s, EXPECT_V6))?;
        let rest = match after.strip_prefix(':') {
            Some(r) => Some(r),
            None if after.is_empty() => None,
            None => return Err(field(after, s, "':' after ']'")),
        };
        (Host::Ip(IpAddr::V6(ip)), rest)
    } else {
        // No bare IPv6 here: `cafe::10` is host `cafe`, listen port, max 10, as in C pen.
        let (host, rest) = match s.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        (split_host(host).map_err(|e| in_spec(e, s))?, rest)
    };
    let mut parts = ServerSpecParts {
        host,
        port: None,
        max: 0,
        hard: 0,
        weight: 0,
        prio: 0,
    };
    let Some(rest) = rest else { return Ok(parts) };
    let mut fields = rest.split(':');
    if let Some(p) = fields.next().filter(|p| !p.is_empty()) {
        parts.port = Some(split_port(p).map_err(|e| in_spec(e, s))?);
    }
    let slots = [
        &mut parts.max,
        &mut parts.hard,
        &mut parts.weight,
        &mut parts.prio,
    ];
    for (slot, expected) in slots.into_iter().zip(FIELD_NAMES) {
        match fields.next() {
            None => break,
            Some("") => {}
            Some(t) if all_digits(t) => *slot = t.parse().map_err(|_| field(t, s, expected))?,
            Some(t) => return Err(field(t, s, expected)),
        }
    }
    if let Some(extra) = fields.next() {
        return Err(field(extra, s, EXPECT_TOO_MANY));
    }
    Ok(parts)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inet(s: &str) -> ListenAddr {
        ListenAddr::Inet(s.parse().unwrap())
    }

    fn err(r: Result<impl fmt::Debug, AddrError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("8080").unwrap(), inet("0.0.0.0:8080"));
        assert_eq!(parse_listen(":8080").unwrap(), inet("0.0.0.0:8080"));
        assert_eq!(
            parse_listen("127.0.0.1:8080").unwrap(),
            inet("127.0.0.1:8080")
        );
        assert_eq!(parse_listen("[::1]:8080").unwrap(), inet("[::1]:8080"));
        assert_eq!(parse_listen(":::8080").unwrap(), inet("[::]:8080"));
        assert_eq!(parse_listen("::1:8080").unwrap(), inet("[::1]:8080"));
        assert_eq!(
            parse_listen("fe80::1:2:8080").unwrap(),
            inet("[fe80::1:2]:8080")
        );
        assert_eq!(parse_listen("0").unwrap(), inet("0.0.0.0:0"));
        assert_eq!(
            parse_listen("/tmp/pen.sock").unwrap(),
            ListenAddr::Unix("/tmp/pen.sock".into())
        );
        assert_eq!(
            parse_listen("./ctl").unwrap(),
            ListenAddr::Unix("./ctl".into())
        );
    }

    #[test]
    fn listen_service_names() {
        assert_eq!(parse_listen("smtp").unwrap(), inet("0.0.0.0:25"));
        assert_eq!(
            parse_listen("127.0.0.1:http").unwrap(),
            inet("127.0.0.1:80")
        );
        assert_eq!(parse_listen("127.0.0.1:www").unwrap(), inet("127.0.0.1:80"));
        assert_eq!(parse_port("https").unwrap(), 443);
        assert_eq!(parse_port("65535").unwrap(), 65535);
    }

    #[test]
    fn listen_host_name() {
        let ListenAddr::Inet(a) = parse_listen("localhost:8080").unwrap() else {
            panic!()
        };
        assert!(a.ip().is_loopback());
        assert_eq!(a.port(), 8080);
    }

    #[test]
    fn listen_errors() {
        assert_eq!(
            err(parse_listen("70000")),
            "'70000': expected a port number or service name"
        );
        assert_eq!(
            err(parse_port("+80")),
            "'+80': expected a port number or service name"
        );
        assert_eq!(
            err(parse_listen("127.0.0.1:70000")),
            "'70000' in '127.0.0.1:70000': expected a port number or service name"
        );
        assert_eq!(
            err(parse_listen("nosuchservice")),
            "'nosuchservice': expected a port number or service name"
        );
        assert_eq!(
            err(parse_listen("::1")),
            "':' in '::1': expected an IPv6 address"
        );
        assert_eq!(
            err(parse_listen("1:2:8080")),
            "'1:2' in '1:2:8080': expected an IPv6 address"
        );
        assert_eq!(
            err(parse_listen("[::1]8080")),
            format!("'[::1]8080': expected {EXPECT_LISTEN}")
        );
        assert_eq!(
            err(parse_listen("[x]:80")),
            "'x' in '[x]:80': expected an IPv6 address"
        );
        assert_eq!(
            err(parse_listen("")),
            format!("'': expected {EXPECT_LISTEN}")
        );
        assert_eq!(
            err(parse_listen("1.2.3.400:80")),
            "'1.2.3.400' in '1.2.3.400:80': expected an IPv4 address"
        );
        assert_eq!(
            err(parse_listen("a b:80")),
            format!("'a b' in 'a b:80': expected {EXPECT_HOST}")
        );
        assert!(err(parse_listen("no-such-host.invalid:80"))
            .starts_with("'no-such-host.invalid': cannot resolve"));
    }

    #[test]
    fn server_forms() {
        let s = parse_server("127.0.0.1", 8080).unwrap();
        assert_eq!(
            (s.addr, s.max, s.hard, s.weight, s.prio),
            ("127.0.0.1:8080".parse().unwrap(), 0, 0, 0, 0)
        );
        let s = parse_server("127.0.0.1:81:1:2:3:4", 8080).unwrap();
        assert_eq!(
            (s.addr, s.max, s.hard, s.weight, s.prio),
            ("127.0.0.1:81".parse().unwrap(), 1, 2, 3, 4)
        );
        let s = parse_server("[::1]:81:5", 8080).unwrap();
        assert_eq!((s.addr, s.max), ("[::1]:81".parse().unwrap(), 5));
        assert_eq!(
            parse_server("[::1]", 9).unwrap().addr,
            "[::1]:9".parse().unwrap()
        );
        let p = split_server_spec("cafe::10").unwrap();
        assert_eq!(
            (p.host, p.port, p.max),
            (Host::Name("cafe".into()), None, 10)
        );
        assert_eq!(
            parse_server("127.0.0.1:smtp", 9).unwrap().addr,
            "127.0.0.1:25".parse().unwrap()
        );
        let s = parse_server("127.0.0.1::10", 9).unwrap();
        assert_eq!((s.addr.port(), s.max), (9, 10));
        assert!(parse_server("localhost:80", 9)
            .unwrap()
            .addr
            .ip()
            .is_loopback());
    }

    #[test]
    fn server_errors() {
        let cases = [
            (
                "127.0.0.1:80:x",
                "'x' in '127.0.0.1:80:x': expected a number (max connections)",
            ),
            (
                "h:80:1:-2",
                "'-2' in 'h:80:1:-2': expected a number (hard limit)",
            ),
            (
                "h:80:1:2:4294967296",
                "'4294967296' in 'h:80:1:2:4294967296': expected a number (weight)",
            ),
            (
                "h:80:1:2:3:+4",
                "'+4' in 'h:80:1:2:3:+4': expected a number (prio)",
            ),
            (
                "h:70000",
                "'70000' in 'h:70000': expected a port number or service name",
            ),
            (
                "h:nosuchsvc",
                "'nosuchsvc' in 'h:nosuchsvc': expected a port number or service name",
            ),
            ("[::1]x", "'x' in '[::1]x': expected ':' after ']'"),
            ("[zz]:80", "'zz' in '[zz]:80': expected an IPv6 address"),
            (
                "1.2.3.4.5:80",
                "'1.2.3.4.5' in '1.2.3.4.5:80': expected an IPv4 address",
            ),
        ];
        for (spec, msg) in cases {
            assert_eq!(err(parse_server(spec, 1)), msg, "{spec}");
        }
        assert_eq!(
            err(parse_server("", 1)),
            format!("'': expected {EXPECT_SERVER}")
        );
        assert_eq!(
            err(parse_server(":80", 1)),
            format!("'' in ':80': expected {EXPECT_HOST}")
        );
        assert_eq!(
            err(parse_server("::1", 1)),
            format!("'' in '::1': expected {EXPECT_HOST}")
        );
        assert_eq!(
            err(parse_server("h:1:2:3:4:5:6", 1)),
            format!("'6' in 'h:1:2:3:4:5:6': expected {EXPECT_TOO_MANY}")
        );
        assert_eq!(
            err(parse_server("[::1", 1)),
            format!("'[::1': expected {EXPECT_SERVER}")
        );
    }

    #[test]
    fn services_file_lookup() {
        let text = "# comment\nsmtp\t\t25/tcp\t\tmail\nfoo 99/udp\nfoo 98/tcp # x\nbad\n";
        assert_eq!(lookup_service_in(text, "smtp"), Some(25));
        assert_eq!(lookup_service_in(text, "mail"), Some(25));
        assert_eq!(lookup_service_in(text, "foo"), Some(98));
        assert_eq!(lookup_service_in(text, "bad"), None);
        assert_eq!(lookup_service_in(text, "comment"), None);
    }

    fn host_strategy() -> impl Strategy<Value = Host> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| Host::Ip(IpAddr::from(b))),
            any::<[u8; 16]>().prop_map(|b| Host::Ip(IpAddr::from(b))),
            "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,5}){0,2}".prop_map(Host::Name),
        ]
    }

    proptest! {
        #[test]
        fn server_spec_round_trip(
            host in host_strategy(),
            port in proptest::option::of(any::<u16>()),
            nums in any::<[u32; 4]>(),
            fields in 0usize..=5,
        ) {
            // Write only the first `fields` fields after the host, as a user would.
            let port_text = port.map(|p| p.to_string()).unwrap_or_default();
            let mut text = match &host {
                Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
                h => h.to_string(),
            };
            let values: Vec<String> = nums.iter().map(ToString::to_string).collect();
            let written: Vec<&str> = std::iter::once(port_text.as_str())
                .chain(values.iter().map(String::as_str))
                .take(fields)
                .collect();
            for w in &written {
                text.push(':');
                text.push_str(w);
            }
            let parts = split_server_spec(&text).unwrap();
            let n = fields.saturating_sub(1);
            let kept = |i: usize| if i < n { nums[i] } else { 0 };
            let expected = ServerSpecParts {
                host: host.clone(),
                port: if fields >= 1 { port.map(Port::Number) } else { None },
                max: kept(0), hard: kept(1), weight: kept(2), prio: kept(3),
            };
            prop_assert_eq!(&parts, &expected);
            // Display writes every field; it must parse back to the same parts.
            prop_assert_eq!(split_server_spec(&parts.to_string()).unwrap(), expected.clone());
            if let Host::Ip(ip) = host {
                let spec = parse_server(&text, 7).unwrap();
                let want_port = expected.port.map_or(7, |p| match p { Port::Number(n) => n, Port::Service(_) => 0 });
                prop_assert_eq!(spec.addr, SocketAddr::new(ip, want_port));
                prop_assert_eq!((spec.max, spec.hard, spec.weight, spec.prio), (kept(0), kept(1), kept(2), kept(3)));
            }
        }

        #[test]
        fn listen_round_trip(ip in any::<IpAddr>(), port in any::<u16>(), bracket in any::<bool>()) {
            let text = match ip {
                IpAddr::V6(v6) if bracket => format!("[{v6}]:{port}"),
                _ => format!("{ip}:{port}"),
            };
            prop_assert_eq!(parse_listen(&text).unwrap(), ListenAddr::Inet(SocketAddr::new(ip, port)));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}", t in "[\\[\\]:0-9a-f./x]{0,24}") {
            let _ = split_server_spec(&s);
            let _ = split_listen(&s);
            let _ = split_port(&s);
            let _ = split_server_spec(&t);
            let _ = split_listen(&t);
        }
    }
}
