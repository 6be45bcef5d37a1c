//! Micro-benchmarks of the policies of issue 14 (docs/policies.md) for 10, 100 and 1,000
//! servers: Maglev's table lookup alone (one array index), its table build at the default
//! size 65,537, and a whole first choice (`Selector::first_choice`: the cached table under a
//! read lock plus the availability check) for `maglev`, `leastconn`, `p2c` and `random`.
//!
//! The servers have weights 1-4 and 0-6 live connections; every eighth one is blacklisted, so
//! Maglev's failover walk and the others' filtering are exercised as with a few dead
//! backends. Clients rotate over 65,536 addresses.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pen_core::acl::AclSet;
use pen_core::addr::ServerSpec;
use pen_core::maglev::{MaglevTable, DEFAULT_TABLE_SIZE};
use pen_core::policy::{client_hash, Balance, Modes, Selector};
use pen_core::server::{ServerId, ServerTable};

/// The clock value handed to the selector (ms); blacklists run well past it.
const NOW: u64 = 1_000;

/// Server counts measured.
const SIZES: [usize; 3] = [10, 100, 1_000];

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 8080))
}

/// `n` servers with weights 1-4 and 0-6 connections, every eighth one blacklisted.
fn table(n: usize) -> ServerTable {
    let specs: Vec<ServerSpec> = (0..n)
        .map(|i| ServerSpec {
            addr: addr(i),
            max: 0,
            hard: 0,
            weight: 1 + (i % 4) as u32,
            prio: 0,
        })
        .collect();
    let t = ServerTable::new(&specs, None);
    for (id, s) in t.iter() {
        s.set_conns((id.0 % 7) as u32);
        if id.0 % 8 == 3 {
            s.blacklist(NOW, 3_600);
        }
    }
    t
}

/// The `k`-th client address of the rotation.
fn client(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (k >> 8) as u8, k as u8))
}

/// `policies/maglev_lookup/<servers>`: the slot of a precomputed key.
fn maglev_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("policies/maglev_lookup");
    for &n in &SIZES {
        let list: Vec<(ServerId, SocketAddr, u32)> = (0..n)
            .map(|i| (ServerId(i), addr(i), 1 + (i % 4) as u32))
            .collect();
        let t = MaglevTable::build(&list, DEFAULT_TABLE_SIZE);
        let keys: Vec<u64> = (0..4096u32).map(|k| client_hash(client(k), None)).collect();
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 4095;
                black_box(t.lookup(black_box(keys.get(k).copied().unwrap_or(0))))
            });
        });
    }
    group.finish();
}

/// `policies/maglev_build/<servers>`: a whole table of 65,537 slots.
fn maglev_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("policies/maglev_build");
    for &n in &SIZES {
        let list: Vec<(ServerId, SocketAddr, u32)> = (0..n)
            .map(|i| (ServerId(i), addr(i), 1 + (i % 4) as u32))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(MaglevTable::build(black_box(&list), DEFAULT_TABLE_SIZE)));
        });
    }
    group.finish();
}

/// `policies/first_choice/<policy>/<servers>`: a new client's first choice.
fn first_choice(c: &mut Criterion) {
    let acls = AclSet::default();
    let mut group = c.benchmark_group("policies/first_choice");
    for (name, balance) in [
        ("maglev", Balance::Maglev),
        ("leastconn", Balance::LeastConn),
        ("p2c", Balance::P2c),
        ("random", Balance::Random),
    ] {
        for &n in &SIZES {
            let t = table(n);
            let modes = Modes {
                balance,
                ..Modes::default()
            };
            let sel = Selector::new(&t, &acls, NOW, modes);
            let rr = AtomicUsize::new(0);
            let mut k = 0u32;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    k = k.wrapping_add(1) & 0xffff;
                    black_box(sel.first_choice(black_box(client(k)), 40_000, None, &rr))
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = maglev_lookup, maglev_build, first_choice
}
criterion_main!(benches);
