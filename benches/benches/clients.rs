//! Micro-benchmarks of the client tracking table ([`ClientTable`]) at C pen's default size
//! (2,048 slots) and at 1,000,000 slots: `lookup` of a remembered client (hit) and of an
//! unknown one (miss), and `record` of a new client into a full table (so each insert evicts
//! the least recently used entry).
//!
//! Hits visit the table in a scattered order (a multiplicative stride through the filled
//! addresses) so that the large table pays its real cache misses rather than walking memory
//! sequentially.

mod common;

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pen_core::clients::ClientTable;
use pen_core::server::ServerId;

/// Table sizes measured.
const SIZES: [usize; 2] = [2_048, 1_000_000];

/// First address of the filled range (10.0.0.0); the table holds `BASE .. BASE + capacity`.
const BASE: u32 = 0x0a00_0000;

/// First address of the never-recorded range used for misses (11.0.0.0).
const MISS_BASE: u32 = 0x0b00_0000;

/// The clock value used for every call (ms); tracking time 0 means entries never expire.
const NOW: u64 = 1_000;

/// IPv4 address from its numeric value.
fn ip(n: u32) -> IpAddr {
    IpAddr::from(n.to_be_bytes())
}

/// A table of `cap` slots, filled with `BASE .. BASE + cap` spread over 16 servers.
fn full_table(cap: usize) -> ClientTable {
    let mut t = ClientTable::new(cap);
    for i in 0..cap as u32 {
        t.record(ip(BASE + i), ServerId((i % 16) as usize), NOW);
    }
    t
}

/// The `k`-th probe index in `0..cap`, scattered by a large odd multiplier.
fn scatter(k: u32, cap: usize) -> u32 {
    (k.wrapping_mul(0x9e37_79b1) as usize % cap) as u32
}

/// Registers `clients/lookup_hit`, `clients/lookup_miss` and `clients/record_evict` per size.
fn client_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("clients");
    for &cap in &SIZES {
        let mut t = full_table(cap);
        let mut k = 0u32;
        group.bench_with_input(BenchmarkId::new("lookup_hit", cap), &cap, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                black_box(t.lookup(black_box(ip(BASE + scatter(k, cap))), NOW, 0))
            });
        });
        group.bench_with_input(BenchmarkId::new("lookup_miss", cap), &cap, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                black_box(t.lookup(black_box(ip(MISS_BASE + scatter(k, cap))), NOW, 0))
            });
        });
        // New addresses continue after the filled range, so every record evicts the LRU tail.
        let mut next = BASE.wrapping_add(cap as u32);
        group.bench_with_input(BenchmarkId::new("record_evict", cap), &cap, |b, _| {
            b.iter(|| {
                next = next.wrapping_add(1);
                t.record(black_box(ip(next)), ServerId((next % 16) as usize), NOW);
            });
        });
        assert!(t.len() == cap, "table must stay full");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = client_table
}
criterion_main!(benches);
