//! Server selection: tracking, round robin, hash, weight, prio, limits.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;

use super::backends::Backend;
use super::harness::{is_c_pen, wait_for, wait_until, Pen, PenBuilder, WAIT};

#[test]
fn tracking_sends_a_client_back_to_its_server() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new().server(a.spec()).server(b.spec()).start();
    let first = pen.fetch_from(1);
    assert!(first == "A" || first == "B", "unexpected reply {first:?}");
    for _ in 0..5 {
        assert_eq!(
            pen.fetch_from(1),
            first,
            "client 127.0.0.1 must stay on its server"
        );
    }
    let other = pen.fetch_from(2);
    for _ in 0..3 {
        assert_eq!(
            pen.fetch_from(2),
            other,
            "client 127.0.0.2 must stay on its server"
        );
    }
}

#[test]
fn round_robin_alternates() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-r"])
        .server(a.spec())
        .server(b.spec())
        .start();
    let got: Vec<String> = (0..6).map(|_| pen.fetch_from(1)).collect();
    for w in got.windows(2) {
        assert_ne!(w[0], w[1], "round robin must alternate: {got:?}");
    }
    assert!(got.iter().all(|g| g == "A" || g == "B"), "{got:?}");
}

#[test]
fn hash_spreads_eight_clients_over_both_servers_deterministically() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-h"])
        .server(a.spec())
        .server(b.spec())
        .start();
    let first: Vec<String> = (1..=8).map(|n| pen.fetch_from(n)).collect();
    let again: Vec<String> = (1..=8).map(|n| pen.fetch_from(n)).collect();
    assert_eq!(
        first, again,
        "hash must be deterministic per client address"
    );
    if is_c_pen() {
        return; // [ours] C pen maps every 127.0.0.x client to one server
    }
    let used: BTreeSet<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(
        used,
        BTreeSet::from(["A", "B"]),
        "8 clients over 2 servers: {first:?}"
    );
}

/// Sum of the `conn C` fields of `servers`: pen's own count of open server connections.
fn open_conns(pen: &Pen) -> usize {
    pen.servers()
        .iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "conn")?;
            w.next()?.parse::<usize>().ok()
        })
        .sum()
}

/// Opens held connections from 127.0.0.`n` for each `n`, one at a time, waiting until a backend
/// accepted it and pen counts it (so the next selection sees it).
fn hold_from(pen: &Pen, froms: &[u8], backends: &[&Backend]) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for &n in froms {
        let before: usize = backends.iter().map(|b| b.accepted()).sum();
        let counted = open_conns(pen);
        let mut c = pen.connect_from(n);
        c.write_all(b"x").expect("write");
        conns.push(c);
        wait_for(WAIT, "a backend to accept", || {
            (backends.iter().map(|b| b.accepted()).sum::<usize>() == before + 1).then_some(())
        });
        wait_for(WAIT, "pen to count the connection", || {
            (open_conns(pen) == counted + 1).then_some(())
        });
    }
    conns
}

#[test]
fn weight_splits_held_connections_one_to_three() {
    let (a, b) = (Backend::hold(), Backend::hold());
    let pen = PenBuilder::new()
        .opts(&["-W"])
        .server(format!("{}:0:0:1", a.spec()))
        .server(format!("{}:0:0:3", b.spec()))
        .start();
    let _conns = hold_from(&pen, &[2, 3, 4, 5], &[&a, &b]);
    assert_eq!(
        (a.accepted(), b.accepted()),
        (1, 3),
        "weights 1:3 over 4 held connections"
    );
}

#[test]
fn weight_zero_server_is_never_chosen() {
    let (zero, one) = (Backend::hold(), Backend::hold());
    let pen = PenBuilder::new()
        .opts(&["-W"])
        .server(format!("{}:0:0:0", zero.spec()))
        .server(format!("{}:0:0:1", one.spec()))
        .start();
    let _conns = hold_from(&pen, &[2, 3, 4, 5], &[&zero, &one]);
    assert_eq!((zero.accepted(), one.accepted()), (0, 4));
}

#[test]
fn prio_lowest_gets_everything_while_up() {
    let (a, b, c) = (Backend::name("A"), Backend::name("B"), Backend::name("C"));
    let pen = PenBuilder::new()
        .opts(&["-O", "prio"])
        .server(format!("{}:0:0:0:3", a.spec()))
        .server(format!("{}:0:0:0:1", b.spec()))
        .server(format!("{}:0:0:0:2", c.spec()))
        .start();
    let got: Vec<String> = (1..=8).map(|n| pen.fetch_from(n)).collect();
    assert!(
        got.iter().all(|g| g == "B"),
        "prio 1 server must get every client: {got:?}"
    );
}

#[test]
fn soft_and_hard_limits() {
    // Server 0: max 1, hard 2, prio 0 (first choice); server 1: unlimited, prio 1.
    let (s0, s1) = (Backend::hold(), Backend::hold());
    let pen = PenBuilder::new()
        .opts(&["-O", "prio"])
        .server(format!("{}:1:2:0:0", s0.spec()))
        .server(format!("{}:0:0:0:1", s1.spec()))
        .start();
    let both = [&s0, &s1];
    let _c1 = hold_from(&pen, &[2], &both);
    assert_eq!(
        (s0.accepted(), s1.accepted()),
        (1, 0),
        "first client gets server 0"
    );
    let _c2 = hold_from(&pen, &[3], &both);
    assert_eq!(
        (s0.accepted(), s1.accepted()),
        (1, 1),
        "a new client is over the soft limit"
    );
    let _c3 = hold_from(&pen, &[2], &both);
    assert_eq!(
        (s0.accepted(), s1.accepted()),
        (2, 1),
        "a returning client may use up to hard"
    );
    let _c4 = hold_from(&pen, &[2], &both);
    assert_eq!(
        (s0.accepted(), s1.accepted()),
        (2, 2),
        "no one beyond the hard limit"
    );
}

#[test]
fn tracking_expires_after_dash_t_seconds() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-O", "prio", "-T", "1"])
        .server(format!("{}:0:0:0:0", a.spec()))
        .server(format!("{}:0:0:0:1", b.spec()))
        .start();
    assert_eq!(pen.fetch_from(2), "A", "lowest prio first");
    // Swap priorities: a new client goes to B, the tracked one stays on A until -T expires.
    assert_eq!(pen.ctl("server 0 prio 1"), "");
    assert_eq!(pen.ctl("server 1 prio 0"), "");
    assert_eq!(pen.fetch_from(3), "B", "new client, new lowest prio");
    assert_eq!(pen.fetch_from(2), "A", "tracked client stays");
    if is_c_pen() {
        return; // C pen 0.34.1 never forgets the entry here (still "A" after 4 s)
    }
    // Wait out -T (each connection would refresh the entry, so poll `recent 1` instead: it
    // lists the clients seen within the last second, and the entry expires once not listed).
    wait_until(WAIT, "127.0.0.2 to drop out of `recent 1`", || {
        !pen.ctl("recent 1").contains("127.0.0.2 ")
    });
    assert_eq!(
        pen.fetch_from(2),
        "B",
        "tracking of 127.0.0.2 expired after -T 1"
    );
}

#[test]
fn tracking_forever_without_dash_t() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-O", "prio"])
        .server(format!("{}:0:0:0:0", a.spec()))
        .server(format!("{}:0:0:0:1", b.spec()))
        .start();
    assert_eq!(pen.fetch_from(2), "A");
    assert_eq!(pen.ctl("server 0 prio 1"), "");
    assert_eq!(pen.ctl("server 1 prio 0"), "");
    for _ in 0..3 {
        assert_eq!(pen.fetch_from(2), "A", "tracked client stays");
    }
    assert_eq!(pen.fetch_from(3), "B");
}

#[test]
fn emergency_server_when_every_server_is_at_its_limit() {
    let (s0, e) = (Backend::hold(), Backend::hold());
    let pen = PenBuilder::new()
        .opts(&["-e", &e.spec()])
        .server(format!("{}:1:1", s0.spec()))
        .start();
    let _c1 = hold_from(&pen, &[2], &[&s0, &e]);
    assert_eq!((s0.accepted(), e.accepted()), (1, 0));
    let mut c2 = pen.connect_from(3);
    c2.write_all(b"x").expect("write");
    wait_for(
        WAIT,
        "the emergency server to get the second client",
        || (e.accepted() == 1).then_some(()),
    );
    assert_eq!(s0.accepted(), 1);
}

#[test]
fn hash_with_round_robin_mixes_in_the_port() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-h", "-r"])
        .server(a.spec())
        .server(b.spec())
        .start();
    let got: BTreeSet<String> = (0..16).map(|_| pen.fetch_from(2)).collect();
    assert_eq!(
        got.len(),
        2,
        "16 connections from one address, different ports: {got:?}"
    );
}

#[test]
fn server_counters_count_and_return_to_zero() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = pen.connect();
        c.write_all(b"abc").expect("write");
        assert_eq!(
            super::harness::peek(&mut c, WAIT),
            super::harness::Peek::Data(b"abc".to_vec())
        );
        conns.push(c);
    }
    wait_for(WAIT, "conn 3", || (open_conns(&pen) == 3).then_some(()));
    drop(conns);
    wait_for(WAIT, "conn 0 and byte counters", || {
        let l = &pen.servers()[0];
        (l.contains(" conn 0 ") && l.ends_with(" sx 9 rx 9")).then_some(())
    });
}
