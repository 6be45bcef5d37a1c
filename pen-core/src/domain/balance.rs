//! The policies of issue 14 as [`Selector`] methods: `maglev` (consistent hash, see
//! [`crate::domain::maglev`]), `leastconn` (fewest active connections per weight), `p2c` (the
//! less loaded of two random servers) and `random`. Each answers only available servers
//! ([`Selector::available`]), allocates nothing, and is reached through
//! [`Selector::first_choice`] after client tracking (which wins unless round robin, as for C
//! pen's modes).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::Selector;
use crate::domain::server::{Server, ServerId};

thread_local! {
    /// This thread's random state (wyrand), seeded from the process's random hash keys: no
    /// two processes or threads share a sequence, and no lock or atomic is touched.
    static RNG: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0x0070_3263_u64));
}

/// A random number in `0..n` (`n` > 0), from this thread's wyrand generator.
pub(crate) fn below(n: u64) -> u64 {
    let r = RNG.with(|cell| {
        let s = cell.get().wrapping_add(0xa076_1d64_78bd_642f);
        cell.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    });
    // Lemire's multiply-shift: the bias for n below 2^32 is under 2^-32.
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// How many uniform draws over the whole table `p2c` and `random` make before counting the
/// available servers: with 7 of 8 servers available, 8 draws all miss once in 17 million.
const DRAWS: usize = 8;

impl Selector<'_> {
    /// The weight a load is divided by: the effective weight, at least 1 (weights are ratios;
    /// C pen's default weight is 0).
    fn load_weight(&self, s: &Server) -> u64 {
        u64::from(self.weight_of(s).max(1))
    }

    /// Whether `a` (connections, weight) is strictly less loaded than `b`: `ca / wa < cb / wb`,
    /// compared exactly as `ca * wb < cb * wa` (each product fits in a u64).
    fn less_loaded(a: (u64, u64), b: (u64, u64)) -> bool {
        a.0 * b.1 < b.0 * a.1
    }

    fn load(&self, s: &Server) -> (u64, u64) {
        (u64::from(s.conns.load(Relaxed)), self.load_weight(s))
    }

    /// Maglev: the server of `key`'s slot, or if it is not available the next available one
    /// in `key`'s preference order.
    pub(super) fn maglev_choice(&self, client: IpAddr, key: u64) -> Option<ServerId> {
        let table = self.table;
        table.maglev().with(table, self.modes.maglev_table, |t| {
            let first = t.lookup(key)?;
            if self.available(first, client, false) {
                return Some(first);
            }
            let mut last = first;
            for _ in 0..t.servers() {
                let next = t.next_after(key, first, last)?;
                if self.available(next, client, false) {
                    return Some(next);
                }
                last = next;
            }
            None
        })
    }

    /// Maglev failover: the next available server after `last` in `key`'s preference order
    /// (the round started at `first`). `None` when `last` is not in the table (the caller
    /// then goes round in server order), `Some(None)` when the round is over.
    pub(super) fn maglev_next(
        &self,
        key: u64,
        first: ServerId,
        last: ServerId,
        client: IpAddr,
    ) -> Option<Option<ServerId>> {
        let table = self.table;
        table.maglev().with(table, self.modes.maglev_table, |t| {
            if !t.contains(last) {
                return None;
            }
            let mut cur = last;
            for _ in 0..t.servers() {
                let Some(next) = t.next_after(key, first, cur) else {
                    return Some(None);
                };
                if self.available(next, client, false) {
                    return Some(Some(next));
                }
                cur = next;
            }
            Some(None)
        })
    }

    /// Least connections: the available server with the fewest active connections per
    /// weight; ties go round robin (from the server after the last one chosen, which `rr`
    /// holds), so idle servers share the clients.
    pub(super) fn least_conn(&self, client: IpAddr, rr: &AtomicUsize) -> Option<ServerId> {
        let n = self.table.len();
        let last = rr.load(Relaxed);
        let start = if last >= n { 0 } else { last + 1 };
        let mut best: Option<(ServerId, (u64, u64))> = None;
        // From the server after the last one chosen, cyclically (two ranges, no division).
        let order = self
            .table
            .iter()
            .skip(start)
            .chain(self.table.iter().take(start));
        for (id, s) in order {
            if !self.available(id, client, false) {
                continue;
            }
            let load = self.load(s);
            if best.is_none_or(|(_, b)| Self::less_loaded(load, b)) {
                best = Some((id, load));
            }
        }
        let pick = best.map(|b| b.0)?;
        rr.store(pick.0, Relaxed);
        Some(pick)
    }

    /// The `k`-th available server (in server order), if there are that many.
    fn nth_available(&self, client: IpAddr, k: u64) -> Option<ServerId> {
        self.table
            .iter()
            .filter(|&(id, _)| self.available(id, client, false))
            .nth(usize::try_from(k).ok()?)
            .map(|(id, _)| id)
    }

    /// The number of available servers.
    fn count_available(&self, client: IpAddr) -> u64 {
        self.table
            .iter()
            .filter(|&(id, _)| self.available(id, client, false))
            .count() as u64
    }

    /// An available server drawn uniformly, other than `not`: a few draws over the whole
    /// table (constant time while most servers are available), else `None` and the caller
    /// counts. Each accepted draw is uniform over the servers that qualify.
    fn draw_available(&self, client: IpAddr, not: Option<ServerId>) -> Option<ServerId> {
        let n = self.table.len() as u64;
        if n == 0 {
            return None;
        }
        (0..DRAWS)
            .map(|_| ServerId(below(n) as usize))
            .find(|&id| Some(id) != not && self.available(id, client, false))
    }

    /// Two distinct available servers drawn uniformly: by [`Selector::draw_available`],
    /// else by counting them (`None` when fewer than two are available: then the only one).
    fn two_available(&self, client: IpAddr) -> Result<(ServerId, ServerId), Option<ServerId>> {
        if let Some(a) = self.draw_available(client, None) {
            if let Some(b) = self.draw_available(client, Some(a)) {
                return Ok((a, b));
            }
        }
        let count = self.count_available(client);
        if count <= 1 {
            return Err(self.nth_available(client, 0));
        }
        let i = below(count);
        let mut j = below(count - 1);
        if j >= i {
            j += 1;
        }
        match (self.nth_available(client, i), self.nth_available(client, j)) {
            (Some(a), Some(b)) => Ok((a, b)),
            (a, b) => Err(a.or(b)),
        }
    }

    /// Power of two choices: two distinct available servers drawn at random, the one with
    /// fewer connections per weight (the first drawn on a tie).
    pub(super) fn p2c(&self, client: IpAddr) -> Option<ServerId> {
        let (a, b) = match self.two_available(client) {
            Ok(pair) => pair,
            Err(one) => return one,
        };
        let (Some(sa), Some(sb)) = (self.table.get(a), self.table.get(b)) else {
            return Some(a);
        };
        Some(if Self::less_loaded(self.load(sb), self.load(sa)) {
            b
        } else {
            a
        })
    }

    /// Random: uniform over the available servers, or in weight mode in proportion to their
    /// (effective) weights.
    pub(super) fn random(&self, client: IpAddr) -> Option<ServerId> {
        if !self.modes.weight {
            if let Some(id) = self.draw_available(client, None) {
                return Some(id);
            }
            let count = self.count_available(client);
            return if count == 0 {
                None
            } else {
                self.nth_available(client, below(count))
            };
        }
        let weights = || {
            self.table
                .iter()
                .filter(|&(id, _)| self.available(id, client, false))
                .map(|(id, s)| (id, u64::from(self.weight_of(s))))
        };
        let total: u64 = weights().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut r = below(total);
        for (id, w) in weights() {
            if r < w {
                return Some(id);
            }
            r -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::acl::AclSet;
    use crate::domain::addr::ServerSpec;
    use crate::domain::policy::{Balance, Modes};
    use crate::domain::server::ServerTable;
    use std::net::SocketAddr;

    fn table(weights: &[u32]) -> ServerTable {
        let specs: Vec<ServerSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| ServerSpec {
                addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                max: 0,
                hard: 0,
                weight,
                prio: 0,
            })
            .collect();
        ServerTable::new(&specs, None)
    }

    fn modes(balance: Balance) -> Modes {
        Modes {
            balance,
            ..Modes::default()
        }
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// Least connections per weight: conns 4/2, 1/1, 3/3 -> server 1 or 2 (1 per weight), and
    /// the tie goes round: both are chosen in turn.
    #[test]
    fn leastconn_takes_fewest_per_weight_and_rotates_ties() {
        let t = table(&[2, 1, 3]);
        for (i, c) in [4, 1, 3].into_iter().enumerate() {
            t.get(ServerId(i)).unwrap().conns.store(c, Relaxed);
        }
        let acls = AclSet::default();
        let sel = Selector::new(&t, &acls, 1, modes(Balance::LeastConn));
        let rr = AtomicUsize::new(usize::MAX);
        let picks: Vec<usize> = (0..4)
            .map(|_| sel.first_choice(CLIENT, 0, None, &rr).unwrap().0)
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
        t.get(ServerId(1)).unwrap().conns.store(2, Relaxed);
        assert_eq!(sel.first_choice(CLIENT, 0, None, &rr), Some(ServerId(2)));
    }

    /// With two servers p2c draws both, so it always takes the less loaded one.
    #[test]
    fn p2c_of_two_takes_the_less_loaded() {
        let t = table(&[0, 0]);
        t.get(ServerId(0)).unwrap().conns.store(5, Relaxed);
        let acls = AclSet::default();
        let sel = Selector::new(&t, &acls, 1, modes(Balance::P2c));
        let rr = AtomicUsize::new(0);
        for _ in 0..50 {
            assert_eq!(sel.first_choice(CLIENT, 0, None, &rr), Some(ServerId(1)));
        }
    }

    /// Random in weight mode: shares follow the weights (1:3, server of weight 0 never).
    #[test]
    fn random_by_weight() {
        let t = table(&[1, 3, 0]);
        let acls = AclSet::default();
        let m = Modes {
            weight: true,
            ..modes(Balance::Random)
        };
        let sel = Selector::new(&t, &acls, 1, m);
        let rr = AtomicUsize::new(0);
        let mut counts = [0u32; 3];
        for _ in 0..4000 {
            counts[sel.first_choice(CLIENT, 0, None, &rr).unwrap().0] += 1;
        }
        assert_eq!(counts[2], 0);
        // 1,000 expected for server 0: six standard deviations (27) either side.
        assert!((840..=1160).contains(&counts[0]), "{counts:?}");
    }

    /// `below` stays below its bound and reaches every value of a small range.
    #[test]
    fn below_covers_its_range() {
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let r = below(7);
            assert!(r < 7);
            if let Some(s) = seen.get_mut(r as usize) {
                *s = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }
}
