//! The client table against a reference: a plain list, most recently recorded first.

use std::net::IpAddr;

use proptest::prelude::*;

use super::ClientTable;
use crate::domain::server::ServerId;

#[derive(Clone, Debug)]
enum Op {
    /// `record(client, server)`.
    Record(u8, usize),
    /// `lookup(client)` with this tracking time (0: never expires), some seconds later.
    Lookup(u8, u64, u64),
    /// `forget_server(server)`.
    Forget(usize),
    /// `grow(capacity)`.
    Grow(usize),
    /// `add_bytes(client, sent, received)`.
    Bytes(u8, u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..16, 0usize..4).prop_map(|(c, s)| Op::Record(c, s)),
        3 => (0u8..16, 0u64..4, 0u64..3).prop_map(|(c, t, d)| Op::Lookup(c, t, d)),
        1 => (0usize..4).prop_map(Op::Forget),
        1 => (0usize..12).prop_map(Op::Grow),
        1 => (0u8..16, 0u64..100, 0u64..100).prop_map(|(c, s, r)| Op::Bytes(c, s, r)),
    ]
}

fn ip(c: u8) -> IpAddr {
    if c % 2 == 0 {
        IpAddr::from([10, 0, 0, c])
    } else {
        IpAddr::from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, c])
    }
}

/// A reference entry: client, server, last seen (ms), connects, sent, received.
type Entry = (u8, usize, u64, u64, u64, u64);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Under any mix of records, lookups (with expiry), forgets, growth and byte counts, the
    /// table never holds more clients than its capacity, evicts the least recently recorded
    /// client when full, forgets removed clients (expired ones stay, as in C pen), and lists the same entries in
    /// the same order (most recent first) with the same counters as the reference.
    #[test]
    fn matches_reference(cap in 1usize..8, ops in prop::collection::vec(op(), 0..300)) {
        let mut t = ClientTable::new(cap);
        let mut cap = cap;
        let mut model: Vec<Entry> = Vec::new(); // most recent first
        let mut now = 1_000u64;
        for op in ops {
            now += 1_000;
            match op {
                Op::Record(c, s) => {
                    t.record(ip(c), ServerId(s), now);
                    match model.iter().position(|e| e.0 == c) {
                        Some(i) => {
                            let mut e = model.remove(i);
                            (e.1, e.2, e.3) = (s, now, e.3 + 1);
                            model.insert(0, e);
                        }
                        None => {
                            if model.len() >= cap {
                                model.pop(); // the least recently recorded
                            }
                            model.insert(0, (c, s, now, 1, 0, 0));
                        }
                    }
                }
                Op::Lookup(c, tracking, later) => {
                    let at = now + later * 1_000;
                    let got = t.lookup(ip(c), at, tracking);
                    let want = match model.iter().position(|e| e.0 == c) {
                        None => None,
                        // Expired: no longer chooses the server, but stays listed.
                        Some(i) if tracking > 0 && at - model[i].2 > tracking * 1_000 => None,
                        Some(i) => Some(ServerId(model[i].1)),
                    };
                    prop_assert_eq!(got, want);
                }
                Op::Forget(s) => {
                    t.forget_server(ServerId(s));
                    model.retain(|e| e.1 != s);
                }
                Op::Grow(n) => {
                    t.grow(n);
                    cap = cap.max(n);
                }
                Op::Bytes(c, sent, received) => {
                    t.add_bytes(ip(c), sent, received);
                    if let Some(e) = model.iter_mut().find(|e| e.0 == c) {
                        e.4 += sent;
                        e.5 += received;
                    }
                }
            }
            prop_assert_eq!(t.capacity(), cap);
            prop_assert!(t.len() <= cap, "{} clients in {} slots", t.len(), cap);
            prop_assert_eq!(t.len(), model.len());
            let got: Vec<Entry> = t
                .iter()
                .map(|e| {
                    let c = model.iter().find(|m| ip(m.0) == e.addr).map_or(255, |m| m.0);
                    (c, e.server.0, e.last_ms, e.connects, e.sent, e.received)
                })
                .collect();
            prop_assert_eq!(&got, &model);
            for e in &model {
                prop_assert_eq!(t.get(ip(e.0)).map(|x| x.server), Some(ServerId(e.1)));
            }
        }
    }
}
