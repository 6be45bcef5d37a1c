//! The argument parsers: plain decimal numbers up to their documented maxima, ACL list
//! numbers, IP addresses and host names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{Words, ACL_LIST};
use crate::control::limits::{
    CONNECTIONS_MAX, EXPECTED_CONNECTIONS, EXPECTED_SECONDS, SECONDS_MAX,
};
use crate::error::ParseError;
pub(super) fn is_decimal(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// A plain decimal number; a value that does not fit `T` is [`ParseError::OutOfRange`].
pub(super) fn num<T: FromStr>(token: &str, expected: &'static str) -> Result<T, ParseError> {
    if !is_decimal(token) {
        // `str::parse` would accept a leading '+'; we take digits only.
        return Err(ParseError::BadArgument {
            token: token.to_string(),
            expected,
        });
    }
    // Only digits remain, so the one way parsing can fail is overflow.
    token.parse().map_err(|_| ParseError::OutOfRange {
        token: token.to_string(),
        expected,
    })
}

/// A plain decimal number no larger than `max` (see [`limits`](crate::control::limits)); a
/// larger one, or one that does not fit `T`, is [`ParseError::OutOfRange`] with `expected`
/// naming the maximum; a token that is not a number is [`ParseError::BadArgument`] with
/// `expected` up to " up to".
pub(super) fn num_max<T: FromStr + PartialOrd>(
    token: &str,
    max: T,
    expected: &'static str,
) -> Result<T, ParseError> {
    // Not a number at all: the short form ("a number of seconds"), as before the maxima.
    let short = expected.split(" up to").next().unwrap_or(expected);
    let n: T = num(token, short).map_err(|e| match e {
        // Too large for `T`: name the maximum too.
        ParseError::OutOfRange { token, .. } => ParseError::OutOfRange { token, expected },
        other => other,
    })?;
    if n > max {
        return Err(ParseError::OutOfRange {
            token: token.to_string(),
            expected,
        });
    }
    Ok(n)
}

/// A number of seconds, up to [`SECONDS_MAX`].
pub(super) fn secs(token: &str) -> Result<u64, ParseError> {
    num_max(token, SECONDS_MAX, EXPECTED_SECONDS)
}

/// A number of connections, up to [`CONNECTIONS_MAX`].
pub(super) fn conns(token: &str) -> Result<u32, ParseError> {
    num_max(token, CONNECTIONS_MAX, EXPECTED_CONNECTIONS)
}

/// An optional trailing number up to `max` (absent = query).
pub(super) fn opt_max<T: FromStr + PartialOrd>(
    w: &mut Words<'_>,
    max: T,
    expected: &'static str,
) -> Result<Option<T>, ParseError> {
    w.next().map(|t| num_max(t, max, expected)).transpose()
}

/// An optional number of seconds (absent = query).
pub(super) fn opt_secs(w: &mut Words<'_>) -> Result<Option<u64>, ParseError> {
    w.next().map(secs).transpose()
}

/// An optional number of connections (absent = query).
pub(super) fn opt_conns(w: &mut Words<'_>) -> Result<Option<usize>, ParseError> {
    // Widening: a u32 always fits a usize on the platforms pen builds for.
    let max = CONNECTIONS_MAX as usize;
    w.next()
        .map(|t| num_max(t, max, EXPECTED_CONNECTIONS))
        .transpose()
}

pub(super) fn acl_list(token: &str) -> Result<u8, ParseError> {
    match num::<u8>(token, ACL_LIST) {
        Ok(n) if usize::from(n) < crate::domain::acl::ACL_LISTS => Ok(n),
        // Too large, overflowing or not a number: one message for all.
        _ => Err(ParseError::BadArgument {
            token: token.to_string(),
            expected: ACL_LIST,
        }),
    }
}

/// An ACL list number or -1 for none (`tarpit_acl`, `trusted_proxy_acl`).
pub(super) fn tarpit_list(token: &str) -> Result<i8, ParseError> {
    const EXPECTED: &str = "an ACL list number 0-9, or -1 for none";
    if token == "-1" {
        return Ok(-1);
    }
    acl_list(token)
        .ok()
        .and_then(|n| i8::try_from(n).ok())
        .ok_or_else(|| ParseError::BadArgument {
            token: token.to_string(),
            expected: EXPECTED,
        })
}

pub(super) fn ipv4(token: &str, expected: &'static str) -> Result<Ipv4Addr, ParseError> {
    Ipv4Addr::from_str(token).map_err(|_| ParseError::BadArgument {
        token: token.to_string(),
        expected,
    })
}

/// An IPv4 or IPv6 address; `[v6]` brackets are accepted.
pub(super) fn ip(token: &str) -> Result<IpAddr, ParseError> {
    let inner = token.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let parsed = match inner {
        Some(v6) => Ipv6Addr::from_str(v6).map(IpAddr::V6),
        None => IpAddr::from_str(token),
    };
    parsed.map_err(|_| ParseError::BadArgument {
        token: token.to_string(),
        expected: "an IPv4 or IPv6 address",
    })
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Longest host name DNS allows, plus room for an IPv6 scope suffix.
const MAX_HOST_LEN: usize = 255;

/// A syntactically plausible host: a name of letters, digits, `.-_`, an IPv4 address, or an IPv6
/// address (bare or in brackets, optionally with a `%scope`). Brackets are stripped. Resolution
/// happens when the command is applied.
pub(super) fn host(token: &str) -> Result<String, ParseError> {
    let bad = || ParseError::BadArgument {
        token: token.to_string(),
        expected: "a host name or IP address ([v6] allowed)",
    };
    let bracketed = token.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let h = bracketed.unwrap_or(token);
    if h.is_empty() || h.len() > MAX_HOST_LEN {
        return Err(bad());
    }
    if h.contains(':') {
        // IPv6 literal, perhaps with a zone id (`fe80::1%eth0`).
        let (addr, scope) = match h.split_once('%') {
            Some((a, s)) => (a, Some(s)),
            None => (h, None),
        };
        let scope_ok = match scope {
            None => true,
            Some(s) => !s.is_empty() && s.bytes().all(is_name_byte),
        };
        if Ipv6Addr::from_str(addr).is_err() || !scope_ok {
            return Err(bad());
        }
    } else {
        if bracketed.is_some() {
            // Brackets are only for IPv6 literals.
            return Err(bad());
        }
        if !h.bytes().all(is_name_byte) {
            return Err(bad());
        }
    }
    Ok(h.to_string())
}
