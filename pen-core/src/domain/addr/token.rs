//! Host and port tokens: checks one token's text and says what it is (an IP literal or a host
//! name; a port number or a service name) without resolving anything.

use std::net::IpAddr;

use super::{invalid, Host, Port, EXPECT_HOST, EXPECT_PORT, EXPECT_V4};
use crate::error::AddrError;

/// Whether `s` is a nonempty string of ASCII digits (what `u16::from_str` would accept minus `+`).
pub(super) fn all_digits(s: &str) -> bool {
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
