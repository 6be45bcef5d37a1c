//! Unit and property tests for [`super::parse_line`] (kept apart so `parse.rs` stays short).

use super::*;
use ParseError as E;

/// A token that is not a number of seconds.
const SECONDS: &str = "a number of seconds";
/// A number of seconds above the maximum (or above u64).
const SECONDS_RANGE: &str = crate::control::limits::EXPECTED_SECONDS;

fn ok(line: &str) -> Command {
    match parse_line(line) {
        Ok(c) => c,
        Err(e) => panic!("{line:?}: {e}"),
    }
}

fn err(line: &str) -> ParseError {
    match parse_line(line) {
        Ok(c) => panic!("{line:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

fn bad(token: &str, expected: &'static str) -> ParseError {
    E::BadArgument {
        token: token.into(),
        expected,
    }
}

fn v4(action: AclAction, addr: [u8; 4], mask: [u8; 4]) -> AclEntry {
    AclEntry {
        action,
        pattern: AclPattern::V4 {
            addr: addr.into(),
            mask: mask.into(),
        },
    }
}

#[test]
fn empty_and_blank_lines() {
    assert_eq!(err(""), E::Empty);
    assert_eq!(err("  \t \r\n"), E::Empty);
}

#[test]
fn unknown_and_trailing() {
    assert_eq!(err("bogus cmd"), E::UnknownCommand("bogus".into()));
    assert_eq!(err("Hash"), E::UnknownCommand("Hash".into()));
    assert_eq!(err("pid x"), E::TrailingArgument("x".into()));
    assert_eq!(err("hash now"), E::TrailingArgument("now".into()));
    assert_eq!(err("blacklist 1 2"), E::TrailingArgument("2".into()));
    assert_eq!(
        err("no hash x").to_string(),
        "unexpected 'x' after the command"
    );
    assert_eq!(err("bogus").to_string(), "unknown command 'bogus'");
}

#[test]
fn whitespace_and_line_endings() {
    assert_eq!(ok("  blacklist\t20 \r\n"), Command::Blacklist(Some(20)));
    assert_eq!(ok("servers\n"), Command::Servers);
    // Only ASCII whitespace separates words.
    assert_eq!(err("pid\u{a0}"), E::UnknownCommand("pid\u{a0}".into()));
}

#[test]
fn switches_and_modes() {
    let cases = [
        ("abort_on_error", Switch::AbortOnError),
        ("ascii", Switch::Ascii),
        ("dummy", Switch::Dummy),
        ("http", Switch::Http),
        ("tcp_nodelay", Switch::TcpNodelay),
        ("transparent", Switch::Transparent),
    ];
    for (word, s) in cases {
        assert_eq!(ok(word), Command::Switch(s, true));
        assert_eq!(ok(&format!("no {word}")), Command::Switch(s, false));
    }
    let modes = [
        ("hash", ModeFlag::Hash),
        ("roundrobin", ModeFlag::RoundRobin),
        ("stubborn", ModeFlag::Stubborn),
        ("weight", ModeFlag::Weight),
        ("prio", ModeFlag::Prio),
    ];
    for (word, m) in modes {
        assert_eq!(ok(word), Command::Mode(m, true));
        assert_eq!(ok(&format!("no {word}")), Command::Mode(m, false));
    }
}

#[test]
fn no_forms() {
    assert_eq!(ok("no log"), Command::NoLog);
    assert_eq!(ok("no web_stats"), Command::NoWebStats);
    assert_eq!(ok("no acl 9"), Command::NoAcl(9));
    assert!(matches!(err("no"), E::MissingArgument { ref command, .. } if command == "no"));
    assert!(matches!(err("no acl"), E::MissingArgument { ref command, .. } if command == "no acl"));
    assert_eq!(err("no acl 10"), bad("10", ACL_LIST));
    assert!(matches!(err("no bogus"), E::BadArgument { ref token, .. } if token == "bogus"));
    assert!(matches!(err("no pid"), E::BadArgument { ref token, .. } if token == "pid"));
    assert_eq!(err("no log file"), E::TrailingArgument("file".into()));
    // Obsolete commands: C pen accepts their `no` form, silently.
    assert_eq!(ok("no block"), Command::NoObsolete(Obsolete::Block));
    let delayed = Command::NoObsolete(Obsolete::DelayedForward);
    assert_eq!(ok("no delayed_forward"), delayed);
    assert_eq!(err("block"), E::UnknownCommand("block".into()));
    assert_eq!(
        err("delayed_forward"),
        E::UnknownCommand("delayed_forward".into())
    );
}

#[test]
fn dsr_idlers_tarpit() {
    assert_eq!(ok("dsr_if eth1"), Command::DsrIf(Some("eth1".into())));
    assert_eq!(ok("dsr_if"), Command::DsrIf(None));
    assert_eq!(ok("idlers 2"), Command::Idlers(Some(2)));
    assert_eq!(ok("idlers"), Command::Idlers(None));
    assert!(matches!(err("idlers x"), E::BadArgument { ref token, .. } if token == "x"));
    assert_eq!(ok("tarpit_acl"), Command::TarpitAcl(None));
    assert_eq!(ok("tarpit_acl 3"), Command::TarpitAcl(Some(3)));
    assert_eq!(ok("tarpit_acl -1"), Command::TarpitAcl(Some(-1)));
    for b in ["10", "-2", "x"] {
        let e = err(&format!("tarpit_acl {b}"));
        assert!(
            matches!(e, E::BadArgument { ref token, .. } if token == b),
            "{e:?}"
        );
    }
}

#[test]
fn a_word_starting_with_hash_starts_a_comment() {
    assert_eq!(ok("blacklist 5 # note"), Command::Blacklist(Some(5)));
    assert_eq!(ok("blacklist 5 #note 6"), Command::Blacklist(Some(5)));
    assert_eq!(ok("mode # c"), Command::ShowMode);
    assert_eq!(ok("blacklist # no value"), Command::Blacklist(None));
    assert_eq!(err("# only a comment"), E::Empty);
    // Only at the start of a word.
    assert_eq!(ok("log a#b"), Command::Log(Some("a#b".into())));
    assert!(matches!(err("include # x"), E::MissingArgument { .. }));
}

#[test]
fn optional_numbers() {
    assert_eq!(ok("blacklist"), Command::Blacklist(None));
    assert_eq!(ok("blacklist 30"), Command::Blacklist(Some(30)));
    assert_eq!(ok("clients_max 4096"), Command::ClientsMax(Some(4096)));
    assert_eq!(ok("clients_max"), Command::ClientsMax(None));
    assert_eq!(ok("conn_max 600"), Command::ConnMax(Some(600)));
    assert_eq!(ok("debug"), Command::Debug(None));
    assert_eq!(ok("debug 3"), Command::Debug(Some(3)));
    assert_eq!(ok("idle_timeout 5"), Command::IdleTimeout(Some(5)));
    assert_eq!(ok("pending_max 50"), Command::PendingMax(Some(50)));
    assert_eq!(ok("pending_max"), Command::PendingMax(None));
    assert_eq!(ok("recent"), Command::Recent(None));
    assert_eq!(ok("recent 60"), Command::Recent(Some(60)));
    assert_eq!(ok("timeout 5"), Command::Timeout(Some(5)));
    assert_eq!(ok("tracking 0"), Command::Tracking(Some(0)));
    assert_eq!(ok("tracking 007"), Command::Tracking(Some(7)));
}

#[test]
fn number_errors() {
    assert_eq!(
        err("blacklist abc").to_string(),
        "'abc': expected a number of seconds"
    );
    assert_eq!(err("timeout -1"), bad("-1", SECONDS));
    assert_eq!(err("timeout +1"), bad("+1", SECONDS));
    assert_eq!(err("timeout 0x10"), bad("0x10", SECONDS));
    assert_eq!(err("timeout 1.5"), bad("1.5", SECONDS));
    assert_eq!(err("timeout ١"), bad("١", SECONDS));
    assert_eq!(
        err("timeout 18446744073709551616"),
        E::OutOfRange {
            token: "18446744073709551616".into(),
            expected: SECONDS_RANGE
        }
    );
    // Within u64 but above the one-year maximum (it used to wrap the connect deadline).
    assert_eq!(
        err("timeout 18446744073709551615"),
        E::OutOfRange {
            token: "18446744073709551615".into(),
            expected: SECONDS_RANGE
        }
    );
    assert!(matches!(err("debug 4294967296"), E::OutOfRange { .. }));
    assert!(err("debug 4294967296").to_string().contains("out of range"));
}

#[test]
fn required_numbers() {
    assert_eq!(ok("close 3"), Command::Close(3));
    assert_eq!(ok("connection 0"), Command::Connection(0));
    assert_eq!(ok("socket 7"), Command::Socket(7));
    for c in ["close", "connection", "socket"] {
        assert!(matches!(err(c), E::MissingArgument { ref command, .. } if command == c));
    }
    assert_eq!(err("close x"), bad("x", "a connection number"));
    assert_eq!(err("socket -3"), bad("-3", "a socket number"));
}

#[test]
fn acl_selectors() {
    assert_eq!(ok("client_acl"), Command::ClientAcl(None));
    assert_eq!(ok("client_acl 3"), Command::ClientAcl(Some(3)));
    assert_eq!(ok("control_acl 0"), Command::ControlAcl(Some(0)));
    assert_eq!(
        err("control_acl 12").to_string(),
        "'12': expected an ACL list number 0-9"
    );
    assert_eq!(
        err("client_acl 99999999999999999999999"),
        bad("99999999999999999999999", ACL_LIST)
    );
}

#[test]
fn nullary_commands() {
    assert_eq!(ok("control"), Command::Control);
    assert_eq!(ok("exit"), Command::Exit);
    assert_eq!(ok("mode"), Command::ShowMode);
    assert_eq!(ok("pid"), Command::Pid);
    assert_eq!(ok("servers"), Command::Servers);
    assert_eq!(ok("status"), Command::Status);
    assert_eq!(ok("epoll"), Command::EventMechanism(EventMechanism::Epoll));
    assert_eq!(
        ok("kqueue"),
        Command::EventMechanism(EventMechanism::Kqueue)
    );
    assert_eq!(ok("poll"), Command::EventMechanism(EventMechanism::Poll));
    assert_eq!(
        ok("select"),
        Command::EventMechanism(EventMechanism::Select)
    );
}

#[test]
fn file_and_address_arguments() {
    assert_eq!(
        ok("include /etc/pen.cfg"),
        Command::Include("/etc/pen.cfg".into())
    );
    assert!(
        matches!(err("include"), E::MissingArgument { ref command, .. } if command == "include")
    );
    assert_eq!(ok("write"), Command::Write(None));
    assert_eq!(
        ok("write /tmp/x.cfg"),
        Command::Write(Some("/tmp/x.cfg".into()))
    );
    assert_eq!(ok("log"), Command::Log(None));
    assert_eq!(
        ok("log 10.0.0.1:514"),
        Command::Log(Some("10.0.0.1:514".into()))
    );
    assert_eq!(
        ok("web_stats /var/www/pen.html"),
        Command::WebStats(Some("/var/www/pen.html".into()))
    );
    assert_eq!(ok("web_stats"), Command::WebStats(None));
    assert_eq!(ok("listen"), Command::Listen(None));
    assert_eq!(
        ok("listen [::1]:8080"),
        Command::Listen(Some("[::1]:8080".into()))
    );
    assert_eq!(err("write a b"), E::TrailingArgument("b".into()));
}

#[test]
fn source() {
    assert_eq!(
        ok("source 127.0.0.1"),
        Command::Source([127, 0, 0, 1].into())
    );
    assert_eq!(
        ok("source ::1"),
        Command::Source(Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(
        ok("source [::1]"),
        Command::Source(Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(
        err("source host.example"),
        bad("host.example", "an IPv4 or IPv6 address")
    );
    assert_eq!(
        err("source [127.0.0.1]"),
        bad("[127.0.0.1]", "an IPv4 or IPv6 address")
    );
    assert!(matches!(err("source"), E::MissingArgument { .. }));
}

#[test]
fn tcp_fastclose() {
    assert_eq!(ok("tcp_fastclose"), Command::TcpFastclose(None));
    assert_eq!(
        ok("tcp_fastclose up"),
        Command::TcpFastclose(Some(Fastclose::Up))
    );
    assert_eq!(
        ok("tcp_fastclose down"),
        Command::TcpFastclose(Some(Fastclose::Down))
    );
    assert_eq!(
        ok("tcp_fastclose both"),
        Command::TcpFastclose(Some(Fastclose::Both))
    );
    assert_eq!(
        ok("tcp_fastclose off"),
        Command::TcpFastclose(Some(Fastclose::Off))
    );
    assert!(matches!(err("tcp_fastclose on"), E::BadArgument { ref token, .. } if token == "on"));
}

#[test]
fn ssl_commands_keep_raw_arguments() {
    assert_eq!(
        ok("ssl_ciphers HIGH:!aNULL  x"),
        Command::Ssl(SslCommand::Ciphers, vec!["HIGH:!aNULL".into(), "x".into()])
    );
    assert_eq!(ok("ssl_option"), Command::Ssl(SslCommand::Option, vec![]));
    assert_eq!(
        ok("ssl_sni_path /p"),
        Command::Ssl(SslCommand::SniPath, vec!["/p".into()])
    );
    assert_eq!(
        ok("ssl_ocsp_response f"),
        Command::Ssl(SslCommand::OcspResponse, vec!["f".into()])
    );
    assert_eq!(
        ok("ssl_client_renegotiation_interval 10"),
        Command::Ssl(SslCommand::ClientRenegotiationInterval, vec!["10".into()])
    );
}

#[path = "parse_acl_tests.rs"]
mod acl;

#[test]
fn server() {
    assert_eq!(
        ok("server 3 acl 0 address 127.0.0.1 port 80 max 0 hard 0 weight 0 prio 0"),
        Command::Server {
            id: 3,
            fields: vec![
                ServerField::Acl(0),
                ServerField::Address("127.0.0.1".into()),
                ServerField::Port(80),
                ServerField::Max(0),
                ServerField::Hard(0),
                ServerField::Weight(0),
                ServerField::Prio(0),
            ],
        }
    );
    assert_eq!(
        ok("server 1 port 81 blacklist 0 port 82"),
        Command::Server {
            id: 1,
            fields: vec![
                ServerField::Port(81),
                ServerField::Blacklist(0),
                ServerField::Port(82)
            ],
        }
    );
    assert_eq!(
        ok("server 0"),
        Command::Server {
            id: 0,
            fields: vec![]
        }
    );
    assert_eq!(
        ok("server 2 address [2001:db8::1] address fe80::1%eth0 address web-1.example_x"),
        Command::Server {
            id: 2,
            fields: vec![
                ServerField::Address("2001:db8::1".into()),
                ServerField::Address("fe80::1%eth0".into()),
                ServerField::Address("web-1.example_x".into()),
            ],
        }
    );
}

#[test]
fn server_errors() {
    assert!(matches!(err("server"), E::MissingArgument { ref command, .. } if command == "server"));
    assert_eq!(err("server x"), bad("x", "a server number"));
    assert!(matches!(err("server 1 port"), E::MissingArgument { .. }));
    assert_eq!(
        err("server 1 port http"),
        bad("http", "a port number 0-65535")
    );
    assert!(matches!(err("server 1 port 65536"), E::OutOfRange { .. }));
    assert_eq!(
        ok("server 1 port 65535"),
        Command::Server {
            id: 1,
            fields: vec![ServerField::Port(65535)]
        }
    );
    assert_eq!(err("server 1 acl 10"), bad("10", ACL_LIST));
    assert!(
        matches!(err("server 1 speed 3"), E::BadArgument { ref token, .. } if token == "speed")
    );
    assert!(matches!(err("server 1 max -1"), E::BadArgument { .. }));
    assert!(matches!(
        err("server 1 weight 4294967296"),
        E::OutOfRange { .. }
    ));
    let host_err = "a host name or IP address ([v6] allowed)";
    for tok in [
        "(unknown",
        "[]",
        "[host]",
        "[::1",
        "::1]",
        "a/b",
        "h\u{1}x",
        "1.2.3.4:80",
        "::1%",
        "::1%e/0",
        "h\u{e9}",
    ] {
        assert_eq!(
            err(&format!("server 1 address {tok}")),
            bad(tok, host_err),
            "{tok:?}"
        );
    }
    assert_eq!(
        err(&format!("server 1 address {}", "a".repeat(256))),
        bad(&"a".repeat(256), host_err)
    );
}

#[test]
fn reads_cpen_written_config() {
    // The commands C pen's `write` produced (/tmp/ref/cpen.cfg), minus its broken line for
    // a server without an address.
    let cfg = "no acl 0\nacl 1 permit 10.0.0.0 255.0.0.0\nno ascii\nblacklist 20\nclient_acl 0\n\
               control_acl 0\ndebug 0\nno hash\nno http\nno log\nno roundrobin\n\
               server 1 acl 0 address 127.0.0.1 port 18082 max 10 hard 20 weight 0 prio 0\n\
               no stubborn\ntcp_fastclose both\ntcp_nodelay\ntimeout 5\ntracking 10\n\
               no web_stats\nweight\nprio";
    for line in cfg.lines() {
        ok(line);
    }
}

/// Every keyword the parser knows, plus values valid and invalid for them.
const VOCABULARY: &[&str] = &[
    "abort_on_error",
    "acl",
    "ascii",
    "blacklist",
    "client_acl",
    "clients_max",
    "close",
    "connection",
    "conn_max",
    "control",
    "control_acl",
    "debug",
    "dsr_if",
    "idlers",
    "conn_per_client",
    "handshake_timeout",
    "metrics_acl",
    "request_timeout",
    "trusted_proxy_acl",
    "connect_on_data",
    "tarpit_acl",
    "block",
    "delayed_forward",
    "#",
    "#x",
    "dummy",
    "epoll",
    "exit",
    "hash",
    "http",
    "idle_timeout",
    "include",
    "kqueue",
    "listen",
    "log",
    "mode",
    "no",
    "pending_max",
    "pid",
    "poll",
    "prio",
    "recent",
    "reload_reset",
    "roundrobin",
    "select",
    "server",
    "servers",
    "socket",
    "source",
    "status",
    "stubborn",
    "tcp_fastclose",
    "tcp_nodelay",
    "timeout",
    "tracking",
    "transparent",
    "web_stats",
    "weight",
    "write",
    "ssl_ciphers",
    "ssl_option",
    "ssl_sni_path",
    "ssl_ocsp_response",
    "ssl_client_renegotiation_interval",
    "permit",
    "deny",
    "country",
    "address",
    "port",
    "max",
    "hard",
    "up",
    "down",
    "both",
    "off",
    "0",
    "9",
    "10",
    "65535",
    "65536",
    "18446744073709551616",
    "-1",
    "+1",
    "1.2.3.4",
    "255.0.0.0",
    "::1",
    "::1/64",
    "::1/129",
    "[::1]",
    "[",
    "]",
    "/",
    "%",
    "::1%",
    "SE",
    "\0",
    "\u{0}",
    "\u{7f}",
    "é",
    "\r\n",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

    /// Arbitrary text never panics, and whatever parses prints back to the same command.
    #[test]
    fn arbitrary_text_never_panics(line in ".{0,80}") {
        if let Ok(cmd) = parse_line(&line) {
            proptest::prop_assert_eq!(parse_line(&cmd.to_string()), Ok(cmd));
        }
    }

    /// Sentences from the command vocabulary reach deep into the grammar.
    #[test]
    fn vocabulary_sentences_never_panic(
        words in proptest::collection::vec(proptest::sample::select(VOCABULARY), 0..12),
        junk in "\\PC{0,6}",
    ) {
        let mut line = words.join(" ");
        line.push(' ');
        line.push_str(&junk);
        for l in [line.as_str(), line.trim_end()] {
            if let Ok(cmd) = parse_line(l) {
                proptest::prop_assert_eq!(parse_line(&cmd.to_string()), Ok(cmd));
            }
        }
    }
}
