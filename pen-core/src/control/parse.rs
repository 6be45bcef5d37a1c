//! Parsing one penctl line into a [`Command`] (pure; fuzzed).
//!
//! Words are separated by ASCII whitespace, so a trailing `\r\n` vanishes. A word starting with
//! `#` starts a comment that runs to the end of the line (`blacklist 5 # note`), as C pen, which
//! ignores the words after a command. Keywords are
//! case-sensitive, as in C pen. Numbers are plain decimal: no sign, no hex, and a value above its
//! documented maximum ([`super::limits`]) is an error rather than a silent wrap. Nothing here resolves names or touches
//! files: `address`, `listen` and file names are kept as text for the apply step.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::command::{
    AclAction, AclEntry, AclPattern, Command, EventMechanism, Fastclose, ModeFlag, Obsolete,
    ServerField, SslCommand, Switch,
};
use super::limits::{CHECK_COUNT_MAX, CHECK_MS_MAX, EXPECTED_CHECK_COUNT, EXPECTED_CHECK_MS};
use super::limits::{
    CLIENTS_MAX, CONNECTIONS_MAX, DEBUG_MAX, EXPECTED_CLIENTS, EXPECTED_CONNECTIONS,
    EXPECTED_DEBUG, EXPECTED_PRIO, EXPECTED_SECONDS, EXPECTED_WEIGHT, WEIGHT_MAX,
};
use super::limits::{EXPECTED_FAILURES, EXPECTED_PERCENT, OUTLIER_FAILURES_MAX, PERCENT_MAX};
use crate::domain::policy::PanicMode;
use crate::domain::proxy_header::ProxyVersion;
use crate::domain::server_health::AdminState;
use crate::error::ParseError;

mod values;
use values::{
    acl_list, conns, host, ip, ipv4, is_decimal, num, num_max, opt_conns, opt_max, opt_secs, secs,
    tarpit_list,
};

/// Parses one control line (words separated by whitespace; a trailing newline is ignored).
///
/// # Errors
/// [`ParseError`] naming the bad token and what was expected; [`ParseError::Empty`] for a blank
/// line.
///
/// # Examples
/// ```
/// use pen_core::control::{parse_line, Command};
/// assert_eq!(parse_line("blacklist 20\r\n"), Ok(Command::Blacklist(Some(20))));
/// assert!(parse_line("blacklist soon").is_err());
/// ```
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    let mut words = Words::new(line);
    let name = words.next().ok_or(ParseError::Empty)?;
    let cmd = parse_command(name, &mut words)?;
    words.finish()?;
    Ok(cmd)
}

/// The words of a line, with the command name kept for "missing argument" messages.
struct Words<'a> {
    iter: std::str::SplitAsciiWhitespace<'a>,
    command: &'a str,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Self {
        Words {
            iter: line.split_ascii_whitespace(),
            command: "",
        }
    }

    /// The next word; none once a comment (a word starting with `#`) begins.
    fn next(&mut self) -> Option<&'a str> {
        match self.iter.next() {
            Some(w) if w.starts_with('#') => {
                // The rest of the line is the comment.
                self.iter = "".split_ascii_whitespace();
                None
            }
            other => other,
        }
    }

    /// The next word without taking it (none at a comment).
    fn peek(&self) -> Option<&'a str> {
        self.iter.clone().next().filter(|w| !w.starts_with('#'))
    }

    /// The next word, or an error saying the command needs `expected`.
    fn require(&mut self, expected: &'static str) -> Result<&'a str, ParseError> {
        self.next().ok_or_else(|| ParseError::MissingArgument {
            command: self.command.to_string(),
            expected,
        })
    }

    /// Fails if any word is left over.
    fn finish(&mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(extra) => Err(ParseError::TrailingArgument(extra.to_string())),
            None => Ok(()),
        }
    }
}

const ACL_LIST: &str = "an ACL list number 0-9";

fn parse_command<'a>(name: &'a str, w: &mut Words<'a>) -> Result<Command, ParseError> {
    w.command = name;
    let cmd = match name {
        "acl" => parse_acl(w)?,
        "no" => parse_no(w)?,
        "abort_on_error" => Command::Switch(Switch::AbortOnError, true),
        "ascii" => Command::Switch(Switch::Ascii, true),
        "dummy" => Command::Switch(Switch::Dummy, true),
        "http" => Command::Switch(Switch::Http, true),
        "tcp_nodelay" => Command::Switch(Switch::TcpNodelay, true),
        "transparent" => Command::Switch(Switch::Transparent, true),
        "connect_on_data" => Command::Switch(Switch::ConnectOnData, true),
        "conn_per_client" => Command::ConnPerClient(opt_conns(w)?),
        "handshake_timeout" => Command::HandshakeTimeout(opt_secs(w)?),
        "metrics_acl" => Command::MetricsAcl(w.next().map(acl_list).transpose()?),
        "request_timeout" => Command::RequestTimeout(opt_secs(w)?),
        "trusted_proxy_acl" => Command::TrustedProxyAcl(w.next().map(tarpit_list).transpose()?),
        "hash" => Command::Mode(ModeFlag::Hash, true),
        "roundrobin" => Command::Mode(ModeFlag::RoundRobin, true),
        "stubborn" => Command::Mode(ModeFlag::Stubborn, true),
        "weight" => Command::Mode(ModeFlag::Weight, true),
        "prio" => Command::Mode(ModeFlag::Prio, true),
        "blacklist" => Command::Blacklist(opt_secs(w)?),
        "client_acl" => Command::ClientAcl(w.next().map(acl_list).transpose()?),
        "control_acl" => Command::ControlAcl(w.next().map(acl_list).transpose()?),
        "clients_max" => Command::ClientsMax(opt_max(w, CLIENTS_MAX, EXPECTED_CLIENTS)?),
        "close" => Command::Close(num(
            w.require("a connection number")?,
            "a connection number",
        )?),
        "connection" => Command::Connection(num(
            w.require("a connection number")?,
            "a connection number",
        )?),
        "conn_max" => Command::ConnMax(opt_conns(w)?),
        "control" => Command::Control,
        "debug" => Command::Debug(opt_max(w, DEBUG_MAX, EXPECTED_DEBUG)?),
        "dsr_if" => Command::DsrIf(w.next().map(str::to_string)),
        "epoll" => Command::EventMechanism(EventMechanism::Epoll),
        "kqueue" => Command::EventMechanism(EventMechanism::Kqueue),
        "poll" => Command::EventMechanism(EventMechanism::Poll),
        "select" => Command::EventMechanism(EventMechanism::Select),
        "exit" => Command::Exit,
        "idle_timeout" => Command::IdleTimeout(opt_secs(w)?),
        "idlers" => Command::Idlers(opt_max(w, CONNECTIONS_MAX, EXPECTED_CONNECTIONS)?),
        "include" => Command::Include(w.require("a file name")?.to_string()),
        "listen" => Command::Listen(w.next().map(str::to_string)),
        "log" => Command::Log(w.next().map(str::to_string)),
        "mode" => Command::ShowMode,
        "pending_max" => Command::PendingMax(opt_conns(w)?),
        "pid" => Command::Pid,
        "reload_reset" => Command::ReloadReset,
        "recent" => Command::Recent(opt_secs(w)?),
        "server" => parse_server(w)?,
        "servers" => Command::Servers,
        "socket" => Command::Socket(num(w.require("a socket number")?, "a socket number")?),
        "source" => Command::Source(ip(w.require("an IP address")?)?),
        "status" => Command::Status,
        "metrics" => Command::Metrics,
        "tarpit_acl" => Command::TarpitAcl(w.next().map(tarpit_list).transpose()?),
        "tcp_fastclose" => Command::TcpFastclose(w.next().map(fastclose).transpose()?),
        "timeout" => Command::Timeout(opt_secs(w)?),
        "tracking" => Command::Tracking(opt_secs(w)?),
        "web_stats" => Command::WebStats(w.next().map(str::to_string)),
        "write" => Command::Write(w.next().map(str::to_string)),
        "ssl_ciphers" => ssl(SslCommand::Ciphers, w),
        "ssl_option" => ssl(SslCommand::Option, w),
        "ssl_sni_path" => ssl(SslCommand::SniPath, w),
        "ssl_ocsp_response" => ssl(SslCommand::OcspResponse, w),
        "ssl_client_renegotiation_interval" => ssl(SslCommand::ClientRenegotiationInterval, w),
        "ssl_reload" => ssl(SslCommand::Reload, w),
        // ---- server states (issue 13) ----
        "slow_start" => Command::SlowStart(opt_secs(w)?),
        "panic_threshold" => Command::PanicThreshold(panic_threshold(w)?),
        "outlier_failures" => {
            Command::OutlierFailures(opt_max(w, OUTLIER_FAILURES_MAX, EXPECTED_FAILURES)?)
        }
        "outlier_ejection_time" => Command::OutlierEjectionTime(opt_secs(w)?),
        "outlier_max_percent" => {
            Command::OutlierMaxPercent(opt_max(w, PERCENT_MAX, EXPECTED_PERCENT)?)
        }
        "check_interval" => Command::CheckInterval(opt_max(w, CHECK_MS_MAX, EXPECTED_CHECK_MS)?),
        "check_timeout" => Command::CheckTimeout(opt_max(w, CHECK_MS_MAX, EXPECTED_CHECK_MS)?),
        "check_rise" => Command::CheckRise(opt_max(w, CHECK_COUNT_MAX, EXPECTED_CHECK_COUNT)?),
        "check_fall" => Command::CheckFall(opt_max(w, CHECK_COUNT_MAX, EXPECTED_CHECK_COUNT)?),
        "shutdown_timeout" => Command::ShutdownTimeout(opt_secs(w)?),
        "shutdown" => Command::Shutdown(opt_secs(w)?),
        "upgrade" => Command::Upgrade,
        // ---- checks on the emergency and abuse servers (issue 13) ----
        "emergency_check" => Command::EmergencyCheck(target_check(w)?),
        "abuse_check" => Command::AbuseCheck(target_check(w)?),
        // ---- PROXY protocol (issue 14) ----
        "accept_proxy" => Command::AcceptProxy(w.next().map(acl_list).transpose()?),
        // ---- DNS-driven servers (issue 14) ----
        "dns_interval" => Command::DnsInterval(opt_secs(w)?),
        "dns_server" => Command::DnsServer(w.next().map(dns_server).transpose()?),
        "dns" => Command::Dns,
        // ---- policies (issue 14) ----
        "maglev" => Command::Mode(ModeFlag::Maglev, true),
        "leastconn" => Command::Mode(ModeFlag::LeastConn, true),
        "p2c" => Command::Mode(ModeFlag::P2c, true),
        "random" => Command::Mode(ModeFlag::Random, true),
        "maglev_table" => Command::MaglevTable(w.next().map(maglev_table).transpose()?),
        "lookup" => {
            let (ip, port) = lookup_address(w.require("an address ADDR[:PORT]")?)?;
            Command::Lookup(ip, port)
        }
        other => return Err(ParseError::UnknownCommand(other.to_string())),
    };
    Ok(cmd)
}

/// `no X`: the negated switches and modes, and `no acl N`, `no log`, `no web_stats`.
fn parse_no(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let what = w.require("a command to turn off")?;
    let cmd = match what {
        "acl" => {
            w.command = "no acl";
            Command::NoAcl(acl_list(w.require(ACL_LIST)?)?)
        }
        "log" => Command::NoLog,
        "web_stats" => Command::NoWebStats,
        "block" => Command::NoObsolete(Obsolete::Block),
        "delayed_forward" => Command::NoObsolete(Obsolete::DelayedForward),
        "abort_on_error" => Command::Switch(Switch::AbortOnError, false),
        "ascii" => Command::Switch(Switch::Ascii, false),
        "dummy" => Command::Switch(Switch::Dummy, false),
        "http" => Command::Switch(Switch::Http, false),
        "tcp_nodelay" => Command::Switch(Switch::TcpNodelay, false),
        "transparent" => Command::Switch(Switch::Transparent, false),
        "connect_on_data" => Command::Switch(Switch::ConnectOnData, false),
        "hash" => Command::Mode(ModeFlag::Hash, false),
        "roundrobin" => Command::Mode(ModeFlag::RoundRobin, false),
        "stubborn" => Command::Mode(ModeFlag::Stubborn, false),
        "weight" => Command::Mode(ModeFlag::Weight, false),
        "prio" => Command::Mode(ModeFlag::Prio, false),
        // ---- PROXY protocol (issue 14) ----
        "accept_proxy" => Command::NoAcceptProxy,
        // ---- DNS-driven servers (issue 14) ----
        "dns_server" => Command::NoDnsServer,
        // ---- policies (issue 14) ----
        "maglev" => Command::Mode(ModeFlag::Maglev, false),
        "leastconn" => Command::Mode(ModeFlag::LeastConn, false),
        "p2c" => Command::Mode(ModeFlag::P2c, false),
        "random" => Command::Mode(ModeFlag::Random, false),
        other => {
            return Err(ParseError::BadArgument {
                token: other.to_string(),
                expected: "a command with a 'no' form (accept_proxy, acl, ascii, abort_on_error, \
                           block, connect_on_data, delayed_forward, dns_server, dummy, hash, http, \
                           leastconn, log, maglev, p2c, prio, random, roundrobin, stubborn, \
                           tcp_nodelay, transparent, web_stats, weight)",
            })
        }
    };
    Ok(cmd)
}

/// `acl N permit|deny IPV4 [MASK]`, `acl N permit|deny IPV6[/LEN]`, `acl N permit|deny country CC`.
fn parse_acl(w: &mut Words<'_>) -> Result<Command, ParseError> {
    let list = acl_list(w.require(ACL_LIST)?)?;
    let action = match w.require("'permit' or 'deny'")? {
        "permit" => AclAction::Permit,
        "deny" => AclAction::Deny,
        other => {
            return Err(ParseError::BadArgument {
                token: other.to_string(),
                expected: "'permit' or 'deny'",
            })
        }
    };
    let target = w.require("an IPv4 address [mask] or an IPv6 address[/len]")?;
    let pattern = if target == "country" {
        return Err(ParseError::CountryAcl(
            w.require("a country code")?.to_string(),
        ));
    } else if target.contains(':') {
        v6_pattern(target)?
    } else {
        let addr = ipv4(target, "an IPv4 address [mask] or an IPv6 address[/len]")?;
        let mask = match w.next() {
            Some(m) => ipv4(m, "a dotted netmask such as 255.255.255.0")?,
            None => Ipv4Addr::BROADCAST,
        };
        AclPattern::V4 { addr, mask }
    };
    Ok(Command::Acl {
        list,
        entry: AclEntry { action, pattern },
    })
}

/// `ADDR` or `ADDR/LEN` for an IPv6 ACL entry.
fn v6_pattern(token: &str) -> Result<AclPattern, ParseError> {
    const EXPECTED: &str = "an IPv6 address with an optional /LEN (0-128)";
    let bad = || ParseError::BadArgument {
        token: token.to_string(),
        expected: EXPECTED,
    };
    let (addr, len) = match token.split_once('/') {
        Some((a, l)) => {
            let len = if is_decimal(l) {
                l.parse::<u8>().ok()
            } else {
                None
            };
            match len {
                Some(len) if len <= 128 => (a, len),
                _ => return Err(bad()),
            }
        }
        None => (token, 128),
    };
    let addr = Ipv6Addr::from_str(addr).map_err(|_| bad())?;
    Ok(AclPattern::V6 { addr, len })
}

/// `server N [acl A] [address H] [port P] [max M] [hard H] [blacklist T] [weight W] [prio P]`.
fn parse_server(w: &mut Words<'_>) -> Result<Command, ParseError> {
    const FIELD: &str = "a server field: acl, address, port, max, hard, blacklist, weight, prio, \
                         drain, maint, ready, check, proxy or all";
    let id = num(w.require("a server number")?, "a server number")?;
    let mut fields = Vec::new();
    while let Some(key) = w.next() {
        let field = match key {
            "acl" => ServerField::Acl(acl_list(w.require(ACL_LIST)?)?),
            "address" => ServerField::Address(host(w.require("a host name or address")?)?),
            "port" => ServerField::Port(num(w.require("a port number")?, "a port number 0-65535")?),
            "max" => ServerField::Max(conns(w.require(EXPECTED_CONNECTIONS)?)?),
            "hard" => ServerField::Hard(conns(w.require(EXPECTED_CONNECTIONS)?)?),
            "blacklist" => ServerField::Blacklist(secs(w.require(EXPECTED_SECONDS)?)?),
            "weight" => ServerField::Weight(num_max(
                w.require(EXPECTED_WEIGHT)?,
                WEIGHT_MAX,
                EXPECTED_WEIGHT,
            )?),
            "prio" => ServerField::Prio(num_max(
                w.require(EXPECTED_PRIO)?,
                WEIGHT_MAX,
                EXPECTED_PRIO,
            )?),
            "drain" => ServerField::State(AdminState::Drain),
            "maint" => ServerField::State(AdminState::Maint),
            "ready" => ServerField::State(AdminState::Ready),
            "check" => ServerField::Check(check_field(w)?),
            // ---- PROXY protocol (issue 14) ----
            "proxy" => {
                const EXPECTED: &str = "v1, v2 or off";
                let word = w.require(EXPECTED)?;
                let version =
                    ProxyVersion::from_word(word).ok_or_else(|| ParseError::BadArgument {
                        token: word.to_string(),
                        expected: EXPECTED,
                    })?;
                ServerField::Proxy(version)
            }
            "all" => ServerField::All(all_slots(w)?),
            other => {
                return Err(ParseError::BadArgument {
                    token: other.to_string(),
                    expected: FIELD,
                })
            }
        };
        fields.push(field);
    }
    Ok(Command::Server { id, fields })
}

/// `panic_threshold [P [open|refuse]]` (the mode defaults to `open`).
fn panic_threshold(w: &mut Words<'_>) -> Result<Option<(u32, PanicMode)>, ParseError> {
    let Some(p) = w.next() else {
        return Ok(None);
    };
    let pct = num_max(p, PERCENT_MAX, EXPECTED_PERCENT)?;
    let mode = match w.next() {
        None | Some("open") => PanicMode::Open,
        Some("refuse") => PanicMode::Refuse,
        Some(other) => {
            return Err(ParseError::BadArgument {
                token: other.to_string(),
                expected: "open or refuse",
            })
        }
    };
    Ok(Some((pct, mode)))
}

/// `emergency_check` / `abuse_check`: nothing (show it), or `KIND ...` or `off` as `check`.
fn target_check(
    w: &mut Words<'_>,
) -> Result<Option<Option<crate::domain::check::ServerCheck>>, ParseError> {
    let rest: Vec<&str> = std::iter::from_fn(|| w.next()).collect();
    if rest.is_empty() {
        return Ok(None);
    }
    check_words(rest).map(Some)
}

/// `check KIND ...` or `check off`: the rest of the line (so `check` comes last).
fn check_field(w: &mut Words<'_>) -> Result<Option<crate::domain::check::ServerCheck>, ParseError> {
    check_words(std::iter::from_fn(|| w.next()).collect())
}

/// `KIND ... [timing]` or `off`, the whole of `rest`.
fn check_words(rest: Vec<&str>) -> Result<Option<crate::domain::check::ServerCheck>, ParseError> {
    use crate::domain::check::{parse_server_check, CheckSpecError};
    let mut it = rest.into_iter().peekable();
    let spec = if it.peek() == Some(&"off") {
        it.next();
        None
    } else {
        Some(parse_server_check(&mut it).map_err(|e| match e {
            CheckSpecError::Unexpected { token, expected } => {
                ParseError::BadArgument { token, expected }
            }
            CheckSpecError::Missing(expected) => ParseError::MissingArgument {
                command: "server N check".to_string(),
                expected,
            },
            CheckSpecError::Text { token, reason } => ParseError::BadArgument {
                token,
                expected: reason,
            },
        })?)
    };
    match it.next() {
        Some(extra) => Err(ParseError::TrailingArgument(extra.to_string())),
        None => Ok(spec),
    }
}

fn ssl(which: SslCommand, w: &mut Words<'_>) -> Command {
    let mut args = Vec::new();
    while let Some(a) = w.next() {
        args.push(a.to_string());
    }
    Command::Ssl(which, args)
}

fn fastclose(token: &str) -> Result<Fastclose, ParseError> {
    match token {
        "up" => Ok(Fastclose::Up),
        "down" => Ok(Fastclose::Down),
        "both" => Ok(Fastclose::Both),
        "off" => Ok(Fastclose::Off),
        other => Err(ParseError::BadArgument {
            token: other.to_string(),
            expected: "'up', 'down', 'both' or 'off'",
        }),
    }
}

// ---- DNS-driven servers (issue 14) ----

/// `dns_server IP:PORT` (`[v6]:port` for IPv6; the port may be left out for 53).
fn dns_server(token: &str) -> Result<std::net::SocketAddr, ParseError> {
    if let Ok(a) = std::net::SocketAddr::from_str(token) {
        return Ok(a);
    }
    ip(token)
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| ParseError::BadArgument {
            token: token.to_string(),
            expected: "a DNS server IP:PORT ([v6]:port for IPv6)",
        })
}

/// `all [MAX]`: the slots a name owns, [`crate::domain::dns::ALL_DEFAULT`] when no number
/// follows.
fn all_slots(w: &mut Words<'_>) -> Result<u16, ParseError> {
    use crate::domain::dns::{ALL_DEFAULT, ALL_MAX};
    const EXPECTED: &str = "a number of server slots up to 256";
    match w.peek() {
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
            let _ = w.next();
            num_max(t, ALL_MAX, EXPECTED)
        }
        _ => Ok(ALL_DEFAULT),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

// ---- policies (issue 14) ----

/// `maglev_table M`: a prime from 2 up to [`MAGLEV_TABLE_MAX`](crate::domain::limits::MAGLEV_TABLE_MAX).
fn maglev_table(token: &str) -> Result<u32, ParseError> {
    use crate::domain::limits::{EXPECTED_MAGLEV_TABLE, MAGLEV_TABLE_MAX};
    let m: u32 = num_max(token, MAGLEV_TABLE_MAX, EXPECTED_MAGLEV_TABLE)?;
    if !crate::domain::maglev::is_prime(m) {
        return Err(ParseError::BadArgument {
            token: token.to_string(),
            expected: EXPECTED_MAGLEV_TABLE,
        });
    }
    Ok(m)
}

/// `ADDR`, `IPV4:PORT` or `[IPV6]:PORT` for `lookup`.
fn lookup_address(token: &str) -> Result<(IpAddr, Option<u16>), ParseError> {
    if let Ok(ip) = IpAddr::from_str(token) {
        return Ok((ip, None));
    }
    match std::net::SocketAddr::from_str(token) {
        Ok(sa) => Ok((sa.ip(), Some(sa.port()))),
        Err(_) => Err(ParseError::BadArgument {
            token: token.to_string(),
            expected: "an address ADDR, IPV4:PORT or [IPV6]:PORT",
        }),
    }
}

#[cfg(test)]
#[path = "parse_limits_tests.rs"]
mod limits_tests;
