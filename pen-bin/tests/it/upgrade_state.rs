//! Issue 13 item 7: the runtime state moves to the new pen in a binary upgrade (SIGUSR2):
//! the client tracking table, the checks' verdicts, the counters. C pen 0.34.1 has no upgrade
//! (SIGUSR2 aborts it), so these are ours only.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{is_c_pen, wait_for, wait_until, Pen, PenBuilder};
use super::lifecycle::{alive, upgrade, Upgraded};

/// The `servers` line of server `n`.
fn server_line(pen: &Pen, n: usize) -> String {
    let prefix = format!("{n} addr ");
    pen.servers()
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_default()
}

/// The number after `key` in a `servers` line.
fn field(line: &str, key: &str) -> u64 {
    let mut w = line.split_whitespace();
    w.by_ref().find(|x| *x == key);
    w.next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Upgrades `pen` by SIGUSR2 and waits until the old process is gone (it has handed its state
/// over by then); returns a guard that stops the new one.
fn upgrade_and_wait(pen: &Pen) -> Upgraded {
    let new = upgrade(&pen.pid_path(), pen.pid);
    let guard = Upgraded(Some(new));
    wait_for(Duration::from_secs(10), "the old pen gone", || {
        (!alive(pen.pid)).then_some(())
    });
    guard
}

#[test]
fn sigusr2_keeps_tracked_clients_on_their_server_and_the_counters_go_on() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .pid_file()
        .server(a.spec())
        .server(b.spec())
        .start();
    // Clients 127.0.0.2-5 are tracked to B (A drained while they came), then A is back: a
    // fresh choice would give them A.
    pen.ctl("server 0 drain");
    for n in 2..=5 {
        assert_eq!(pen.fetch_from(n), "B", "client {n} while A is drained");
    }
    pen.ctl("server 0 ready");
    for n in 2..=5 {
        assert_eq!(pen.fetch_from(n), "B", "client {n} tracked");
    }
    assert_eq!(pen.fetch_from(6), "A", "a new client takes A");
    wait_until(Duration::from_secs(5), "B's bytes counted", || {
        field(&server_line(&pen, 1), "rx") == 8
    });
    let accepted = pen
        .metric("pen_connections_accepted_total")
        .expect("accepted counter");
    let _guard = upgrade_and_wait(&pen);
    for n in 2..=5 {
        assert_eq!(
            pen.fetch_from(n),
            "B",
            "client {n} still tracked after the upgrade"
        );
    }
    assert_eq!(pen.fetch_from(6), "A", "client 6 still on A");
    // The counters went on from where the old pen was: B's bytes and the accepted clients.
    wait_until(Duration::from_secs(5), "B's bytes counted on", || {
        field(&server_line(&pen, 1), "rx") == 12
    });
    let after = pen
        .metric("pen_connections_accepted_total")
        .expect("accepted counter");
    assert!(after >= accepted + 5.0, "accepted {accepted} then {after}");
    // The client table's own counts too (`recent`: 2 connects before, 1 after).
    let recent = pen.ctl("recent");
    assert!(recent.contains("127.0.0.2 connects 3 "), "{recent}");
}

/// One request through pen: what the server sent, or `None` if nothing came within 2 s.
fn request(pen: &Pen) -> Option<String> {
    let mut s = TcpStream::connect(pen.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

#[test]
fn sigusr2_keeps_a_checked_down_server_out() {
    if is_c_pen() {
        return; // [ours]
    }
    // Server 0 accepts and never answers; its banner check times out after 4 s (and is
    // checked first, at start, in each pen): a new pen that started afresh would not know it
    // is down for those 4 s, and round robin would send it every other client.
    let blackhole = Backend::hold();
    let healthy = Backend::name("A");
    let pen = PenBuilder::new()
        .pid_file()
        .opts(&[
            "-r",
            "-O",
            "check_interval 60000",
            "-O",
            "check_timeout 4000",
            "-O",
            "server 0 check expect A",
            "-O",
            "server 1 check expect A",
        ])
        .server(blackhole.spec())
        .server(healthy.spec())
        .start();
    wait_until(
        Duration::from_secs(15),
        "the blackhole checked down",
        || server_line(&pen, 0).contains(" check down last timeout"),
    );
    let _guard = upgrade_and_wait(&pen);
    // At once in the new pen (its own first check of server 0 is still under way).
    wait_until(Duration::from_secs(1), "the verdict taken over", || {
        server_line(&pen, 0).contains(" check down last timeout")
    });
    let answered = (0..10)
        .filter(|_| request(&pen).as_deref() == Some("A"))
        .count();
    assert_eq!(answered, 10, "servers: {:?}", pen.servers());
}
