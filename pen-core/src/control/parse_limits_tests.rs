//! The parser enforces every maximum of [`crate::domain::limits`] (kept apart so `parse.rs`
//! and `parse_tests.rs` stay short).

use proptest::prelude::*;

use crate::control::limits::*;
use crate::control::parse_line;
use crate::error::ParseError;

/// Every bounded argument: its maximum is accepted, one more and `u64::MAX` are refused
/// with [`ParseError::OutOfRange`] naming the token and the maximum.
#[test]
fn every_maximum_is_enforced_by_the_parser() {
    let cases: [(&str, u64, &str); 22] = [
        ("blacklist", SECONDS_MAX, EXPECTED_SECONDS),
        ("timeout", SECONDS_MAX, EXPECTED_SECONDS),
        ("tracking", SECONDS_MAX, EXPECTED_SECONDS),
        ("idle_timeout", SECONDS_MAX, EXPECTED_SECONDS),
        ("recent", SECONDS_MAX, EXPECTED_SECONDS),
        ("handshake_timeout", SECONDS_MAX, EXPECTED_SECONDS),
        ("request_timeout", SECONDS_MAX, EXPECTED_SECONDS),
        ("server 0 blacklist", SECONDS_MAX, EXPECTED_SECONDS),
        ("debug", u64::from(DEBUG_MAX), EXPECTED_DEBUG),
        (
            "pending_max",
            u64::from(CONNECTIONS_MAX),
            EXPECTED_CONNECTIONS,
        ),
        ("conn_max", u64::from(CONNECTIONS_MAX), EXPECTED_CONNECTIONS),
        (
            "conn_per_client",
            u64::from(CONNECTIONS_MAX),
            EXPECTED_CONNECTIONS,
        ),
        ("idlers", u64::from(CONNECTIONS_MAX), EXPECTED_CONNECTIONS),
        (
            "server 1 max",
            u64::from(CONNECTIONS_MAX),
            EXPECTED_CONNECTIONS,
        ),
        (
            "server 1 hard",
            u64::from(CONNECTIONS_MAX),
            EXPECTED_CONNECTIONS,
        ),
        ("server 2 weight", u64::from(WEIGHT_MAX), EXPECTED_WEIGHT),
        ("server 2 prio", u64::from(WEIGHT_MAX), EXPECTED_PRIO),
        // ---- server states (issue 13) ----
        ("slow_start", SECONDS_MAX, EXPECTED_SECONDS),
        ("outlier_ejection_time", SECONDS_MAX, EXPECTED_SECONDS),
        (
            "outlier_failures",
            u64::from(OUTLIER_FAILURES_MAX),
            EXPECTED_FAILURES,
        ),
        (
            "outlier_max_percent",
            u64::from(PERCENT_MAX),
            EXPECTED_PERCENT,
        ),
        ("panic_threshold", u64::from(PERCENT_MAX), EXPECTED_PERCENT),
    ];
    for (cmd, max, expected) in cases {
        assert!(parse_line(&format!("{cmd} {max}")).is_ok(), "{cmd} {max}");
        for over in [max + 1, u64::MAX] {
            let token = over.to_string();
            let got = parse_line(&format!("{cmd} {token}"));
            assert_eq!(
                got,
                Err(ParseError::OutOfRange { token, expected }),
                "{cmd}"
            );
        }
    }
    let clients = CLIENTS_MAX as u64;
    assert!(parse_line(&format!("clients_max {clients}")).is_ok());
    for over in [clients + 1, u64::MAX] {
        let e = parse_line(&format!("clients_max {over}"));
        assert!(matches!(e, Err(ParseError::OutOfRange { expected, .. })
            if expected == EXPECTED_CLIENTS));
    }
    // The message names the token and the maximum.
    let msg = parse_line("timeout 18446744073709551615")
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        msg.to_string(),
        "'18446744073709551615': out of range, expected a number of seconds up to 31536000 \
         (one year)"
    );
}

proptest! {
    /// No time argument the parser accepts overflows a deadline computed from it, on a
    /// monotonic clock that has run for up to a century.
    #[test]
    fn accepted_seconds_never_overflow_a_deadline(
        secs in any::<u64>(),
        now_ms in 0u64..100 * 366 * 86_400 * 1000,
        cmd in prop::sample::select(vec!["timeout", "blacklist", "tracking", "idle_timeout",
            "recent", "handshake_timeout", "request_timeout"]),
    ) {
        if let Ok(c) = parse_line(&format!("{cmd} {secs}")) {
            prop_assert!(secs <= SECONDS_MAX, "{c:?}");
            let deadline = secs.checked_mul(1000).and_then(|ms| now_ms.checked_add(ms));
            prop_assert!(deadline.is_some());
        }
    }
}
