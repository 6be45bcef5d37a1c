//! Maglev's properties (issue 14): the same table for the same servers in any order and in
//! any process, even shares, minimal disruption, weights, a consistent failover order.

use super::*;
use proptest::prelude::*;

const M: u32 = DEFAULT_TABLE_SIZE;

fn addr(i: u32) -> SocketAddr {
    let [a, b, c, d] = (0x0a00_0000u32 + i).to_be_bytes();
    SocketAddr::from(([a, b, c, d], 8000 + (i % 7) as u16))
}

/// Servers 0..n at distinct addresses, weight `w(i)`.
fn servers(n: u32, w: impl Fn(u32) -> u32) -> Vec<(ServerId, SocketAddr, u32)> {
    (0..n)
        .map(|i| (ServerId(i as usize), addr(i), w(i)))
        .collect()
}

/// The address in each slot: what two pens compare (their server numbers may differ).
fn addresses(t: &MaglevTable, list: &[(ServerId, SocketAddr, u32)]) -> Vec<SocketAddr> {
    t.entries()
        .map(|id| {
            list.iter()
                .find(|s| s.0 == id)
                .map(|s| s.1)
                .expect("a listed server")
        })
        .collect()
}

fn counts(t: &MaglevTable, n: usize) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for id in t.entries() {
        c[id.0] += 1;
    }
    c
}

#[test]
fn primes() {
    let small: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
    assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(is_prime(65_537));
    assert!(is_prime(crate::domain::limits::MAGLEV_TABLE_MAX));
    assert!(!is_prime(65_536));
    assert!(!is_prime(1_048_575));
}

/// A fixed digest of the table for ten fixed servers: any change to the hashes or the fill
/// (which would make two pen versions disagree) fails here, and since the digest is a
/// constant, a table built in any process on any machine must match it.
#[test]
fn table_digest_is_fixed() {
    let list = servers(10, |_| 0);
    let t = MaglevTable::build(&list, M);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for a in addresses(&t, &list) {
        for b in a.to_string().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    assert_eq!(h, TABLE_DIGEST, "digest {h:#x}");
}

const TABLE_DIGEST: u64 = 0x8d78_983f_2a55_7c3b;

#[test]
fn an_empty_table_answers_nothing() {
    let t = MaglevTable::build(&[], M);
    assert_eq!(t.lookup(7), None);
    assert_eq!(t.next_after(7, ServerId(0), ServerId(0)), None);
}

#[test]
fn one_server_takes_every_slot_of_any_size() {
    for size in [1, 2, 3, 4, 10, 97] {
        let t = MaglevTable::build(&servers(1, |_| 1), size);
        assert_eq!(t.entries().count(), size as usize);
        assert!(t.entries().all(|id| id == ServerId(0)));
    }
}

/// A size that is not a prime (which the commands refuse) still gives a full table, and
/// the build ends.
#[test]
fn any_size_gives_a_full_table() {
    for size in [4u32, 6, 8, 100, 1000, 4096] {
        for n in [2u32, 3, 4, 7, 64] {
            let t = MaglevTable::build(&servers(n, |i| 1 + i % 3), size);
            assert_eq!(
                t.entries().count(),
                size as usize,
                "size {size}, {n} servers"
            );
        }
    }
}

/// The failover order from a key visits every server once, starting with the key's slot.
#[test]
fn failover_order_visits_every_server_once() {
    let list = servers(40, |_| 1);
    let t = MaglevTable::build(&list, 4099);
    for key in [0u64, 1, 12345, u64::MAX] {
        let first = t.lookup(key).unwrap();
        let mut seen = vec![first];
        let mut last = first;
        while let Some(next) = t.next_after(key, first, last) {
            assert!(!seen.contains(&next), "{next:?} twice");
            seen.push(next);
            last = next;
        }
        assert_eq!(seen.len(), 40);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same servers in any order give the same table (slot by slot, by address) and the
    /// same failover order.
    #[test]
    fn any_order_same_table(
        n in 1u32..60,
        weights in prop::collection::vec(0u32..5, 60),
        perm in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
    ) {
        let list = servers(n, |i| weights[i as usize]);
        let mut shuffled = list.clone();
        // Fisher-Yates with the drawn seed; the shuffled list renumbers the servers.
        let mut r = perm;
        for i in (1..shuffled.len()).rev() {
            r = mix64(r);
            shuffled.swap(i, (r % (i as u64 + 1)) as usize);
        }
        for (k, s) in shuffled.iter_mut().enumerate() {
            s.0 = ServerId(k);
        }
        let a = MaglevTable::build(&list, 4099);
        let b = MaglevTable::build(&shuffled, 4099);
        prop_assert_eq!(addresses(&a, &list), addresses(&b, &shuffled));
        let name = |list: &[(ServerId, SocketAddr, u32)], id: ServerId| list.iter().find(|s| s.0 == id).map(|s| s.1);
        for key in [3u64, 99, 1 << 40] {
            let (fa, fb) = (a.lookup(key).unwrap(), b.lookup(key).unwrap());
            let (mut la, mut lb) = (fa, fb);
            loop {
                let (na, nb) = (a.next_after(key, fa, la), b.next_after(key, fb, lb));
                prop_assert_eq!(na.and_then(|x| name(&list, x)), nb.and_then(|x| name(&shuffled, x)));
                match (na, nb) {
                    (Some(x), Some(y)) => { la = x; lb = y; }
                    _ => break,
                }
            }
        }
    }

    /// With N servers of equal weight each has its share of the slots within 1 % (of that
    /// share) at M = 65,537.
    #[test]
    fn shares_within_one_percent(n in 1u32..=300) {
        let t = MaglevTable::build(&servers(n, |_| 0), M);
        let fair = f64::from(M) / f64::from(n);
        for (i, c) in counts(&t, n as usize).into_iter().enumerate() {
            let dev = (c as f64 - fair).abs() / fair;
            prop_assert!(dev <= 0.01, "server {i}: {c} slots, fair {fair:.1}");
        }
    }

    /// Removing one of N servers moves at most 1/N + 1 % of the slots, and of the slots that
    /// were not on it at most 1 % (Maglev's bound on disruption, not zero).
    #[test]
    fn removing_one_moves_little(n in 2u32..=200, gone in any::<prop::sample::Index>()) {
        let list = servers(n, |_| 0);
        let gone = gone.index(n as usize);
        let fewer: Vec<_> = list.iter().copied().filter(|s| s.0 .0 != gone).collect();
        let before = addresses(&MaglevTable::build(&list, M), &list);
        let after = addresses(&MaglevTable::build(&fewer, M), &fewer);
        let removed = list[gone].1;
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64;
        let collateral = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != removed)
            .count() as f64;
        let m = f64::from(M);
        prop_assert!(moved / m <= 1.0 / f64::from(n) + 0.01, "moved {moved}");
        prop_assert!(collateral / m <= 0.01, "collateral {collateral}");
    }

    /// Weights are honoured: each server's share of the slots is within 2 % of
    /// weight / total weight.
    #[test]
    fn weights_within_two_percent(weights in prop::collection::vec(1u32..=20, 2..=40)) {
        let n = weights.len() as u32;
        let t = MaglevTable::build(&servers(n, |i| weights[i as usize]), M);
        let total: u32 = weights.iter().sum();
        for (i, c) in counts(&t, n as usize).into_iter().enumerate() {
            let want = f64::from(M) * f64::from(weights[i]) / f64::from(total);
            let dev = (c as f64 - want).abs() / want;
            prop_assert!(dev <= 0.02, "server {i} weight {}: {c} slots, want {want:.1}", weights[i]);
        }
    }
}

/// The cache builds once and keeps the table until the servers change; a change of weight
/// or table size makes a new one.
#[test]
fn cache_rebuilds_only_on_change() {
    use crate::domain::addr::ServerSpec;
    let spec = |i: u32, weight| ServerSpec {
        addr: addr(i),
        max: 0,
        hard: 0,
        weight,
        prio: 0,
    };
    let mut table = ServerTable::new(&[spec(0, 1), spec(1, 1)], None);
    let first = table.maglev().with(&table, 101, |t| t.clone());
    let again = table.maglev().with(&table, 101, |t| t.clone());
    assert_eq!(first, again);
    let mut confs: Vec<_> = table.iter().map(|(_, s)| s.conf()).collect();
    table.reconfigure(&confs);
    assert_eq!(table.maglev().with(&table, 101, |t| t.clone()), first);
    confs[1].weight = 3;
    table.reconfigure(&confs);
    let heavier = table.maglev().with(&table, 101, |t| t.clone());
    assert_ne!(heavier, first);
    assert_eq!(table.maglev().with(&table, 103, |t| t.size()), 103);
}
