//! Micro-benchmarks of [`Selector::first_choice`]: the cost of picking a server for a new
//! connection, per selection mode, for tables of 1, 16, 1,024 and 10,000 servers (the last is
//! the scale run's table, benches/results/scale.md).
//!
//! Every eighth server (index 3, 11, 19, ...) is blacklisted, so the skipping paths (round
//! robin stepping over a server, hash failing over, weight and prio filtering) are exercised
//! as they would be with a few dead backends. The one-server table has nothing blacklisted.
//! Clients vary between iterations over 256 addresses so the hash lands on every server.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pen_core::acl::AclSet;
use pen_core::addr::ServerSpec;
use pen_core::policy::{Modes, Selector};
use pen_core::server::{ServerId, ServerTable};

/// The clock value handed to the selector (ms); blacklists run well past it.
const NOW: u64 = 1_000;

/// Table sizes measured.
const SIZES: [usize; 4] = [1, 16, 1_024, 10_000];

/// Whether server `i` of an `n`-server table is blacklisted in these benchmarks.
fn blacklisted(i: usize, n: usize) -> bool {
    n > 1 && i % 8 == 3
}

/// A table of `n` servers with varied weights (1-4), priorities (0-4) and live connection
/// counts (0-6), every eighth one blacklisted.
fn table(n: usize) -> ServerTable {
    let specs: Vec<ServerSpec> = (0..n)
        .map(|i| ServerSpec {
            addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + (i % 50_000) as u16)),
            max: 0,
            hard: 0,
            weight: 1 + (i % 4) as u32,
            prio: (i % 5) as u32,
        })
        .collect();
    let t = ServerTable::new(&specs, None);
    for (id, s) in t.iter() {
        s.set_conns((id.0 % 7) as u32);
        if blacklisted(id.0, n) {
            s.blacklist(NOW, 3_600);
        }
    }
    t
}

/// The `k`-th client address of the rotation (256 distinct loopback addresses).
fn client(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, (k & 0xff) as u8))
}

/// One benchmark case: a name and the modes in force; `tracked` marks the tracked-hit case
/// (default modes, the client's remembered server is available and returned at once).
struct Case {
    name: &'static str,
    modes: Modes,
    tracked: bool,
}

/// The five cases: round robin, hash, weight, prio, tracked hit.
fn cases() -> [Case; 5] {
    let m = Modes::default();
    [
        Case {
            name: "roundrobin",
            modes: Modes {
                roundrobin: true,
                ..m
            },
            tracked: false,
        },
        Case {
            name: "hash",
            modes: Modes { hash: true, ..m },
            tracked: false,
        },
        Case {
            name: "weight",
            modes: Modes { weight: true, ..m },
            tracked: false,
        },
        Case {
            name: "prio",
            modes: Modes { prio: true, ..m },
            tracked: false,
        },
        Case {
            name: "tracked_hit",
            modes: m,
            tracked: true,
        },
    ]
}

/// Registers `selection/first_choice/<mode>/<servers>` for every mode and table size.
fn first_choice(c: &mut Criterion) {
    let acls = AclSet::default();
    let mut group = c.benchmark_group("selection/first_choice");
    for case in cases() {
        for &n in &SIZES {
            let t = table(n);
            let sel = Selector::new(&t, &acls, NOW, case.modes);
            // A tracked server that is available: the middle one, stepped off a blacklisted slot.
            let mid = if blacklisted(n / 2, n) {
                n / 2 + 1
            } else {
                n / 2
            };
            let tracked = case.tracked.then_some(ServerId(mid));
            let rr = AtomicUsize::new(0);
            let mut k = 0u32;
            group.bench_with_input(BenchmarkId::new(case.name, n), &n, |b, _| {
                b.iter(|| {
                    k = k.wrapping_add(1);
                    let pick = sel.first_choice(black_box(client(k)), 40_000, tracked, &rr);
                    black_box(pick)
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = first_choice
}
criterion_main!(benches);
