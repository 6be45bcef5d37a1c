use proptest::prelude::*;

use super::*;

fn parse(line: &str) -> Result<CheckSpec, CheckSpecError> {
    let mut w = line.split_ascii_whitespace().peekable();
    let spec = parse_spec(&mut w)?;
    assert_eq!(w.next(), None, "words left over in {line:?}");
    Ok(spec)
}

#[test]
fn parses_every_kind() {
    assert_eq!(parse("connect"), Ok(CheckSpec::Connect));
    assert_eq!(parse("tls"), Ok(CheckSpec::Tls));
    assert_eq!(parse("agent 4444"), Ok(CheckSpec::Agent { port: 4444 }));
    assert_eq!(
        parse("http /health"),
        Ok(CheckSpec::Http {
            path: "/health".into(),
            lo: 200,
            hi: 399,
            host: None
        })
    );
    assert_eq!(
        parse("http / 200-204"),
        Ok(CheckSpec::Http {
            path: "/".into(),
            lo: 200,
            hi: 204,
            host: None
        })
    );
    assert_eq!(
        parse("send PING\\r\\n expect +PONG"),
        Ok(CheckSpec::Send {
            send: b"PING\r\n".to_vec(),
            expect: Expect::Text(b"+PONG".to_vec())
        })
    );
    assert_eq!(
        parse("expect 220"),
        Ok(CheckSpec::Send {
            send: vec![],
            expect: Expect::Text(b"220".to_vec())
        })
    );
    assert_eq!(
        parse("send x expect_re ^HTTP/1\\.[01]\\s2"),
        Ok(CheckSpec::Send {
            send: b"x".to_vec(),
            expect: Expect::Regex("^HTTP/1\\.[01]\\s2".into())
        })
    );
}

#[test]
fn an_http_check_leaves_a_following_word_that_is_not_a_status() {
    let mut w = "http /x weight 3".split_ascii_whitespace().peekable();
    assert!(parse_spec(&mut w).is_ok());
    assert_eq!(w.next(), Some("weight"));
}

#[test]
fn refuses_bad_specs_naming_the_word() {
    for bad in [
        "",
        "ping",
        "agent",
        "agent 0",
        "agent 70000",
        "agent +5",
        "http",
        "http health",
        "send",
        "send a expect",
        "send \\q",
        "send \\x4",
        "send \\xzz",
        "expect_re (",
        "expect_re #a",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    let long = "a".repeat(CHECK_TEXT_MAX + 1);
    assert!(parse(&format!("send {long}")).is_err());
}

#[test]
fn status_ranges() {
    assert_eq!(status_range("200"), Some((200, 200)));
    assert_eq!(status_range("200-299"), Some((200, 299)));
    assert_eq!(status_range("299-200"), None);
    assert_eq!(status_range("600"), None);
    assert_eq!(status_range("20"), None);
    assert_eq!(status_range("+200"), None);
}

#[test]
fn escapes_round_trip_and_decode() {
    assert_eq!(unescape("a\\r\\n\\t\\s\\\\\\x41").unwrap(), b"a\r\n\t \\A");
    assert_eq!(escape(b"#a b\x00"), "\\x23a\\sb\\x00");
}

fn settings() -> CheckSettings {
    CheckSettings::default() // rise 2, fall 3
}

#[test]
fn the_first_result_decides_then_rise_and_fall_count() {
    let s = settings();
    let mut rf = RiseFall::default();
    assert_eq!(rf.verdict(), CheckVerdict::Unchecked);
    assert_eq!(rf.record(true, &s), Some(CheckVerdict::Up));
    assert_eq!(rf.record(false, &s), None);
    assert!(rf.changing());
    assert_eq!(rf.record(false, &s), None);
    assert_eq!(rf.record(false, &s), Some(CheckVerdict::Down));
    assert!(!rf.changing());
    assert_eq!(rf.record(true, &s), None);
    assert_eq!(
        rf.record(false, &s),
        None,
        "a failure resets the rise streak"
    );
    assert_eq!(rf.record(true, &s), None);
    assert_eq!(rf.record(true, &s), Some(CheckVerdict::Up));
}

#[test]
fn agent_replies() {
    let r = |s: &str| parse_agent_reply(s.as_bytes());
    assert_eq!(
        r("up\r\n"),
        Some(AgentReply {
            up: Some(true),
            admin: Some(AdminState::Ready),
            pct: None
        })
    );
    assert_eq!(
        r("drain"),
        Some(AgentReply {
            up: None,
            admin: Some(AdminState::Drain),
            pct: None
        })
    );
    assert_eq!(
        r("UP 50%\n"),
        Some(AgentReply {
            up: Some(true),
            admin: Some(AdminState::Ready),
            pct: Some(50)
        })
    );
    assert_eq!(r("maint,250%").and_then(|a| a.pct), Some(100));
    assert_eq!(r("down").and_then(|a| a.up), Some(false));
    assert_eq!(r("hello"), None);
    assert_eq!(r(""), None);
}

fn spec() -> impl Strategy<Value = CheckSpec> {
    let text = proptest::collection::vec(any::<u8>(), 1..40);
    prop_oneof![
        Just(CheckSpec::Connect),
        Just(CheckSpec::Tls),
        (1..=u16::MAX).prop_map(|port| CheckSpec::Agent { port }),
        (
            "/[a-z0-9/._-]{0,20}",
            100..=599u16,
            0..=99u16,
            proptest::option::of("[a-zA-Z0-9._:-]{1,30}|\\[[0-9a-f:]{2,20}\\](:[0-9]{1,5})?")
        )
            .prop_map(|(path, lo, d, host)| CheckSpec::Http {
                path,
                lo,
                hi: (lo + d).min(599),
                host,
            }),
        (text.clone(), proptest::option::of(text)).prop_map(|(send, e)| CheckSpec::Send {
            send,
            expect: e.map_or(Expect::Nothing, Expect::Text)
        }),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(|t| CheckSpec::Send {
            send: vec![],
            expect: Expect::Text(t)
        }),
        "[a-z0-9^$.]{1,20}".prop_map(|r| CheckSpec::Send {
            send: b"x".to_vec(),
            expect: Expect::Regex(r)
        }),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(s in spec()) {
        prop_assert_eq!(parse(&s.to_string()), Ok(s));
    }

    #[test]
    fn escape_then_unescape_is_identity(b in proptest::collection::vec(any::<u8>(), 1..200)) {
        let word = escape(&b);
        prop_assert!(!word.contains(char::is_whitespace) && !word.starts_with('#'));
        prop_assert_eq!(unescape(&word).unwrap(), b);
    }

    #[test]
    fn the_verdict_follows_rise_and_fall(results in proptest::collection::vec(any::<bool>(), 1..100),
                                         rise in 1..5u32, fall in 1..5u32) {
        let s = CheckSettings { rise, fall, ..CheckSettings::default() };
        let mut rf = RiseFall::default();
        for (i, &ok) in results.iter().enumerate() {
            rf.record(ok, &s);
            let done = &results[..=i];
            let last_all = |n: u32, v: bool| {
                let n = n as usize;
                done.len() >= n && done[done.len() - n..].iter().all(|&r| r == v)
            };
            if last_all(fall, false) {
                prop_assert_eq!(rf.verdict(), CheckVerdict::Down);
            }
            if last_all(rise, true) {
                prop_assert_eq!(rf.verdict(), CheckVerdict::Up);
            }
            prop_assert_ne!(rf.verdict(), CheckVerdict::Unchecked);
        }
    }

    #[test]
    fn agent_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_agent_reply(&b);
    }
}

#[test]
fn http_host_parses_displays_and_refuses_what_would_break_the_header() {
    let with_host = CheckSpec::Http {
        path: "/hz".into(),
        lo: 200,
        hi: 399,
        host: Some("api.example.com:8080".into()),
    };
    assert_eq!(
        parse("http /hz host api.example.com:8080"),
        Ok(with_host.clone())
    );
    assert_eq!(
        parse("http /hz 200-399 host api.example.com:8080"),
        Ok(with_host.clone())
    );
    assert_eq!(
        with_host.to_string(),
        "http /hz 200-399 host api.example.com:8080"
    );
    assert_eq!(
        parse("http / 204 host [::1]:80").map(|s| s.to_string()),
        Ok("http / 204 host [::1]:80".to_string())
    );
    assert_eq!(
        parse("http / host"),
        Err(CheckSpecError::Missing("a host NAME"))
    );
    for bad in ["a\\r\\nX:1", "#x", "a/b", "a%0d", &"h".repeat(256)] {
        assert!(
            matches!(
                parse(&format!("http / host {bad}")),
                Err(CheckSpecError::Text { .. })
            ),
            "{bad}"
        );
    }
    assert!(parse(&format!("http / host {}", "h".repeat(255))).is_ok());
}
