//! Failover, blacklisting, the emergency server, stubborn mode and the global limit `-x`.

use std::io::Write;
use std::time::Duration;

use super::backends::{Backend, Dormant, FullQueue};
use super::harness::{is_c_pen, peek, wait_for, Peek, Pen, PenBuilder, WAIT};

/// [ours] The seconds left of server `n`'s blacklisting as shown by `servers`, if any.
fn blacklisted_secs(pen: &Pen, n: usize) -> Option<u64> {
    let lines = pen.servers();
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("{n} addr ")))?;
    let (_, rest) = line.split_once(" blacklisted ")?;
    Some(
        rest.trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad blacklist field in {line:?}")),
    )
}

#[test]
fn refused_connect_fails_over_invisibly_and_blacklists() {
    let dead = Dormant::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-b", "30"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    for i in 0..4 {
        assert_eq!(
            pen.fetch(),
            "B",
            "connection {i} must be served by the live server"
        );
    }
    if is_c_pen() {
        return; // [ours] C pen's `servers` does not show blacklisting
    }
    let secs = blacklisted_secs(&pen, 0)
        .unwrap_or_else(|| panic!("server 0 not blacklisted: {:?}", pen.servers()));
    assert!((1..=30).contains(&secs), "blacklist seconds left {secs}");
    assert_eq!(
        blacklisted_secs(&pen, 1),
        None,
        "server 1 is fine: {:?}",
        pen.servers()
    );
}

#[test]
fn blacklisting_expires_after_b_seconds() {
    let dead = Dormant::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-b", "2"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    assert_eq!(pen.fetch(), "B");
    assert_eq!(pen.fetch(), "B");
    // Server 0 comes to life; it is still blacklisted for a while, then used again.
    let a = dead.wake_as_name("A");
    assert_eq!(pen.fetch(), "B", "server 0 is still blacklisted");
    if !is_c_pen() {
        assert!(blacklisted_secs(&pen, 0).is_some(), "{:?}", pen.servers());
    }
    wait_for(
        Duration::from_secs(6),
        "server 0 to be used again after -b 2",
        || (pen.fetch() == "A").then_some(()),
    );
    if !is_c_pen() {
        assert_eq!(blacklisted_secs(&pen, 0), None, "{:?}", pen.servers());
    }
    drop(a);
}

#[test]
fn connect_timeout_fails_over() {
    let stuck = FullQueue::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-t", "1"])
        .server(stuck.spec())
        .server(b.spec())
        .start();
    for i in 0..3 {
        assert_eq!(pen.fetch(), "B", "connection {i}");
    }
    if !is_c_pen() {
        assert!(
            blacklisted_secs(&pen, 0).is_some(),
            "timed-out server 0 must be blacklisted: {:?}",
            pen.servers()
        );
    }
}

#[test]
fn emergency_server_only_when_all_regular_servers_are_blacklisted() {
    let (d0, d1) = (Dormant::new(), Dormant::new());
    let e = Backend::name("E");
    let pen = PenBuilder::new()
        .opts(&["-r", "-b", "30", "-e", &e.spec()])
        .server(d0.spec())
        .server(d1.spec())
        .start();
    assert_eq!(pen.fetch(), "E", "both regular servers refuse");
    assert_eq!(pen.fetch(), "E", "both regular servers blacklisted");
    let a = d0.wake_as_name("A");
    let (reply, code) = pen.penctl(&["server", "0", "blacklist", "0"]);
    assert_eq!((reply.as_str(), code), ("", 0));
    for i in 0..3 {
        assert_eq!(
            pen.fetch(),
            "A",
            "connection {i}: server 0 is back, no emergency"
        );
    }
    drop(a);
}

#[test]
fn stubborn_closes_instead_of_failing_over() {
    let dead = Dormant::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-s", "-b", "30"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    // Round robin: one of the first two connections has server 0 as its first choice.
    let mut got = vec![pen.fetch(), pen.fetch()];
    got.sort();
    assert_eq!(
        got,
        vec!["".to_string(), "B".to_string()],
        "one connection closed, one served"
    );
}

#[test]
fn connection_limit_makes_clients_wait_not_fail() {
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-x", "2"])
        .server(echo.spec())
        .start();
    let mut c1 = pen.connect();
    let mut c2 = pen.connect();
    for c in [&mut c1, &mut c2] {
        c.write_all(b"ping").expect("write");
        assert_eq!(peek(c, WAIT), Peek::Data(b"ping".to_vec()));
    }
    let mut c3 = pen.connect();
    c3.write_all(b"third").expect("write");
    assert_eq!(
        peek(&mut c3, Duration::from_millis(400)),
        Peek::Quiet,
        "third waits while two are open"
    );
    drop(c1);
    assert_eq!(
        peek(&mut c3, WAIT),
        Peek::Data(b"third".to_vec()),
        "third served once a slot frees"
    );
    c2.write_all(b"still").expect("write");
    assert_eq!(peek(&mut c2, WAIT), Peek::Data(b"still".to_vec()));
}

/// [ours] `-d` reports a failed server and its blacklisting on stderr; `-dd` each client's
/// server as well. Without `-d` nothing is printed.
#[test]
fn debug_output_names_failed_server() {
    if is_c_pen() {
        return;
    }
    let dead = Dormant::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-dd"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    assert_eq!(pen.fetch(), "B");
    let log = wait_for(WAIT, "debug lines", || {
        let log = pen.log_text();
        log.contains("blacklisted for 30 s").then_some(log)
    });
    assert!(log.contains("pen: server 0 failed ("), "{log}");
    assert!(
        log.contains(" -> server 0"),
        "-dd shows the first choice: {log}"
    );

    let quiet = PenBuilder::new()
        .opts(&["-r"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    assert_eq!(quiet.fetch(), "B");
    assert_eq!(quiet.log_text(), "", "no -d, no output");
}

/// [ours] With `-d`, pen also logs the balancer's events (here a blacklisting and a failover),
/// one line each.
#[test]
fn debug_output_logs_events() {
    if is_c_pen() {
        return;
    }
    let dead = Dormant::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-d"])
        .server(dead.spec())
        .server(b.spec())
        .start();
    assert_eq!(pen.fetch(), "B");
    let log = wait_for(WAIT, "event lines", || {
        let log = pen.log_text();
        log.contains("pen: failover from server 0 to server 1\n")
            .then_some(log)
    });
    assert!(
        log.contains("pen: server 0 blacklisted for 30 s: connect failed ("),
        "{log}"
    );
}
