//! Server specs (`host[:port[:max[:hard[:weight[:prio]]]]]`) split into their fields, without
//! resolving anything.

use std::net::{IpAddr, Ipv6Addr};

use super::token::{all_digits, split_host, split_port};
use super::{
    field, in_spec, invalid, Host, ServerSpecParts, EXPECT_SERVER, EXPECT_TOO_MANY, EXPECT_V6,
};
use crate::domain::limits;
use crate::error::AddrError;

/// Names of the numeric fields after the port, in order.
const FIELD_NAMES: [&str; 4] = [
    "a number (max connections)",
    "a number (hard limit)",
    "a number (weight)",
    "a number (prio)",
];

/// The largest value of each numeric field after the port, and the error naming it
/// (`crate::domain::limits`: the same maxima as `server N max|hard|weight|prio`).
const FIELD_MAXIMA: [(u32, &str); 4] = [
    (limits::CONNECTIONS_MAX, limits::EXPECTED_CONNECTIONS),
    (limits::CONNECTIONS_MAX, limits::EXPECTED_CONNECTIONS),
    (limits::WEIGHT_MAX, limits::EXPECTED_WEIGHT),
    (limits::WEIGHT_MAX, limits::EXPECTED_PRIO),
];

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
    for ((slot, expected), (max, over)) in slots.into_iter().zip(FIELD_NAMES).zip(FIELD_MAXIMA) {
        match fields.next() {
            None => break,
            Some("") => {}
            Some(t) if all_digits(t) => {
                *slot = t
                    .parse()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| field(t, s, over))?
            }
            Some(t) => return Err(field(t, s, expected)),
        }
    }
    if let Some(extra) = fields.next() {
        return Err(field(extra, s, EXPECT_TOO_MANY));
    }
    Ok(parts)
}
