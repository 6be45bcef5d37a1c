//! The canonical text of a [`Command`]: the line C pen's `write` would produce, which
//! [`parse_line`](super::parse_line) reads back to the same command.

use std::fmt;

use super::command::{
    AclAction, AclEntry, AclPattern, Command, EventMechanism, Fastclose, ModeFlag, Obsolete,
    ServerField, SslCommand, Switch,
};

impl fmt::Display for AclAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclAction::Permit => "permit",
            AclAction::Deny => "deny",
        })
    }
}

impl fmt::Display for AclEntry {
    /// `permit 10.0.0.0 255.0.0.0` or `deny 2001:db8::/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            AclPattern::V4 { addr, mask } => write!(f, "{} {addr} {mask}", self.action),
            AclPattern::V6 { addr, len } => write!(f, "{} {addr}/{len}", self.action),
        }
    }
}

impl fmt::Display for Fastclose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fastclose::Off => "off",
            Fastclose::Up => "up",
            Fastclose::Down => "down",
            Fastclose::Both => "both",
        })
    }
}

impl fmt::Display for ModeFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModeFlag::Hash => "hash",
            ModeFlag::RoundRobin => "roundrobin",
            ModeFlag::Stubborn => "stubborn",
            ModeFlag::Weight => "weight",
            ModeFlag::Prio => "prio",
            // ---- policies (issue 14) ----
            ModeFlag::Maglev => "maglev",
            ModeFlag::LeastConn => "leastconn",
            ModeFlag::P2c => "p2c",
            ModeFlag::Random => "random",
        })
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Switch::AbortOnError => "abort_on_error",
            Switch::Ascii => "ascii",
            Switch::Dummy => "dummy",
            Switch::Http => "http",
            Switch::TcpNodelay => "tcp_nodelay",
            Switch::Transparent => "transparent",
            Switch::ConnectOnData => "connect_on_data",
        })
    }
}

impl fmt::Display for ServerField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerField::Acl(a) => write!(f, "acl {a}"),
            ServerField::Address(h) => write!(f, "address {h}"),
            ServerField::Port(p) => write!(f, "port {p}"),
            ServerField::Max(m) => write!(f, "max {m}"),
            ServerField::Hard(h) => write!(f, "hard {h}"),
            ServerField::Blacklist(t) => write!(f, "blacklist {t}"),
            ServerField::Weight(w) => write!(f, "weight {w}"),
            ServerField::Prio(p) => write!(f, "prio {p}"),
            ServerField::State(s) => f.write_str(s.word()),
            ServerField::Check(Some(spec)) => write!(f, "check {spec}"),
            ServerField::Check(None) => f.write_str("check off"),
            // ---- PROXY protocol (issue 14) ----
            ServerField::Proxy(v) => write!(f, "proxy {}", v.word()),
            ServerField::All(n) => write!(f, "all {n}"),
        }
    }
}

impl fmt::Display for SslCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslCommand::Ciphers => "ssl_ciphers",
            SslCommand::Option => "ssl_option",
            SslCommand::SniPath => "ssl_sni_path",
            SslCommand::OcspResponse => "ssl_ocsp_response",
            SslCommand::ClientRenegotiationInterval => "ssl_client_renegotiation_interval",
            SslCommand::Reload => "ssl_reload",
        })
    }
}

impl fmt::Display for EventMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventMechanism::Epoll => "epoll",
            EventMechanism::Kqueue => "kqueue",
            EventMechanism::Poll => "poll",
            EventMechanism::Select => "select",
        })
    }
}

/// `name` alone, or `name value` when there is a value.
fn opt<T: fmt::Display>(f: &mut fmt::Formatter<'_>, name: &str, v: Option<&T>) -> fmt::Result {
    match v {
        Some(v) => write!(f, "{name} {v}"),
        None => f.write_str(name),
    }
}

/// `NAME`, `NAME off` or `NAME KIND ...`.
fn target_check(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    c: Option<&Option<crate::domain::check::ServerCheck>>,
) -> fmt::Result {
    match c {
        None => f.write_str(name),
        Some(None) => write!(f, "{name} off"),
        Some(Some(c)) => write!(f, "{name} {c}"),
    }
}

impl fmt::Display for Command {
    /// The canonical line, without a newline; `parse_line` turns it back into `self` for every
    /// command `parse_line` can produce.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Acl { list, entry } => write!(f, "acl {list} {entry}"),
            Command::NoAcl(n) => write!(f, "no acl {n}"),
            Command::Switch(s, true) => write!(f, "{s}"),
            Command::Switch(s, false) => write!(f, "no {s}"),
            Command::Mode(m, true) => write!(f, "{m}"),
            Command::Mode(m, false) => write!(f, "no {m}"),
            Command::Blacklist(t) => opt(f, "blacklist", t.as_ref()),
            Command::ClientAcl(n) => opt(f, "client_acl", n.as_ref()),
            Command::ControlAcl(n) => opt(f, "control_acl", n.as_ref()),
            Command::ClientsMax(n) => opt(f, "clients_max", n.as_ref()),
            Command::Close(n) => write!(f, "close {n}"),
            Command::Connection(n) => write!(f, "connection {n}"),
            Command::ConnMax(n) => opt(f, "conn_max", n.as_ref()),
            Command::Control => f.write_str("control"),
            Command::Debug(n) => opt(f, "debug", n.as_ref()),
            Command::DsrIf(i) => opt(f, "dsr_if", i.as_ref()),
            Command::ConnPerClient(n) => opt(f, "conn_per_client", n.as_ref()),
            Command::HandshakeTimeout(n) => opt(f, "handshake_timeout", n.as_ref()),
            Command::MetricsAcl(n) => opt(f, "metrics_acl", n.as_ref()),
            Command::RequestTimeout(n) => opt(f, "request_timeout", n.as_ref()),
            Command::TrustedProxyAcl(n) => opt(f, "trusted_proxy_acl", n.as_ref()),
            Command::EventMechanism(m) => write!(f, "{m}"),
            Command::Exit => f.write_str("exit"),
            Command::IdleTimeout(n) => opt(f, "idle_timeout", n.as_ref()),
            Command::Idlers(n) => opt(f, "idlers", n.as_ref()),
            Command::Include(file) => write!(f, "include {file}"),
            Command::Listen(a) => opt(f, "listen", a.as_ref()),
            Command::Log(file) => opt(f, "log", file.as_ref()),
            Command::NoLog => f.write_str("no log"),
            Command::NoObsolete(Obsolete::Block) => f.write_str("no block"),
            Command::NoObsolete(Obsolete::DelayedForward) => f.write_str("no delayed_forward"),
            Command::ShowMode => f.write_str("mode"),
            Command::PendingMax(n) => opt(f, "pending_max", n.as_ref()),
            Command::Pid => f.write_str("pid"),
            Command::ReloadReset => f.write_str("reload_reset"),
            Command::Recent(s) => opt(f, "recent", s.as_ref()),
            Command::Server { id, fields } => {
                write!(f, "server {id}")?;
                fields.iter().try_for_each(|field| write!(f, " {field}"))
            }
            Command::Servers => f.write_str("servers"),
            Command::Socket(n) => write!(f, "socket {n}"),
            Command::Source(ip) => write!(f, "source {ip}"),
            Command::Status => f.write_str("status"),
            Command::Metrics => f.write_str("metrics"),
            Command::TarpitAcl(n) => opt(f, "tarpit_acl", n.as_ref()),
            Command::TcpFastclose(fc) => opt(f, "tcp_fastclose", fc.as_ref()),
            Command::Timeout(n) => opt(f, "timeout", n.as_ref()),
            Command::Tracking(n) => opt(f, "tracking", n.as_ref()),
            Command::WebStats(file) => opt(f, "web_stats", file.as_ref()),
            Command::NoWebStats => f.write_str("no web_stats"),
            Command::Write(file) => opt(f, "write", file.as_ref()),
            Command::Ssl(which, args) => {
                write!(f, "{which}")?;
                args.iter().try_for_each(|a| write!(f, " {a}"))
            }
            // ---- server states (issue 13) ----
            Command::SlowStart(s) => opt(f, "slow_start", s.as_ref()),
            Command::PanicThreshold(None) => f.write_str("panic_threshold"),
            Command::PanicThreshold(Some((p, m))) => {
                write!(f, "panic_threshold {p} {}", m.word())
            }
            Command::OutlierFailures(n) => opt(f, "outlier_failures", n.as_ref()),
            Command::OutlierEjectionTime(s) => opt(f, "outlier_ejection_time", s.as_ref()),
            Command::OutlierMaxPercent(p) => opt(f, "outlier_max_percent", p.as_ref()),
            Command::CheckInterval(n) => opt(f, "check_interval", n.as_ref()),
            Command::CheckTimeout(n) => opt(f, "check_timeout", n.as_ref()),
            Command::CheckRise(n) => opt(f, "check_rise", n.as_ref()),
            Command::CheckFall(n) => opt(f, "check_fall", n.as_ref()),
            Command::ShutdownTimeout(n) => opt(f, "shutdown_timeout", n.as_ref()),
            Command::Shutdown(n) => opt(f, "shutdown", n.as_ref()),
            Command::Upgrade => f.write_str("upgrade"),
            // ---- checks on the emergency and abuse servers (issue 13) ----
            Command::EmergencyCheck(c) => target_check(f, "emergency_check", c.as_ref()),
            Command::AbuseCheck(c) => target_check(f, "abuse_check", c.as_ref()),
            // ---- PROXY protocol (issue 14) ----
            Command::AcceptProxy(n) => opt(f, "accept_proxy", n.as_ref()),
            Command::NoAcceptProxy => f.write_str("no accept_proxy"),
            // ---- DNS-driven servers (issue 14) ----
            Command::DnsInterval(n) => opt(f, "dns_interval", n.as_ref()),
            Command::DnsServer(a) => opt(f, "dns_server", a.as_ref()),
            Command::NoDnsServer => f.write_str("no dns_server"),
            Command::Dns => f.write_str("dns"),
            // ---- policies (issue 14) ----
            Command::MaglevTable(m) => opt(f, "maglev_table", m.as_ref()),
            Command::Lookup(ip, None) => write!(f, "lookup {ip}"),
            Command::Lookup(ip, Some(port)) => {
                write!(f, "lookup {}", std::net::SocketAddr::new(*ip, *port))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use proptest::strategy::Union;

    use super::*;
    use crate::control::limits::{
        CLIENTS_MAX, CONNECTIONS_MAX, DEBUG_MAX, SECONDS_MAX, WEIGHT_MAX,
    };
    use crate::control::parse_line;

    #[test]
    fn cpen_write_lines_round_trip_textually() {
        // Lines from C pen's `write` output (/tmp/ref/cpen.cfg).
        let lines = [
            "no acl 0",
            "acl 1 permit 10.0.0.0 255.0.0.0",
            "no ascii",
            "blacklist 20",
            "client_acl 0",
            "control_acl 0",
            "debug 0",
            "no hash",
            "no http",
            "no log",
            "no roundrobin",
            "server 0 acl 0 address 127.0.0.1 port 18081 max 0 hard 0 weight 0 prio 0",
            "server 1 acl 0 address 127.0.0.1 port 18082 max 10 hard 20 weight 0 prio 0",
            "no stubborn",
            "tcp_fastclose both",
            "tcp_nodelay",
            "timeout 5",
            "tracking 10",
            "no web_stats",
            "weight",
            "prio",
        ];
        for line in lines {
            assert_eq!(
                parse_line(line).map(|c| c.to_string()),
                Ok(line.to_string())
            );
        }
    }

    #[test]
    fn canonical_spellings() {
        let show = |l: &str| parse_line(l).map(|c| c.to_string());
        assert_eq!(show("acl 3 deny ::1"), Ok("acl 3 deny ::1/128".into()));
        assert_eq!(
            show("acl 3 permit 1.2.3.4"),
            Ok("acl 3 permit 1.2.3.4 255.255.255.255".into())
        );
        assert_eq!(show("tracking 007"), Ok("tracking 7".into()));
        assert_eq!(
            show("server 2 address [::1]"),
            Ok("server 2 address ::1".into())
        );
        assert_eq!(show("source [::1]"), Ok("source ::1".into()));
        assert_eq!(
            show(" ssl_ciphers  A  B \r\n"),
            Ok("ssl_ciphers A B".into())
        );
        assert_eq!(show("tcp_fastclose"), Ok("tcp_fastclose".into()));
    }

    /// A word without ASCII whitespace (file names, listen addresses, raw TLS arguments).
    fn word() -> impl Strategy<Value = String> {
        // Not starting with `#`: that would begin a comment.
        "[^#\\s]\\S{0,15}"
    }

    fn v4() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    fn v6() -> impl Strategy<Value = Ipv6Addr> {
        prop_oneof![
            any::<u128>().prop_map(Ipv6Addr::from),
            // Mapped and short forms print specially; make sure they come up.
            v4().prop_map(|a| a.to_ipv6_mapped()),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ipv6Addr::new(a, 0, 0, 0, 0, 0, 0, b)),
        ]
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._-]{1,40}",
            v4().prop_map(|a| a.to_string()),
            v6().prop_map(|a| a.to_string()),
            (v6(), "[a-z0-9]{1,6}").prop_map(|(a, s)| format!("{a}%{s}")),
        ]
    }

    fn acl_list() -> impl Strategy<Value = u8> {
        0u8..10
    }

    fn acl_entry() -> impl Strategy<Value = AclEntry> {
        let action = prop_oneof![Just(AclAction::Permit), Just(AclAction::Deny)];
        let pattern = prop_oneof![
            (v4(), v4()).prop_map(|(addr, mask)| AclPattern::V4 { addr, mask }),
            (v6(), 0u8..=128).prop_map(|(addr, len)| AclPattern::V6 { addr, len }),
        ];
        (action, pattern).prop_map(|(action, pattern)| AclEntry { action, pattern })
    }

    /// An optional number of seconds within [`SECONDS_MAX`].
    fn secs() -> impl Strategy<Value = Option<u64>> {
        proptest::option::of(0..=SECONDS_MAX)
    }

    /// An optional connection count within [`CONNECTIONS_MAX`].
    fn conns() -> impl Strategy<Value = Option<usize>> {
        proptest::option::of(0..=CONNECTIONS_MAX as usize)
    }

    fn server_field() -> impl Strategy<Value = ServerField> {
        prop_oneof![
            acl_list().prop_map(ServerField::Acl),
            host().prop_map(ServerField::Address),
            any::<u16>().prop_map(ServerField::Port),
            (0..=CONNECTIONS_MAX).prop_map(ServerField::Max),
            (0..=CONNECTIONS_MAX).prop_map(ServerField::Hard),
            (0..=SECONDS_MAX).prop_map(ServerField::Blacklist),
            (0..=WEIGHT_MAX).prop_map(ServerField::Weight),
            (0..=WEIGHT_MAX).prop_map(ServerField::Prio),
            prop_oneof![
                Just(crate::domain::server_health::AdminState::Ready),
                Just(crate::domain::server_health::AdminState::Drain),
                Just(crate::domain::server_health::AdminState::Maint),
            ]
            .prop_map(ServerField::State),
            // ---- PROXY protocol (issue 14) ----
            prop_oneof![
                Just(crate::domain::proxy_header::ProxyVersion::Off),
                Just(crate::domain::proxy_header::ProxyVersion::V1),
                Just(crate::domain::proxy_header::ProxyVersion::V2),
            ]
            .prop_map(ServerField::Proxy),
            (0..=crate::domain::dns::ALL_MAX).prop_map(ServerField::All),
        ]
    }

    /// A server's check: a specification of every kind with timing overrides (some, all or
    /// none of them).
    fn server_check() -> impl Strategy<Value = crate::domain::check::ServerCheck> {
        use crate::domain::check::{CheckTiming, ServerCheck};
        let ms = proptest::option::of(10u64..=3_600_000);
        let n = proptest::option::of(1u32..=1000);
        (check_spec(), ms.clone(), ms, n.clone(), n).prop_map(
            |(spec, interval_ms, timeout_ms, rise, fall)| ServerCheck {
                spec,
                timing: CheckTiming {
                    interval_ms,
                    timeout_ms,
                    rise,
                    fall,
                },
            },
        )
    }

    /// Check specifications of every kind (the full property is in `domain/check_tests.rs`).
    fn check_spec() -> impl Strategy<Value = crate::domain::check::CheckSpec> {
        use crate::domain::check::{CheckSpec, Expect};
        let text = proptest::collection::vec(any::<u8>(), 1..20);
        prop_oneof![
            Just(CheckSpec::Connect),
            Just(CheckSpec::Tls),
            (1..=u16::MAX).prop_map(|port| CheckSpec::Agent { port }),
            (
                "/[a-z0-9/]{0,10}",
                200..=204u16,
                proptest::option::of("[a-z0-9.-]{1,12}(:[0-9]{1,5})?")
            )
                .prop_map(|(path, lo, host)| CheckSpec::Http {
                    path,
                    lo,
                    hi: 399,
                    host
                }),
            (text.clone(), text).prop_map(|(send, e)| CheckSpec::Send {
                send,
                expect: Expect::Text(e)
            }),
        ]
    }

    /// Every command `parse_line` can produce.
    fn command() -> impl Strategy<Value = Command> {
        let switch = prop_oneof![
            Just(Switch::AbortOnError),
            Just(Switch::Ascii),
            Just(Switch::Dummy),
            Just(Switch::Http),
            Just(Switch::TcpNodelay),
            Just(Switch::Transparent),
        ];
        let mode = prop_oneof![
            Just(ModeFlag::Hash),
            Just(ModeFlag::RoundRobin),
            Just(ModeFlag::Stubborn),
            Just(ModeFlag::Weight),
            Just(ModeFlag::Prio),
            // ---- policies (issue 14) ----
            Just(ModeFlag::Maglev),
            Just(ModeFlag::LeastConn),
            Just(ModeFlag::P2c),
            Just(ModeFlag::Random),
        ];
        let mech = prop_oneof![
            Just(EventMechanism::Epoll),
            Just(EventMechanism::Kqueue),
            Just(EventMechanism::Poll),
            Just(EventMechanism::Select),
        ];
        let fastclose = prop_oneof![
            Just(Fastclose::Off),
            Just(Fastclose::Up),
            Just(Fastclose::Down),
            Just(Fastclose::Both),
        ];
        let ssl = prop_oneof![
            Just(SslCommand::Ciphers),
            Just(SslCommand::Option),
            Just(SslCommand::SniPath),
            Just(SslCommand::OcspResponse),
            Just(SslCommand::ClientRenegotiationInterval),
            Just(SslCommand::Reload),
        ];
        let ip = prop_oneof![v4().prop_map(IpAddr::V4), v6().prop_map(IpAddr::V6)];
        Union::new(vec![
            (acl_list(), acl_entry())
                .prop_map(|(list, entry)| Command::Acl { list, entry })
                .boxed(),
            acl_list().prop_map(Command::NoAcl).boxed(),
            (switch, any::<bool>())
                .prop_map(|(s, on)| Command::Switch(s, on))
                .boxed(),
            (mode, any::<bool>())
                .prop_map(|(m, on)| Command::Mode(m, on))
                .boxed(),
            secs().prop_map(Command::Blacklist).boxed(),
            proptest::option::of(acl_list())
                .prop_map(Command::ClientAcl)
                .boxed(),
            proptest::option::of(acl_list())
                .prop_map(Command::ControlAcl)
                .boxed(),
            proptest::option::of(0..=CLIENTS_MAX)
                .prop_map(Command::ClientsMax)
                .boxed(),
            any::<u64>().prop_map(Command::Close).boxed(),
            any::<u64>().prop_map(Command::Connection).boxed(),
            conns().prop_map(Command::ConnMax).boxed(),
            Just(Command::Control).boxed(),
            proptest::option::of(0..=DEBUG_MAX)
                .prop_map(Command::Debug)
                .boxed(),
            proptest::option::of(word())
                .prop_map(Command::DsrIf)
                .boxed(),
            proptest::option::of(0..=CONNECTIONS_MAX)
                .prop_map(Command::Idlers)
                .boxed(),
            conns().prop_map(Command::ConnPerClient).boxed(),
            secs().prop_map(Command::HandshakeTimeout).boxed(),
            proptest::option::of(acl_list())
                .prop_map(Command::MetricsAcl)
                .boxed(),
            secs().prop_map(Command::RequestTimeout).boxed(),
            proptest::option::of(-1i8..10)
                .prop_map(Command::TrustedProxyAcl)
                .boxed(),
            Just(Command::NoObsolete(Obsolete::Block)).boxed(),
            Just(Command::NoObsolete(Obsolete::DelayedForward)).boxed(),
            proptest::option::of(-1i8..10)
                .prop_map(Command::TarpitAcl)
                .boxed(),
            mech.prop_map(Command::EventMechanism).boxed(),
            Just(Command::Exit).boxed(),
            secs().prop_map(Command::IdleTimeout).boxed(),
            word().prop_map(Command::Include).boxed(),
            proptest::option::of(word())
                .prop_map(Command::Listen)
                .boxed(),
            proptest::option::of(word()).prop_map(Command::Log).boxed(),
            Just(Command::NoLog).boxed(),
            Just(Command::ShowMode).boxed(),
            conns().prop_map(Command::PendingMax).boxed(),
            Just(Command::Pid).boxed(),
            Just(Command::ReloadReset).boxed(),
            secs().prop_map(Command::Recent).boxed(),
            (
                any::<usize>(),
                proptest::collection::vec(server_field(), 0..10),
            )
                .prop_map(|(id, fields)| Command::Server { id, fields })
                .boxed(),
            Just(Command::Servers).boxed(),
            any::<u64>().prop_map(Command::Socket).boxed(),
            ip.clone().prop_map(Command::Source).boxed(),
            Just(Command::Status).boxed(),
            Just(Command::Metrics).boxed(),
            proptest::option::of(fastclose)
                .prop_map(Command::TcpFastclose)
                .boxed(),
            secs().prop_map(Command::Timeout).boxed(),
            secs().prop_map(Command::Tracking).boxed(),
            proptest::option::of(word())
                .prop_map(Command::WebStats)
                .boxed(),
            Just(Command::NoWebStats).boxed(),
            proptest::option::of(word())
                .prop_map(Command::Write)
                .boxed(),
            (ssl, proptest::collection::vec(word(), 0..5))
                .prop_map(|(s, args)| Command::Ssl(s, args))
                .boxed(),
            // ---- server states (issue 13) ----
            secs().prop_map(Command::SlowStart).boxed(),
            proptest::option::of((
                0..=crate::domain::limits::PERCENT_MAX,
                prop_oneof![
                    Just(crate::domain::policy::PanicMode::Open),
                    Just(crate::domain::policy::PanicMode::Refuse)
                ],
            ))
            .prop_map(Command::PanicThreshold)
            .boxed(),
            proptest::option::of(0..=crate::domain::limits::OUTLIER_FAILURES_MAX)
                .prop_map(Command::OutlierFailures)
                .boxed(),
            secs().prop_map(Command::OutlierEjectionTime).boxed(),
            proptest::option::of(0..=crate::domain::limits::PERCENT_MAX)
                .prop_map(Command::OutlierMaxPercent)
                .boxed(),
            proptest::option::of(0..=crate::control::limits::CHECK_MS_MAX)
                .prop_map(Command::CheckInterval)
                .boxed(),
            proptest::option::of(0..=crate::control::limits::CHECK_MS_MAX)
                .prop_map(Command::CheckTimeout)
                .boxed(),
            proptest::option::of(0..=crate::control::limits::CHECK_COUNT_MAX)
                .prop_map(Command::CheckRise)
                .boxed(),
            proptest::option::of(0..=crate::control::limits::CHECK_COUNT_MAX)
                .prop_map(Command::CheckFall)
                .boxed(),
            (
                any::<usize>(),
                proptest::collection::vec(server_field(), 0..4),
                proptest::option::of(server_check()),
            )
                .prop_map(|(id, mut fields, check)| {
                    // `check` takes the rest of the line: always last.
                    fields.push(ServerField::Check(check));
                    Command::Server { id, fields }
                })
                .boxed(),
            secs().prop_map(Command::ShutdownTimeout).boxed(),
            secs().prop_map(Command::Shutdown).boxed(),
            Just(Command::Upgrade).boxed(),
            // ---- checks on the emergency and abuse servers (issue 13) ----
            proptest::option::of(proptest::option::of(server_check()))
                .prop_map(Command::EmergencyCheck)
                .boxed(),
            proptest::option::of(proptest::option::of(server_check()))
                .prop_map(Command::AbuseCheck)
                .boxed(),
            // ---- PROXY protocol (issue 14) ----
            proptest::option::of(acl_list())
                .prop_map(Command::AcceptProxy)
                .boxed(),
            Just(Command::NoAcceptProxy).boxed(),
            // ---- DNS-driven servers (issue 14) ----
            secs().prop_map(Command::DnsInterval).boxed(),
            proptest::option::of(
                (
                    prop_oneof![v4().prop_map(IpAddr::V4), v6().prop_map(IpAddr::V6)],
                    any::<u16>(),
                )
                    .prop_map(|(ip, p)| std::net::SocketAddr::new(ip, p)),
            )
            .prop_map(Command::DnsServer)
            .boxed(),
            Just(Command::NoDnsServer).boxed(),
            Just(Command::Dns).boxed(),
            // ---- policies (issue 14) ----
            proptest::option::of(
                (2..=crate::domain::limits::MAGLEV_TABLE_MAX)
                    .prop_filter("a prime", |&m| crate::domain::maglev::is_prime(m)),
            )
            .prop_map(Command::MaglevTable)
            .boxed(),
            (ip.clone(), proptest::option::of(any::<u16>()))
                .prop_map(|(ip, port)| Command::Lookup(ip, port))
                .boxed(),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn parse_of_display_is_identity(cmd in command()) {
            let line = cmd.to_string();
            prop_assert_eq!(parse_line(&line), Ok(cmd.clone()), "line {:?}", line);
            // Line endings and extra blanks change nothing.
            prop_assert_eq!(parse_line(&format!(" {}\r\n", line.replace(' ', " \t "))), Ok(cmd));
        }
    }
}
