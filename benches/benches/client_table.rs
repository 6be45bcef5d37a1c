//! Hash flooding of the client table (issue 11): lookups of remembered clients at 2,048 and
//! 20,000 entries, with addresses drawn at random from one IPv6 /64 ("random") and with
//! addresses from the same /64 chosen so that the old, unkeyed hasher gives them all the same
//! bucket and the same control byte ("adversarial").
//!
//! - `client_table_old/...`: the address index as it was (a `HashMap` with the old
//!   `AddrHasher`, rebuilt here from its formula: SplitMix64's finaliser chained over 8-byte
//!   chunks, with no key). Adversarial lookups degrade with the table's size.
//! - `client_table_new/...`: the same index with the hasher pen uses now (std's `RandomState`,
//!   SipHash-1-3 with random per-process keys); the adversarial set is just random to it.
//! - `client_table/...`: pen's `ClientTable::lookup` itself (index and slot).
//!
//! The adversarial set inverts the old hash: with the address's first 64 bits fixed, the old
//! hash is `mix(mix(S ^ low64))`, a bijection of the low 64 bits (S depends on the prefix only),
//! so any wanted hash value has exactly one address in the /64.

mod common;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pen_core::clients::ClientTable;
use pen_core::policy::mix64;
use pen_core::server::ServerId;

/// Table sizes measured: C pen's default `-c`, and ten times that.
const SIZES: [usize; 2] = [2_048, 20_000];

/// The /64 every address is drawn from (2001:db8:1:2::/64).
const PREFIX: u128 = 0x2001_0db8_0001_0002 << 64;

/// The clock value used for every call (ms); tracking time 0: entries never expire.
const NOW: u64 = 1_000;

/// The old client-table hasher, as it was in `pen_core::domain::clients`.
#[derive(Default)]
struct OldHasher(u64);

impl Hasher for OldHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            for (d, &c) in b.iter_mut().zip(chunk) {
                *d = c;
            }
            self.0 = mix64(self.0 ^ u64::from_le_bytes(b));
        }
    }
}

type OldBuild = BuildHasherDefault<OldHasher>;

/// The inverse of `x -> x ^ (x >> s)`.
fn unshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    for _ in 0..64 / s + 1 {
        x = y ^ (x >> s);
    }
    x
}

/// The inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(a: u64) -> u64 {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// The inverse of [`mix64`].
fn unmix(mut y: u64) -> u64 {
    y = unshift(y, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    y = unshift(y, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
    unshift(y, 30).wrapping_sub(0x9e37_79b9_7f4a_7c15)
}

/// The address in [`PREFIX`] with low 64 bits `low`.
fn addr(low: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(PREFIX | u128::from(low)))
}

/// The last 8-byte chunk the old hasher reads of `addr(low)` (the octets in order, read as a
/// little-endian word).
fn chunk(low: u64) -> u64 {
    u64::from_le_bytes(low.to_be_bytes())
}

/// `n` addresses of [`PREFIX`] whose old hashes share the low 24 bits (the bucket, for any
/// table up to 16M buckets) and the top 7 bits (hashbrown's control byte): every lookup probes
/// every one of them.
fn adversarial(n: usize) -> Vec<IpAddr> {
    let old = OldBuild::default();
    // S, the state before the last chunk, from any one address of the /64.
    let state = unmix(unmix(old.hash_one(addr(1)))) ^ chunk(1);
    let target = |k: u64| (0x55u64 << 57) | (k << 24) | 0x00ab_cdef;
    let set: Vec<IpAddr> = (1..=n as u64)
        .map(|k| {
            let c = unmix(unmix(target(k))) ^ state;
            addr(u64::from_be_bytes(c.to_le_bytes()))
        })
        .collect();
    for (k, a) in (1..).zip(&set) {
        assert_eq!(old.hash_one(a), target(k), "the old hash was not inverted");
    }
    set
}

/// `n` distinct pseudo-random addresses of [`PREFIX`].
fn random(n: usize) -> Vec<IpAddr> {
    (1..=n as u64).map(|k| addr(mix64(k))).collect()
}

/// The `k`-th probe index in `0..n`, scattered by a large odd multiplier.
fn scatter(k: u32, n: usize) -> usize {
    k.wrapping_mul(0x9e37_79b1) as usize % n
}

/// Lookups of remembered addresses in an index built with `build`.
fn index_lookups<S: BuildHasher + Clone>(
    c: &mut Criterion,
    group: &str,
    build: S,
    sets: &[(&str, usize, Vec<IpAddr>)],
) {
    let mut g = c.benchmark_group(group);
    for (name, n, set) in sets {
        let mut index: HashMap<IpAddr, u32, S> = HashMap::with_hasher(build.clone());
        for (i, a) in (0u32..).zip(set) {
            index.insert(*a, i);
        }
        let mut k = 0u32;
        g.bench_with_input(BenchmarkId::new(*name, n), n, |b, &n| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let a = set.get(scatter(k, n)).copied();
                black_box(a.and_then(|a| index.get(&black_box(a)).copied()))
            });
        });
    }
    g.finish();
}

/// Registers the three groups for both address sets and both sizes.
fn client_tables(c: &mut Criterion) {
    let mut sets = Vec::new();
    for &n in &SIZES {
        sets.push(("random", n, random(n)));
        sets.push(("adversarial", n, adversarial(n)));
    }
    index_lookups(c, "client_table_old", OldBuild::default(), &sets);
    index_lookups(c, "client_table_new", RandomState::new(), &sets);
    let mut g = c.benchmark_group("client_table");
    for (name, n, set) in &sets {
        let mut t = ClientTable::new(*n);
        for (i, a) in set.iter().enumerate() {
            t.record(*a, ServerId(i % 16), NOW);
        }
        assert_eq!(t.len(), *n, "every address is remembered");
        let mut k = 0u32;
        g.bench_with_input(BenchmarkId::new(*name, n), n, |b, &n| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let a = set.get(scatter(k, n)).copied();
                black_box(a.and_then(|a| t.lookup(black_box(a), NOW, 0)))
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = client_tables
}
criterion_main!(benches);
