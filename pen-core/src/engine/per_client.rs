//! The per-client connection cap (`conn_per_client N`): how many connections each client
//! address has open right now, so one address cannot take every place under `-x`.
//!
//! An IPv4 client counts by its address, an IPv6 client by its /64 (one host can use a whole
//! /64). The table is keyed by client input, so it hashes with a random per-process key
//! (`RandomState`) and is bounded: an entry lives only while its client has connections open
//! (at most `-x` entries). It is split into shards so that workers accepting at once rarely wait
//! for each other; the shard is picked by a cheap unkeyed mix of the key, as a client steering
//! every key into one shard gains only what one lock for all would give. An entry's removal
//! keeps the shard's capacity, so a steady load allocates nothing.

use std::collections::HashMap;
use std::hash::RandomState;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::domain::clients::source_key;

/// Shards of the table (a power of two).
const SHARDS: usize = 16;

/// The client as the cap counts it: an IPv4 address, or the /64 of an IPv6 address (the two
/// cannot collide: IPv4 keys use the IPv4-mapped prefix `::ffff:0:0/96`, which no /64 key
/// has in its low 64 bits).
fn client_key(ip: IpAddr) -> u128 {
    // The same per-source rule as the UDP flow admission (`source_key`).
    match source_key(ip.to_canonical()) {
        IpAddr::V4(v4) => 0xffff_0000_0000 | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Open connections per client (see the module docs).
pub(crate) struct PerClient {
    /// Each map with its own random key (`HashMap::default` draws one).
    shards: [Mutex<HashMap<u128, u32, RandomState>>; SHARDS],
}

impl Default for PerClient {
    fn default() -> Self {
        PerClient {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
        }
    }
}

impl PerClient {
    /// The shard of key `k` (always `Some`: the shift keeps the index in range).
    fn shard(&self, k: u128) -> Option<&Mutex<HashMap<u128, u32, RandomState>>> {
        // Fold the address bits (an IPv4 address or a /64 prefix) and take the top bits of a
        // multiplicative mix.
        let folded = (k as u64) ^ ((k >> 64) as u64);
        let mixed = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.shards
            .get((mixed >> (64 - SHARDS.trailing_zeros())) as usize)
    }

    /// Counts one more connection from `ip` if it has fewer than `cap` open; `false` (nothing
    /// counted) at the cap.
    pub(crate) fn admit(&self, ip: IpAddr, cap: usize) -> bool {
        let k = client_key(ip);
        let Some(shard) = self.shard(k) else {
            return true;
        };
        let mut map = shard.lock();
        let n = map.entry(k).or_insert(0);
        if *n as usize >= cap {
            if *n == 0 {
                map.remove(&k); // only with cap 0, which callers treat as "unlimited"
            }
            return false;
        }
        *n = n.saturating_add(1);
        true
    }

    /// Uncounts a connection from `ip` counted by [`PerClient::admit`]; the entry goes with
    /// its last connection.
    pub(crate) fn release(&self, ip: IpAddr) {
        let k = client_key(ip);
        let Some(shard) = self.shard(k) else {
            return;
        };
        let mut map = shard.lock();
        if let Some(n) = map.get_mut(&k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&k);
            }
        }
    }

    /// Clients with connections counted now (for tests and the status of the table).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn caps_each_address_and_frees_on_release() {
        let t = PerClient::default();
        assert!(t.admit(ip("10.0.0.1"), 2));
        assert!(t.admit(ip("10.0.0.1"), 2));
        assert!(!t.admit(ip("10.0.0.1"), 2), "third over the cap");
        assert!(
            t.admit(ip("10.0.0.2"), 2),
            "another address is not affected"
        );
        t.release(ip("10.0.0.1"));
        assert!(t.admit(ip("10.0.0.1"), 2));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t = PerClient::default();
        assert!(t.admit(ip("2001:db8:1:2::1"), 2));
        assert!(t.admit(ip("2001:db8:1:2:ffff::9"), 2));
        assert!(!t.admit(ip("2001:db8:1:2:dead:beef::1"), 2), "same /64");
        assert!(t.admit(ip("2001:db8:1:3::1"), 2), "next /64");
        assert!(t.admit(ip("192.0.2.1"), 1));
        assert!(
            !t.admit(ip("::ffff:192.0.2.1"), 1),
            "mapped = the IPv4 client"
        );
    }

    #[test]
    fn entries_live_only_while_connections_do() {
        let t = PerClient::default();
        for i in 0..100u8 {
            assert!(t.admit(IpAddr::from([10, 0, 0, i]), 3));
        }
        assert_eq!(t.len(), 100);
        for i in 0..100u8 {
            t.release(IpAddr::from([10, 0, 0, i]));
        }
        assert_eq!(t.len(), 0);
        // A release without an admit (the cap was turned on meanwhile) changes nothing.
        t.release(ip("10.9.9.9"));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn consecutive_clients_spread_over_the_shards() {
        let t = PerClient::default();
        let used = |keys: &mut dyn Iterator<Item = IpAddr>| {
            let mut hit = [false; SHARDS];
            for ip in keys {
                let s = t.shard(client_key(ip)).expect("a shard");
                let i = t
                    .shards
                    .iter()
                    .position(|x| std::ptr::eq(x, s))
                    .expect("ours");
                hit[i] = true;
            }
            hit.iter().filter(|h| **h).count()
        };
        assert_eq!(
            used(&mut (0..=255u8).map(|i| IpAddr::from([10, 0, 0, i]))),
            SHARDS
        );
        let v6 = (0..=255u16).map(|i| IpAddr::from([0x2001, 0xdb8, 0, i, 0, 0, 0, 1]));
        assert_eq!(used(&mut v6.into_iter()), SHARDS);
    }

    proptest! {
        /// Any interleaving of admits and releases: no address ever holds more than the cap,
        /// the table matches a plain model, and it is empty once everything is released.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..6, any::<bool>()), 0..200),
                           cap in 1usize..4) {
            let t = PerClient::default();
            let mut model = [0usize; 6];
            for (who, open) in ops {
                let a = IpAddr::from([10, 0, 0, who]);
                let m = &mut model[who as usize];
                if open {
                    let ok = t.admit(a, cap);
                    prop_assert_eq!(ok, *m < cap);
                    if ok { *m += 1; }
                } else if *m > 0 {
                    t.release(a);
                    *m -= 1;
                }
            }
            prop_assert_eq!(t.len(), model.iter().filter(|n| **n > 0).count());
            for (who, n) in model.iter().enumerate() {
                for _ in 0..*n { t.release(IpAddr::from([10, 0, 0, who as u8])); }
            }
            prop_assert_eq!(t.len(), 0);
        }
    }
}
