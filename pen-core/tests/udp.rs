//! Library-level UDP tests (`-U`): a `Balancer` in-process with `config.udp = true` against
//! DNS-like responders on loopback (each answers a datagram with its name, `:`, the payload).

// Test code: a panic is a failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable
)]

mod common;
use common::{addr_of, wait_until};

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use pen_core::addr::ListenAddr;
use pen_core::{Balancer, Config};

/// A responder: answers every datagram with `NAME:PAYLOAD`, from the socket it came to.
fn responder_at(at: &str, name: &str) -> SocketAddr {
    let s = UdpSocket::bind(at).unwrap();
    let addr = s.local_addr().unwrap();
    let name = name.to_string();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut out = format!("{name}:").into_bytes();
            out.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&out, from);
        }
    });
    addr
}

fn responder(name: &str) -> SocketAddr {
    responder_at("127.0.0.1:0", name)
}

/// A UDP port with nothing behind it: sending there draws an ICMP port unreachable.
fn closed_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start(servers: &[SocketAddr], tweak: impl FnOnce(&mut Config)) -> Balancer {
    let mut c = common::config(servers);
    c.udp = true;
    tweak(&mut c);
    Balancer::start(c).unwrap()
}

/// A client socket on 127.0.0.1 (its own source port: its own flow).
fn client() -> UdpSocket {
    client_at("127.0.0.1:0")
}

fn client_at(at: &str) -> UdpSocket {
    let s = UdpSocket::bind(at).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// Sends `payload` to pen and returns the answer, or `None` if none came within 500 ms.
fn ask(c: &UdpSocket, pen: SocketAddr, payload: &str) -> Option<String> {
    c.send_to(payload.as_bytes(), pen).unwrap();
    let mut buf = [0u8; 65536];
    match c.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// The responder's name in an answer.
fn who(answer: &str) -> &str {
    answer.split(':').next().unwrap()
}

/// Asks until an answer comes (at most 20 tries).
fn ask_until_answered(c: &UdpSocket, pen: SocketAddr, payload: &str) -> String {
    for _ in 0..20 {
        if let Some(a) = ask(c, pen, payload) {
            return a;
        }
    }
    panic!("no answer to {payload:?} after 20 tries");
}

/// The `servers` line of server `n`.
fn server_line(b: &Balancer, n: usize) -> String {
    b.apply("servers")
        .unwrap()
        .lines()
        .nth(n)
        .unwrap()
        .to_string()
}

fn field(line: &str, name: &str) -> u64 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("no {name} in {line:?}")
}

#[test]
fn relays_both_ways_and_tracks_the_client() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = start(&[a, b], |_| {});
    let at = addr_of(&pen);
    let c = client();
    let first = ask_until_answered(&c, at, "q0");
    assert!(first.ends_with(":q0"), "{first}");
    for i in 1..10 {
        let ans = ask(&c, at, &format!("q{i}")).expect("answer");
        assert_eq!(ans, format!("{}:q{i}", who(&first)));
    }
    // Another source port of the same IP is a new flow, tracked to the same server.
    let c2 = client();
    assert_eq!(who(&ask_until_answered(&c2, at, "x")), who(&first));
    assert_eq!(pen.active_connections(), 2);
    pen.stop();
}

#[test]
fn round_robin_spreads_flows_evenly() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = start(&[a, b], |c| c.settings.roundrobin = true);
    let at = addr_of(&pen);
    let mut counts = [0; 2];
    let mut clients = Vec::new();
    for i in 0..20 {
        let c = client();
        let ans = ask_until_answered(&c, at, &format!("q{i}"));
        counts[usize::from(who(&ans) == "b")] += 1;
        clients.push(c);
    }
    assert_eq!(counts, [10, 10]);
    let (l0, l1) = (server_line(&pen, 0), server_line(&pen, 1));
    assert_eq!((field(&l0, "conn"), field(&l1, "conn")), (10, 10));
    pen.stop();
}

#[test]
fn counters_per_server_and_per_client() {
    let a = responder("a");
    let pen = start(&[a], |c| c.settings.idle_timeout_secs = 1);
    let at = addr_of(&pen);
    let c = client();
    ask_until_answered(&c, at, "hello");
    // The worker counts a turn's bytes after relaying them: the answer may arrive first.
    wait_until("bytes counted", || {
        let line = server_line(&pen, 0);
        (field(&line, "sx"), field(&line, "rx")) == (5, 7)
    });
    assert_eq!(field(&server_line(&pen, 0), "conn"), 1);
    // The client's bytes reach `recent` when its flow ends.
    wait_until("flow to expire", || pen.active_connections() == 0);
    let recent = pen.apply("recent").unwrap();
    assert!(
        recent.contains("127.0.0.1 connects 1 sx 7 rx 5"),
        "{recent}"
    );
    pen.stop();
}

#[test]
fn blacklisting_moves_flows_and_all_blacklisted_means_no_answer() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = start(&[a, b], |_| {});
    let at = addr_of(&pen);
    let c = client();
    let first = ask_until_answered(&c, at, "q");
    let (mine, other) = if who(&first) == "a" {
        (0, "b")
    } else {
        (1, "a")
    };
    pen.apply(&format!("server {mine} blacklist 60")).unwrap();
    // The existing flow moves on its next datagram; a new client goes there too.
    assert_eq!(who(&ask(&c, at, "q").expect("answer")), other);
    assert_eq!(who(&ask_until_answered(&client(), at, "q")), other);
    pen.apply(&format!("server {} blacklist 60", 1 - mine))
        .unwrap();
    assert_eq!(ask(&c, at, "q"), None);
    assert_eq!(ask(&client(), at, "q"), None);
    pen.apply(&format!("server {mine} blacklist 0")).unwrap();
    assert_eq!(who(&ask_until_answered(&c, at, "q")), who(&first));
    pen.stop();
}

#[test]
fn port_unreachable_blacklists_and_the_next_datagram_fails_over() {
    let (dead, b) = (closed_port(), responder("b"));
    // Server 0 is the first round-robin choice of a fresh balancer.
    let pen = start(&[dead, b], |c| c.settings.blacklist_secs = 60);
    let at = addr_of(&pen);
    let c = client();
    let ans = ask_until_answered(&c, at, "q");
    assert_eq!(ans, "b:q");
    let line = server_line(&pen, 0);
    assert!(line.contains("blacklisted"), "{line}");
    assert_eq!(field(&line, "conn"), 0, "{line}");
    assert!(pen.metrics().contains("pen_blacklistings_total 1"));
    assert_eq!(who(&ask_until_answered(&client(), at, "q")), "b");
    pen.stop();
}

#[test]
fn nowhere_to_fail_over_drops_and_closes_the_flow() {
    let dead = closed_port();
    let pen = start(&[dead], |_| {});
    let at = addr_of(&pen);
    let c = client();
    assert_eq!(ask(&c, at, "q1"), None);
    wait_until("server 0 blacklisted", || {
        server_line(&pen, 0).contains("blacklisted")
    });
    assert_eq!(ask(&c, at, "q2"), None);
    wait_until("flow closed", || pen.active_connections() == 0);
    assert_eq!(field(&server_line(&pen, 0), "conn"), 0);
    pen.stop();
}

#[test]
fn emergency_server_when_none_is_available() {
    let (dead, e) = (closed_port(), responder("e"));
    let pen = start(&[dead], |c| c.emergency = Some(common::spec(e)));
    let at = addr_of(&pen);
    assert_eq!(ask_until_answered(&client(), at, "q"), "e:q");
    pen.stop();
}

#[test]
fn stubborn_does_not_fail_over_within_a_flow() {
    let (dead, b) = (closed_port(), responder("b"));
    let pen = start(&[dead, b], |c| c.settings.stubborn = true);
    let at = addr_of(&pen);
    let c = client();
    // The flow to server 0 closes instead of moving; the client's next datagram starts a
    // new flow, which goes to the server still available.
    assert_eq!(ask_until_answered(&c, at, "q"), "b:q");
    assert!(pen.metrics().contains("pen_failovers_total 0"));
    pen.stop();
}

#[test]
fn ipv6_listen_and_ipv6_servers() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 unavailable");
        return;
    }
    let (a, b) = (responder_at("[::1]:0", "a6"), responder("b4"));
    let pen = start(&[a, b], |c| {
        c.listen = ListenAddr::Inet("[::1]:0".parse().unwrap());
        c.settings.roundrobin = true;
    });
    let at = addr_of(&pen);
    assert!(at.is_ipv6());
    let mut seen = Vec::new();
    for i in 0..4 {
        let c = client_at("[::1]:0");
        seen.push(who(&ask_until_answered(&c, at, &format!("q{i}"))).to_string());
    }
    assert_eq!(seen, ["a6", "b4", "a6", "b4"]);
    pen.stop();
}

#[test]
fn flows_expire_after_the_idle_time() {
    let a = responder("a");
    let pen = start(&[a], |c| c.settings.idle_timeout_secs = 1);
    let at = addr_of(&pen);
    let c = client();
    ask_until_answered(&c, at, "q");
    assert_eq!(pen.active_connections(), 1);
    wait_until("flow to expire", || pen.active_connections() == 0);
    assert_eq!(field(&server_line(&pen, 0), "conn"), 0);
    assert!(pen.metrics().contains("pen_idle_timeouts_total 1"));
    // The client is still served: a new flow.
    assert_eq!(ask_until_answered(&c, at, "again"), "a:again");
    pen.stop();
}

#[test]
fn flow_count_is_bounded_and_the_oldest_goes_first() {
    let a = responder("a");
    let pen = start(&[a], |c| {
        c.workers = 1;
        c.conn_max = 2;
    });
    let at = addr_of(&pen);
    let cs: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(
            ask_until_answered(c, at, &format!("q{i}")),
            format!("a:q{i}")
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pen.active_connections(), 2);
    assert_eq!(field(&server_line(&pen, 0), "conn"), 2);
    // Client 1 is still in a flow (the oldest, client 0, was evicted): answering it makes
    // no new flow, so the count stays.
    assert_eq!(ask_until_answered(&cs[1], at, "x"), "a:x");
    assert_eq!(pen.active_connections(), 2);
    pen.stop();
}

/// At the `-x` limit, sources holding one flow each are not pushed out: a new source's
/// datagram is dropped and counted; a source with several flows gives up its own stalest.
#[test]
fn at_the_limit_single_flow_sources_keep_their_flows() {
    let a = responder("a");
    let pen = start(&[a], |c| {
        c.workers = 1;
        c.conn_max = 2;
    });
    let at = addr_of(&pen);
    let (one, two) = (client_at("127.0.0.1:0"), client_at("127.0.0.2:0"));
    assert_eq!(ask_until_answered(&one, at, "1"), "a:1");
    assert_eq!(ask_until_answered(&two, at, "2"), "a:2");
    // A third source: nobody holds two flows, so nothing is evicted.
    assert_eq!(ask(&client_at("127.0.0.3:0"), at, "3"), None);
    assert!(
        pen.metrics().contains("pen_accept_pauses_total 1"),
        "{}",
        pen.metrics()
    );
    assert_eq!(pen.active_connections(), 2);
    // Both flows live on: answering them makes no new flow.
    assert_eq!(ask_until_answered(&one, at, "x"), "a:x");
    assert_eq!(ask_until_answered(&two, at, "y"), "a:y");
    assert_eq!(pen.active_connections(), 2);
    // `conn_per_client 1`: a second port of 127.0.0.1 replaces that source's own flow.
    pen.apply("conn_per_client 1").unwrap();
    let again = client_at("127.0.0.1:0");
    assert_eq!(ask_until_answered(&again, at, "z"), "a:z");
    assert_eq!(pen.active_connections(), 2);
    assert_eq!(ask_until_answered(&two, at, "w"), "a:w");
    assert_eq!(pen.active_connections(), 2, "127.0.0.2 kept its flow");
    pen.stop();
}

#[test]
fn client_acl_denies_by_dropping_and_server_acl_applies() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = start(&[a, b], |_| {});
    let at = addr_of(&pen);
    pen.apply("acl 1 deny 127.0.0.1").unwrap();
    pen.apply("client_acl 1").unwrap();
    assert_eq!(ask(&client(), at, "q"), None);
    assert!(pen.metrics().contains("reason=\"acl\"} 1"));
    pen.apply("client_acl 0").unwrap();
    // Server 0 only for clients list 2 permits (none of ours): everyone goes to b.
    pen.apply("acl 2 permit 10.0.0.0 255.0.0.0").unwrap();
    pen.apply("server 0 acl 2").unwrap();
    for _ in 0..4 {
        assert_eq!(who(&ask_until_answered(&client(), at, "q")), "b");
    }
    pen.stop();
}

#[test]
fn hash_and_weight_modes_select_as_for_tcp() {
    let (a, b) = (responder("a"), responder("b"));
    // Weight 1 against 3: of 8 flows, 2 and 6.
    let pen = start(&[a, b], |c| {
        c.settings.weight = true;
        c.settings.roundrobin = true;
        c.servers[0].weight = 1;
        c.servers[1].weight = 3;
    });
    let at = addr_of(&pen);
    let mut keep = Vec::new();
    let mut counts = [0; 2];
    for i in 0..8 {
        let c = client();
        counts[usize::from(who(&ask_until_answered(&c, at, &format!("{i}"))) == "b")] += 1;
        keep.push(c);
    }
    assert_eq!(counts, [2, 6]);
    pen.stop();
    // Hash: the same client IP always lands on the same server, whatever its port.
    let pen = start(&[a, b], |c| c.settings.hash = true);
    let at = addr_of(&pen);
    let first = who(&ask_until_answered(&client(), at, "h")).to_string();
    for _ in 0..4 {
        assert_eq!(who(&ask_until_answered(&client(), at, "h")), first);
    }
    pen.stop();
}

#[test]
fn a_unix_socket_listen_address_is_refused() {
    let mut c = common::config(&[responder("a")]);
    c.udp = true;
    c.listen = ListenAddr::Unix(std::env::temp_dir().join("pen-udp-test.sock"));
    let err = Balancer::start(c).err().expect("an error");
    assert!(err.to_string().contains("Unix socket"), "{err}");
}

#[test]
fn denied_clients_go_to_the_abuse_server() {
    let (a, abuse) = (responder("a"), responder("abuse"));
    let pen = start(&[a], |c| c.abuse = Some(common::spec(abuse)));
    let at = addr_of(&pen);
    pen.apply("acl 1 deny 127.0.0.1").unwrap();
    pen.apply("client_acl 1").unwrap();
    assert_eq!(ask_until_answered(&client(), at, "q"), "abuse:q");
    pen.apply("client_acl 0").unwrap();
    assert_eq!(ask_until_answered(&client(), at, "q"), "a:q");
    pen.stop();
}

#[test]
fn listen_to_another_address_is_refused_in_udp_mode() {
    let b = start(&[responder("a")], |_| {});
    let before = b.listen_addr();
    let err = b.apply("listen 127.0.0.1:0").unwrap_err().to_string();
    assert!(err.contains("-U"), "{err}");
    assert_eq!(b.listen_addr(), before, "the listener did not move");
    b.stop();
}
