//! Fuzzes the active health checks' input parsers (issue 13): the check specification of
//! `server N check ...` and the agent's reply line. Invariants:
//! - no panic on any input;
//! - a specification that parses is displayed as a line that parses back to the same value
//!   (parse -> display -> parse identity), and that line is one word sequence without a
//!   comment start;
//! - through `parse_line`, `server 0 check ...` round-trips the same way;
//! - an agent reply's weight share is at most 100.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::control::parse_line;
use pen_core::domain::check::{parse_agent_reply, parse_spec};

fuzz_target!(|data: &[u8]| {
    if let Some(r) = parse_agent_reply(data) {
        assert!(r.pct.is_none_or(|p| p <= 100), "{r:?}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut words = text.split_ascii_whitespace().peekable();
    if let Ok(spec) = parse_spec(&mut words) {
        let shown = spec.to_string();
        assert!(!shown.split(' ').any(|w| w.starts_with('#')), "{shown:?}");
        let mut again = shown.split_ascii_whitespace().peekable();
        assert_eq!(parse_spec(&mut again).as_ref(), Ok(&spec), "{text:?} -> {shown:?}");
        assert_eq!(again.next(), None, "{shown:?} left words");
    }
    if let Ok(cmd) = parse_line(&format!("server 0 check {text}")) {
        let line = cmd.to_string();
        assert_eq!(parse_line(&line).as_ref(), Ok(&cmd), "{text:?} -> {line:?}");
    }
});
