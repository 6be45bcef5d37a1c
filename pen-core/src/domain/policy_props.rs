//! Properties of server selection, checked against references written from PEN-SPEC 2 rather
//! than against [`Selector::available`] itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use proptest::prelude::*;

use super::{choose, client_hash, DefaultPolicy, Modes, Policy, SelectionContext, Selector};
use crate::domain::acl::AclSet;
use crate::domain::acl::{AclAction, AclEntry, AclPattern};
use crate::domain::health::HealthSource;
use crate::domain::server::{ServerConf, ServerId, ServerTable};

/// One generated server: its configuration and its live state.
#[derive(Clone, Debug)]
struct Srv {
    has_addr: bool,
    blacklisted: bool,
    conns: u32,
    max: u32,
    hard: u32,
    weight: u32,
    prio: u32,
    acl: Option<u8>,
}

fn srv() -> impl Strategy<Value = Srv> {
    (
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.3),
        0u32..4,
        0u32..4,
        0u32..4,
        0u32..3,
        0u32..3,
        prop::option::weighted(0.3, 0u8..3),
    )
        .prop_map(
            |(has_addr, blacklisted, conns, max, hard, weight, prio, acl)| Srv {
                has_addr,
                blacklisted,
                conns,
                max,
                hard,
                weight,
                prio,
                acl,
            },
        )
}

/// C pen's four modes in any combination, with or without one of the policies of issue 14
/// (a small prime Maglev table keeps the cases fast): every property below covers them all,
/// in particular that `maglev`, `leastconn`, `p2c` and `random` never pick an unavailable
/// server and fail over through every available one.
fn modes() -> impl Strategy<Value = Modes> {
    use super::Balance;
    let balance = prop_oneof![
        Just(Balance::Modes),
        Just(Balance::Maglev),
        Just(Balance::LeastConn),
        Just(Balance::P2c),
        Just(Balance::Random),
    ];
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        balance,
        prop_oneof![Just(2u32), Just(3), Just(101), Just(257)],
    )
        .prop_map(
            |((hash, roundrobin, weight, prio), balance, maglev_table)| Modes {
                hash,
                roundrobin,
                weight,
                prio,
                balance,
                maglev_table,
            },
        )
}

const NOW: u64 = 1_000_000;

fn table(servers: &[Srv]) -> ServerTable {
    let mut t = ServerTable::default();
    let confs: Vec<ServerConf> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| ServerConf {
            addr: s
                .has_addr
                .then(|| SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16))),
            max: s.max,
            hard: s.hard,
            weight: s.weight,
            prio: s.prio,
            acl: s.acl,
            admin: Default::default(),
            check: None,
            proxy: Default::default(),
            dns: None,
        })
        .collect();
    t.reconfigure(&confs);
    for (i, s) in servers.iter().enumerate() {
        let Some(srv) = t.get(ServerId(i)) else {
            continue;
        };
        srv.conns.store(s.conns, Relaxed);
        if s.blacklisted {
            srv.blacklist(NOW, 10);
        }
    }
    t
}

/// ACL list 0 denies everyone, 1 permits everyone, 2 permits only 10.0.0.0/8.
fn acls() -> AclSet {
    let v4 = |action, addr: [u8; 4], mask: [u8; 4]| AclEntry {
        action,
        pattern: AclPattern::V4 {
            addr: addr.into(),
            mask: mask.into(),
        },
    };
    let all_v6 = |action| AclEntry {
        action,
        pattern: AclPattern::V6 {
            addr: std::net::Ipv6Addr::UNSPECIFIED,
            len: 0,
        },
    };
    let mut a = AclSet::default();
    a.push(0, v4(AclAction::Deny, [0; 4], [0; 4]));
    a.push(0, all_v6(AclAction::Deny));
    a.push(1, v4(AclAction::Permit, [0; 4], [0; 4]));
    a.push(1, all_v6(AclAction::Permit));
    a.push(2, v4(AclAction::Permit, [10, 0, 0, 0], [255, 0, 0, 0]));
    a
}

/// The reference: may server `s` take `client` now (`tracked`: it is the client's remembered
/// server, admitted up to the hard limit only)?
fn may_take(s: &Srv, client: IpAddr, tracked: bool, m: Modes) -> bool {
    let acl_ok = match s.acl {
        None | Some(1) => true,
        Some(0) => false,
        Some(_) => matches!(client.to_canonical(), IpAddr::V4(v) if v.octets()[0] == 10),
    };
    let soft_ok = tracked || s.max == 0 || s.conns < s.max;
    let hard_ok = s.hard == 0 || s.conns < s.hard;
    s.has_addr && !s.blacklisted && !(m.weight && s.weight == 0) && soft_ok && hard_ok && acl_ok
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..2, any::<u8>()).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10 + a, 0, 0, b))),
        any::<u128>().prop_map(|n| IpAddr::from(n.to_be_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The first choice is never a server that lacks an address, is blacklisted, is at its
    /// soft limit (unless it is the client's tracked server) or hard limit, has weight 0 in
    /// weight mode, or whose ACL denies the client; and there is a first choice whenever
    /// some server may take the client. Failover from it visits every other server that may
    /// take the client exactly once, and nothing else.
    #[test]
    fn selection_respects_every_constraint(
        servers in prop::collection::vec(srv(), 1..8),
        m in modes(),
        c in client(),
        tracked in prop::option::of(0usize..10),
        rr_start in 0usize..12,
    ) {
        let t = table(&servers);
        let acls = acls();
        let sel = Selector::new(&t, &acls, NOW, m);
        let rr = AtomicUsize::new(rr_start);
        let tracked_id = tracked.map(ServerId);
        let ok = |i: usize, tr: bool| servers.get(i).is_some_and(|s| may_take(s, c, tr, m));
        let tracked_ok = !m.roundrobin && tracked.is_some_and(|i| ok(i, true));
        let any = (0..servers.len()).any(|i| ok(i, false)) || tracked_ok;
        match sel.first_choice(c, 4321, tracked_id, &rr) {
            None => prop_assert!(!any, "no choice, but some server may take the client"),
            Some(id) => {
                let via_tracking = Some(id) == tracked_id && !m.roundrobin;
                prop_assert!(ok(id.0, via_tracking), "chose {} ({:?})", id.0, servers[id.0]);
                if tracked_ok {
                    prop_assert_eq!(Some(id), tracked_id, "tracking comes first");
                }
                // Failover round from the first choice.
                let mut visited = vec![id.0];
                let mut last = id;
                while let Some(next) = sel.failover_after(id, last, c) {
                    prop_assert!(ok(next.0, false), "failover to {}", next.0);
                    prop_assert!(!visited.contains(&next.0), "visited {} twice", next.0);
                    visited.push(next.0);
                    last = next;
                }
                for i in 0..servers.len() {
                    prop_assert!(!ok(i, false) || visited.contains(&i), "failover skipped {i}");
                }
            }
        }
    }

    /// Weight mode honours the weights: with every pick kept open, after N picks over k servers
    /// of total weight W, server i has between w_i*(N-k)/W and w_i*N/W + 1 connections (it
    /// is never more than one above its exact share, nor more than k*w_i/W below it); weight-0
    /// servers get nothing.
    #[test]
    fn weights_are_honoured(weights in prop::collection::vec(0u32..10, 1..7), n in 1usize..3000) {
        let servers: Vec<Srv> = weights
            .iter()
            .map(|&weight| Srv {
                has_addr: true, blacklisted: false, conns: 0, max: 0, hard: 0,
                weight, prio: 0, acl: None,
            })
            .collect();
        let t = table(&servers);
        let acls = AclSet::default();
        let m = Modes { weight: true, ..Modes::default() };
        let sel = Selector::new(&t, &acls, NOW, m);
        let rr = AtomicUsize::new(0);
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut counts = vec![0u64; weights.len()];
        for _ in 0..n {
            match sel.first_choice(IpAddr::from([10, 0, 0, 1]), 1, None, &rr) {
                Some(id) => {
                    counts[id.0] += 1;
                    t.get(id).unwrap().conns.fetch_add(1, Relaxed);
                }
                None => prop_assert_eq!(total, 0, "weighted servers exist"),
            }
        }
        if total > 0 {
            let (n, k) = (n as u64, weights.len() as u64);
            for (i, (&w, &got)) in weights.iter().zip(&counts).enumerate() {
                let w = u64::from(w);
                prop_assert!(got * total <= w * n + total, "server {i}: {got} of {n}, weights {weights:?}");
                prop_assert!(got * total + w * k >= w * n, "server {i}: {got} of {n}, weights {weights:?}");
                if w == 0 {
                    prop_assert_eq!(got, 0);
                }
            }
        }
    }

    /// Hash mode is a function of the client (and, with round robin, its port) and of which
    /// servers are available, nothing else: the same answer from two tables built alike, any
    /// round-robin cursor, with or without the port outside round robin; and it is the first
    /// available server at or after `hash % n`.
    #[test]
    fn hash_is_deterministic(
        servers in prop::collection::vec(srv(), 1..8),
        roundrobin in any::<bool>(),
        c in client(),
        ports in (any::<u16>(), any::<u16>()),
        cursors in (0usize..10, 0usize..10),
    ) {
        let m = Modes { hash: true, roundrobin, ..Modes::default() };
        let (t1, t2) = (table(&servers), table(&servers));
        let acls = acls();
        let s1 = Selector::new(&t1, &acls, NOW, m);
        let s2 = Selector::new(&t2, &acls, NOW, m);
        let a = s1.first_choice(c, ports.0, None, &AtomicUsize::new(cursors.0));
        let b = s2.first_choice(c, ports.0, None, &AtomicUsize::new(cursors.1));
        prop_assert_eq!(a, b);
        prop_assert_eq!(a, s1.first_choice(c, ports.0, None, &AtomicUsize::new(cursors.1)));
        if !roundrobin {
            prop_assert_eq!(a, s1.first_choice(c, ports.1, None, &AtomicUsize::new(0)));
        }
        prop_assert_eq!(client_hash(c, Some(ports.0)), client_hash(c, Some(ports.0)));
        let n = servers.len();
        let start = (client_hash(c, roundrobin.then_some(ports.0)) % n as u64) as usize;
        let want = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| may_take(&servers[i], c, false, m))
            .map(ServerId);
        prop_assert_eq!(a, want);
    }

    /// A custom policy is consulted: its choice is used when it is available. An unavailable
    /// choice (no address, blacklisted, reported down by the health source, at a limit,
    /// denied, or beyond the table) is never used: the client goes to the next available
    /// server after it instead, and is refused only when no server is available. The default
    /// policy also keeps away from servers the health source reports down.
    #[test]
    fn a_custom_policy_is_consulted_and_its_unavailable_choice_is_not_used(
        servers in prop::collection::vec(srv(), 1..8),
        down in prop::collection::vec(prop::bool::weighted(0.3), 8),
        m in modes(),
        c in client(),
        pick in 0usize..10,
    ) {
        let t = table(&servers);
        let acls = acls();
        let health = Down(down.clone());
        let sel = Selector::new(&t, &acls, NOW, m).with_health(&health);
        let rr = AtomicUsize::new(0);
        let ctx = SelectionContext::new(sel, c, Some(4321), None, &rr);
        let ok = |i: usize| !down.get(i).copied().unwrap_or(false) && servers.get(i).is_some_and(|s| may_take(s, c, false, m));
        let n = servers.len();
        let policy = Fixed::new(pick);
        let want = if ok(pick) {
            Some(pick)
        } else {
            (1..=n).map(|k| (pick + k) % n).find(|&i| ok(i))
        };
        prop_assert_eq!(choose(&policy, &ctx).map(|id| id.0), want);
        prop_assert_eq!(policy.asked.load(Relaxed), 1, "the policy was asked once");
        let any = (0..n).any(ok);
        match choose(&DefaultPolicy, &ctx) {
            Some(id) => prop_assert!(ok(id.0), "default chose {}", id.0),
            None => prop_assert!(!any, "default chose nothing"),
        }
    }
}

/// A policy that always answers the same server (whatever its state), counting the questions.
#[derive(Debug)]
struct Fixed {
    pick: usize,
    asked: AtomicUsize,
}

impl Fixed {
    fn new(pick: usize) -> Self {
        Fixed {
            pick,
            asked: AtomicUsize::new(0),
        }
    }
}

impl Policy for Fixed {
    fn first_choice(&self, _ctx: &SelectionContext<'_>) -> Option<ServerId> {
        self.asked.fetch_add(1, Relaxed);
        Some(ServerId(self.pick))
    }
}

/// Servers an external check reports down.
#[derive(Debug)]
struct Down(Vec<bool>);

impl HealthSource for Down {
    fn is_up(&self, id: ServerId, _now: u64) -> bool {
        !self.0.get(id.0).copied().unwrap_or(false)
    }
}

// ---- server states (issue 13) ----

/// A state a generated server is put in (issue 13).
fn state() -> impl Strategy<Value = u8> {
    0u8..6
}

/// Puts server `s` in state `k`: 0 ready, 1 drain, 2 maint, 3 checked down, 4 ejected,
/// 5 checked up again (ready).
fn put(s: &crate::domain::server::Server, k: u8) {
    use crate::domain::server_health::{AdminState, CheckVerdict};
    let h = s.health();
    match k {
        1 => h.set_admin(AdminState::Drain),
        2 => h.set_admin(AdminState::Maint),
        3 => h.set_verdict(CheckVerdict::Down, NOW),
        4 => h.eject_until(NOW + 1),
        5 => {
            h.set_verdict(CheckVerdict::Down, NOW - 10);
            h.set_verdict(CheckVerdict::Up, NOW - 5);
        }
        _ => {}
    }
}

proptest! {
    /// In every mode, for a new client (tracked or not) and in failover, a server that is
    /// drained, in maintenance, checked down or ejected is never chosen; when every server
    /// is out, nothing is (the emergency server's turn), and a server that is ready and
    /// otherwise available is found whenever there is one.
    #[test]
    fn states_keep_servers_out_in_every_mode(
        servers in prop::collection::vec((srv(), state()), 1..7),
        m in modes(),
        client in any::<u32>(),
        tracked in prop::option::of(0usize..7),
    ) {
        let plain: Vec<Srv> = servers.iter().map(|(s, _)| s.clone()).collect();
        let t = table(&plain);
        for (i, (_, k)) in servers.iter().enumerate() {
            if let Some(s) = t.get(ServerId(i)) {
                put(s, *k);
            }
        }
        let a = acls();
        let rr = AtomicUsize::new(0);
        let sel = Selector::new(&t, &a, NOW, m);
        let c = IpAddr::from(client.to_be_bytes());
        let out = |id: ServerId| servers.get(id.0).is_some_and(|(_, k)| (1..=4).contains(k));
        let ctx = SelectionContext::new(sel, c, Some(4000), tracked.map(ServerId), &rr);
        let pick = choose(&DefaultPolicy, &ctx);
        if let Some(id) = pick {
            prop_assert!(!out(id), "chose server {} in state {:?}", id.0, servers.get(id.0));
        }
        let any = (0..t.len()).any(|i| sel.available(ServerId(i), c, false));
        if any {
            prop_assert!(pick.is_some(), "a server is available but none was chosen");
        }
        if let Some(id) = pick {
            let next = super::next_available(&DefaultPolicy, &ctx, id, id);
            prop_assert!(next.is_none_or(|n| !out(n)));
        }
    }

    /// Panic (open) ignores blacklisting, check verdicts and ejection but keeps the operator's
    /// drain and maint; below the threshold only.
    #[test]
    fn panic_open_ignores_health_not_the_operator(
        states in prop::collection::vec(state(), 1..7),
        pct in 1u32..=100,
    ) {
        use super::{PanicMode, StateRules};
        let plain: Vec<Srv> = states.iter().map(|_| Srv {
            has_addr: true, blacklisted: false, conns: 0, max: 0, hard: 0, weight: 1, prio: 0, acl: None,
        }).collect();
        let t = table(&plain);
        for (i, k) in states.iter().enumerate() {
            if let Some(s) = t.get(ServerId(i)) {
                put(s, *k);
            }
        }
        let a = acls();
        let rules = StateRules { slow_start_ms: 0, panic_pct: pct, panic_mode: PanicMode::Open };
        let sel = Selector::new(&t, &a, NOW, Modes::default()).with_rules(rules);
        let up = states.iter().filter(|k| !(1..=4).contains(*k)).count();
        let below = (up as u64) * 100 < (states.len() as u64) * u64::from(pct);
        prop_assert_eq!(sel.panic, below);
        let c = IpAddr::from([10, 0, 0, 1]);
        for (i, k) in states.iter().enumerate() {
            let expect = match k {
                1 | 2 => false,
                3 | 4 => below,
                _ => true,
            };
            prop_assert_eq!(sel.available(ServerId(i), c, false), expect, "state {}", k);
        }
        let refuse = Selector::new(&t, &a, NOW, Modes::default())
            .with_rules(StateRules { panic_mode: PanicMode::Refuse, ..rules });
        prop_assert!(!refuse.panic);
    }
}

#[test]
fn agent_share_and_slow_start_scale_weight_mode() {
    let srv1 = Srv {
        has_addr: true,
        blacklisted: false,
        conns: 0,
        max: 0,
        hard: 0,
        weight: 1,
        prio: 0,
        acl: None,
    };
    let t = table(&[srv1.clone(), srv1]);
    let a = acls();
    let m = Modes {
        weight: true,
        ..Modes::default()
    };
    let rules = super::StateRules {
        slow_start_ms: 10_000,
        ..Default::default()
    };
    // Server 1 came back 1 s ago: 19 % of its weight. With 5 connections on server 0 and
    // none on server 1, 0/0.19 < 5/1: server 1; with 1 on server 1, 1/0.19 > 5/1: server 0.
    let (s0, s1) = (t.get(ServerId(0)).unwrap(), t.get(ServerId(1)).unwrap());
    s1.health().mark_up_since(NOW - 1_000);
    s0.set_conns(5);
    let rr = AtomicUsize::new(0);
    let sel = Selector::new(&t, &a, NOW, m).with_rules(rules);
    let c = IpAddr::from([10, 0, 0, 1]);
    assert_eq!(sel.first_choice(c, 1, None, &rr), Some(ServerId(1)));
    s1.set_conns(1);
    assert_eq!(sel.first_choice(c, 1, None, &rr), Some(ServerId(0)));
    // The ramp over, 1/1 < 5/1: server 1 again.
    let later = Selector::new(&t, &a, NOW + 10_000, m).with_rules(rules);
    assert_eq!(later.first_choice(c, 1, None, &rr), Some(ServerId(1)));
    // An agent share of 0 % takes it out of weight mode.
    s1.health().set_agent_pct(0);
    assert!(!later.available(ServerId(1), c, false));
}

#[test]
fn the_end_of_a_blacklisting_or_ejection_starts_the_ramp() {
    let srv1 = Srv {
        has_addr: true,
        blacklisted: false,
        conns: 0,
        max: 0,
        hard: 0,
        weight: 10,
        prio: 0,
        acl: None,
    };
    let t = table(&[srv1]);
    let a = acls();
    let m = Modes {
        weight: true,
        ..Modes::default()
    };
    let rules = super::StateRules {
        slow_start_ms: 10_000,
        ..Default::default()
    };
    let s = t.get(ServerId(0)).unwrap();
    let sel = Selector::new(&t, &a, NOW, m).with_rules(rules);
    assert_eq!(
        sel.weight_of(s),
        10 * 100 * 1000 / 1000,
        "never out: full weight"
    );
    // Blacklisted 10 s from 1 s before NOW - 9 s: it ended 1 s ago, 19 % of the weight.
    s.blacklist(NOW - 11_000, 10);
    assert_eq!(sel.weight_of(s), 10 * 100 * 190 / 1000);
    s.blacklist(NOW, 0);
    s.health().eject_until(NOW - 5_000);
    assert_eq!(sel.weight_of(s), 10 * 100 * 550 / 1000);
}
