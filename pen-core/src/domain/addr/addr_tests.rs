//! Tests of address parsing and resolution: the accepted forms, the error texts, the
//! `/etc/services` lookup, and round-trip properties of the split and parse functions.

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
            "'4294967296' in 'h:80:1:2:4294967296': expected a weight up to 1000000",
        ),
        (
            "h:80:1048577",
            "'1048577' in 'h:80:1048577': expected a number of connections up to 1048576",
        ),
        (
            "h:80:1:1048577",
            "'1048577' in 'h:80:1:1048577': expected a number of connections up to 1048576",
        ),
        (
            "h:80:1:2:1000001",
            "'1000001' in 'h:80:1:2:1000001': expected a weight up to 1000000",
        ),
        (
            "h:80:1:2:3:1000001",
            "'1000001' in 'h:80:1:2:3:1000001': expected a priority up to 1000000",
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
        nums in [0..=crate::domain::limits::CONNECTIONS_MAX, 0..=crate::domain::limits::CONNECTIONS_MAX,
            0..=crate::domain::limits::WEIGHT_MAX, 0..=crate::domain::limits::WEIGHT_MAX],
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
