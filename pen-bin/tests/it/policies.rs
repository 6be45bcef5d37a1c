//! [ours] The policies of issue 14 (docs/policies.md): `maglev`, `leastconn`, `p2c`,
//! `random`, `maglev_table`, `lookup`, and `mode`/`write` with them. C pen ignores these
//! commands (`do_cmd: ignoring command`), so every test here is ours only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpStream};

use super::backends::Backend;
use super::harness::{
    connect_from, is_c_pen, read_to_eof, wait_until, Pen, PenBuilder, ScratchDir, WAIT,
};

/// 1,000 loopback client addresses 127.0.x.y (x 0..4, y 1..=250).
fn clients() -> impl Iterator<Item = Ipv4Addr> {
    (0..1000u32).map(|k| Ipv4Addr::new(127, 0, (k / 250) as u8, (k % 250 + 1) as u8))
}

/// What a "name" backend said to a client from `src`.
fn fetch_from(pen: &Pen, src: Ipv4Addr) -> String {
    let mut s = connect_from(src, pen.addr());
    read_to_eof(&mut s)
}

/// Four "name" backends A-D and a pen over them in that order with `opts`.
fn four(opts: &[&str]) -> (Vec<Backend>, Pen) {
    let backends: Vec<Backend> = ["A", "B", "C", "D"].map(Backend::name).into();
    let mut b = PenBuilder::new().opts(opts);
    for s in &backends {
        b = b.server(s.spec());
    }
    (backends, b.start())
}

/// C pen's `mode` reply with nothing on, then the policy when one is.
const C_MODE: &str = "no hash no roundrobin no stubborn no weight no prio";

#[test]
fn each_policy_spreads_a_thousand_clients_over_four_servers() {
    if is_c_pen() {
        return;
    }
    for policy in ["maglev", "leastconn", "p2c", "random"] {
        let (_backends, pen) = four(&["-O", policy]);
        assert_eq!(pen.ctl("mode"), format!("{C_MODE} {policy}\n"));
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for src in clients() {
            *counts.entry(fetch_from(&pen, src)).or_default() += 1;
        }
        let names: BTreeSet<&str> = counts.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from(["A", "B", "C", "D"]),
            "{policy}: {counts:?}"
        );
        // 250 each on average; a binomial share of 1,000 at p = 1/4 has a standard deviation
        // of 13.7, so 150..=350 is over 7 of them (leastconn and p2c, which see the
        // connections come and go, are closer still).
        for (name, &c) in &counts {
            assert!(
                (150..=350).contains(&c),
                "{policy}: {name} got {c} of 1000: {counts:?}"
            );
        }
    }
}

/// The number of connections each backend has accepted, once `total` have arrived.
fn accepted(backends: &[Backend], total: usize) -> Vec<usize> {
    wait_until(WAIT, "the backends to accept", || {
        backends.iter().map(Backend::accepted).sum::<usize>() >= total
    });
    backends.iter().map(Backend::accepted).collect()
}

#[test]
fn leastconn_sends_new_clients_to_the_server_with_fewest_held_connections() {
    if is_c_pen() {
        return;
    }
    let backends: Vec<Backend> = (0..3).map(|_| Backend::hold()).collect();
    let mut b = PenBuilder::new().opts(&["-O", "leastconn"]);
    for s in &backends {
        b = b.server(s.spec());
    }
    let pen = b.start();
    // Server 2 out of service: six held clients share servers 0 and 1.
    assert_eq!(pen.ctl("server 2 maint"), "");
    let mut held: Vec<TcpStream> = (1..=6)
        .map(|n| connect_from(Ipv4Addr::new(127, 0, 1, n), pen.addr()))
        .collect();
    assert_eq!(accepted(&backends, 6), [3, 3, 0]);
    // Back in service with no connection: the next three new clients all go to it (round
    // robin would send one there and the others to 0 and 1).
    assert_eq!(pen.ctl("server 2 ready"), "");
    held.extend((7..=9).map(|n| connect_from(Ipv4Addr::new(127, 0, 1, n), pen.addr())));
    assert_eq!(accepted(&backends, 9), [3, 3, 3]);
    // Weights are ratios: server 0 at weight 3 takes three times its neighbours' load.
    pen.ctl("server 0 weight 3");
    held.extend((10..=15).map(|n| connect_from(Ipv4Addr::new(127, 0, 1, n), pen.addr())));
    assert_eq!(accepted(&backends, 15), [9, 3, 3]);
    drop(held);
}

/// The backend name each pen gives every client of `srcs`.
fn names(pen: &Pen, srcs: &[Ipv4Addr]) -> Vec<String> {
    srcs.iter().map(|&s| fetch_from(pen, s)).collect()
}

#[test]
fn maglev_failover_is_the_same_in_two_pens_and_moves_only_the_failed_servers_clients() {
    if is_c_pen() {
        return;
    }
    let backends: Vec<Backend> = ["A", "B", "C", "D"].map(Backend::name).into();
    let spec = |i: usize| backends[i].spec();
    // Without tracking (-N; -r would add the port to the key), each connection is chosen
    // afresh; the second pen lists the servers in another order.
    let one = PenBuilder::new()
        .opts(&["-O", "maglev", "-N"])
        .server(spec(0))
        .server(spec(1))
        .server(spec(2))
        .server(spec(3))
        .start();
    let two = PenBuilder::new()
        .opts(&["-O", "maglev", "-N"])
        .server(spec(3))
        .server(spec(1))
        .server(spec(0))
        .server(spec(2))
        .start();
    let srcs: Vec<Ipv4Addr> = clients().step_by(5).collect();
    let before = names(&one, &srcs);
    assert_eq!(before, names(&two, &srcs), "same servers, same choices");
    // Server B (1 in both) goes out of service in both pens.
    assert_eq!(one.ctl("server 1 maint"), "");
    assert_eq!(two.ctl("server 1 maint"), "");
    let after = names(&one, &srcs);
    assert_eq!(after, names(&two, &srcs), "the same failover in both pens");
    let mut moved_to = BTreeSet::new();
    for (b, a) in before.iter().zip(&after) {
        if b == "B" {
            assert_ne!(a, "B");
            moved_to.insert(a.clone());
        } else {
            assert_eq!(a, b, "only B's clients move");
        }
    }
    assert!(moved_to.len() >= 2, "B's clients spread: {moved_to:?}");
    // B back: everyone is where they were.
    one.ctl("server 1 ready");
    assert_eq!(names(&one, &srcs), before);
}

/// `lookup ADDR` on `pen`, as the address of the server it names.
fn lookup(pen: &Pen, order: &[String], addr: &str) -> String {
    let reply = pen.ctl(&format!("lookup {addr}"));
    let n: usize = reply
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("lookup {addr}: {reply:?}"));
    order[n].clone()
}

#[test]
fn lookup_agrees_between_two_pens_with_the_servers_in_another_order() {
    if is_c_pen() {
        return;
    }
    let backends: Vec<Backend> = ["A", "B", "C", "D", "E"].map(Backend::name).into();
    let specs: Vec<String> = backends.iter().map(Backend::spec).collect();
    let order_two: Vec<String> = [4, 2, 0, 3, 1].map(|i| specs[i].clone()).into();
    let start = |order: &[String], opts: &[&str]| {
        let mut b = PenBuilder::new().opts(opts);
        for s in order {
            b = b.server(s.clone());
        }
        b.start()
    };
    // Weights belong to the server, whatever its number: C is 2 in one, 1 in two.
    let one = start(&specs, &["-O", "maglev", "-O", "server 2 weight 3"]);
    let two = start(&order_two, &["-O", "maglev", "-O", "server 1 weight 3"]);
    let mut used = BTreeSet::new();
    for k in 0..300u32 {
        let addr = Ipv4Addr::from(0x0a00_0000 + k * 7919).to_string();
        let a = lookup(&one, &specs, &addr);
        assert_eq!(a, lookup(&two, &order_two, &addr), "{addr}");
        used.insert(a);
    }
    assert_eq!(used.len(), 5, "every server is someone's");
    // The answer is where a new client goes.
    for src in clients().take(40) {
        let name = fetch_from(&one, src);
        let at = lookup(&one, &specs, &src.to_string());
        let i = specs.iter().position(|s| *s == at).unwrap();
        assert_eq!(name, ["A", "B", "C", "D", "E"][i], "client {src}");
    }
    // A different table size is a different table, still the same in both pens.
    one.ctl("maglev_table 101");
    two.ctl("maglev_table 101");
    assert_eq!(one.ctl("maglev_table"), "101\n");
    for k in 0..50u32 {
        let addr = Ipv4Addr::from(0x0a00_0000 + k * 7919).to_string();
        assert_eq!(lookup(&one, &specs, &addr), lookup(&two, &order_two, &addr));
    }
}

#[test]
fn mode_write_and_reload_carry_the_policy() {
    if is_c_pen() {
        return;
    }
    let (_b, pen) = four(&[]);
    assert_eq!(pen.ctl("mode"), format!("{C_MODE}\n"), "C pen's reply");
    assert_eq!(pen.ctl("maglev_table"), "65537\n");
    for (cmd, shown) in [
        ("maglev", " maglev"),
        ("p2c", " p2c"),
        ("no maglev", " p2c"),
        ("random", " random"),
        ("leastconn", " leastconn"),
        ("no leastconn", ""),
        ("hash", ""),
    ] {
        assert_eq!(pen.ctl(cmd), "", "{cmd}");
        let base = if cmd == "hash" {
            "hash no roundrobin no stubborn no weight no prio"
        } else {
            C_MODE
        };
        assert_eq!(pen.ctl("mode"), format!("{base}{shown}\n"), "after {cmd}");
    }
    let refused = pen.ctl("maglev_table 65536");
    assert!(
        refused.contains("'65536'") && refused.contains("prime"),
        "{refused:?}"
    );
    assert_eq!(pen.ctl("maglev_table 1009"), "1009\n");
    assert_eq!(pen.ctl("maglev"), "");
    let dir = ScratchDir::new("policies");
    let out = dir.0.join("written.cfg");
    assert_eq!(pen.ctl(&format!("write {}", out.display())), "");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("\nmaglev_table 1009\n") && text.contains("\nmaglev\n"),
        "{text}"
    );
    let again = PenBuilder::new()
        .opts(&["-F", &out.display().to_string()])
        .start();
    assert_eq!(
        again.ctl("mode"),
        "hash no roundrobin no stubborn no weight no prio maglev\n"
    );
    assert_eq!(again.ctl("maglev_table"), "1009\n");
    // A reload of a file that switches it off.
    std::fs::write(&out, "leastconn\nno leastconn\nno hash\n").unwrap();
    again.signal("HUP");
    wait_until(WAIT, "the reload", || {
        again.ctl("mode") == format!("{C_MODE}\n")
    });
}

#[test]
fn maglev_failover_after_a_refused_connect_is_the_same_in_two_pens() {
    if is_c_pen() {
        return;
    }
    let live: Vec<Backend> = ["A", "C", "D"].map(Backend::name).into();
    // B's port is closed: every connect to it is refused, and with `-b 0` it is never
    // blacklisted, so each of its clients fails over from a failed connect.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let start = |order: [&str; 4]| {
        let mut b = PenBuilder::new().opts(&["-O", "maglev", "-N", "-b", "0"]);
        for s in order {
            b = b.server(s.to_string());
        }
        b.start()
    };
    let (a, c, d) = (live[0].spec(), live[1].spec(), live[2].spec());
    let one = start([&a, &dead, &c, &d]);
    let two = start([&d, &c, &dead, &a]);
    let srcs: Vec<Ipv4Addr> = clients().step_by(5).collect();
    let mut moved_to = BTreeSet::new();
    for &src in &srcs {
        let (x, y) = (fetch_from(&one, src), fetch_from(&two, src));
        assert_eq!(x, y, "client {src}");
        if one.ctl(&format!("lookup {src}")) == "1\n" {
            moved_to.insert(x);
        }
    }
    assert!(moved_to.len() >= 2, "B's clients spread: {moved_to:?}");
}
