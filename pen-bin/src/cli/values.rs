//! Option values: decimal numbers within the documented maxima, non-empty names, and server
//! specs (whose missing port is the listen port's).

use pen_core::addr::{self, ListenAddr};
use pen_core::control::limits;

use super::CliError;

/// Parses an unsigned decimal number (digits only: no sign, no spaces).
pub(super) fn number<T: std::str::FromStr>(
    opt: &str,
    token: &str,
    expected: &'static str,
) -> Result<T, CliError> {
    let bad = || CliError::BadValue {
        opt: opt.to_string(),
        token: token.to_string(),
        expected,
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    token.parse().map_err(|_| bad())
}

/// The connection-count maximum as the `usize` fields hold it (a u32 always fits).
pub(super) const CONNS: usize = limits::CONNECTIONS_MAX as usize;

/// `n` (parsed from `token`) if it is at most `max` (see `pen_core::control::limits`: the same
/// maxima as penctl's), else an error whose `expected` names the maximum.
pub(super) fn at_most<T: PartialOrd>(
    opt: &str,
    n: T,
    token: &str,
    max: T,
    expected: &'static str,
) -> Result<T, CliError> {
    if n > max {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: token.to_string(),
            expected,
        });
    }
    Ok(n)
}

/// A number of seconds `n` (parsed from `token`), at most a year.
pub(super) fn secs(opt: &str, n: u64, token: &str) -> Result<u64, CliError> {
    at_most(opt, n, token, limits::SECONDS_MAX, limits::EXPECTED_SECONDS)
}

/// Like [`number`], but zero is refused too (a zero table or backlog would stall pen).
pub(super) fn positive<T: std::str::FromStr + PartialEq + Default>(
    opt: &str,
    token: &str,
    expected: &'static str,
) -> Result<T, CliError> {
    let n: T = number(opt, token, expected)?;
    if n == T::default() {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: token.to_string(),
            expected,
        });
    }
    Ok(n)
}

/// A file or directory name: anything but the empty string.
pub(super) fn non_empty<'a>(
    opt: &str,
    token: &'a str,
    expected: &'static str,
) -> Result<&'a str, CliError> {
    if token.is_empty() {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: String::new(),
            expected,
        });
    }
    Ok(token)
}

pub(super) fn server(
    spec: &str,
    listen: &ListenAddr,
    context: &str,
) -> Result<pen_core::addr::ServerSpec, CliError> {
    let addr_err = |source| CliError::Addr {
        context: context.to_string(),
        source,
    };
    let default_port = match listen {
        ListenAddr::Inet(a) => a.port(),
        ListenAddr::Unix(_) => {
            if addr::split_server_spec(spec)
                .map_err(addr_err)?
                .port
                .is_none()
            {
                return Err(CliError::NoPort(spec.to_string()));
            }
            0
        }
    };
    addr::parse_server(spec, default_port).map_err(addr_err)
}
