//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016, section 3.4), written from the paper's description.
//!
//! Every server gets a permutation of the `M` table slots from two hashes of its *identity*
//! (its address and port, never its position in the list): `offset = h1 % M`,
//! `skip = h2 % (M - 1) + 1`, slot `j` of its permutation is `(offset + j * skip) % M`. With
//! `M` prime every permutation visits every slot. The servers then take turns claiming the
//! next free slot of their own permutation until the table is full; a server of weight `w`
//! claims a slot in a turn only when its accumulated credit reaches the largest weight, so
//! its share of the slots is `w / sum(w)`. The servers take their turns in the order of their
//! identities, so the same set of servers gives the same table whatever order they were
//! listed in, in every process on every machine (the hashes are fixed functions, not
//! [`std::collections::hash_map::RandomState`]).
//!
//! A client's key (see [`client_hash`](crate::domain::policy::client_hash)) picks slot
//! `key % M`: one array index per lookup. Failover walks the key's preference order
//! ([`MaglevTable::next_after`]): further slots drawn from the same key, then every other
//! server in identity order, so a client of a server that is down goes to the same next
//! server in every pen, and the clients of one server spread over the others by weight.

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::RwLock;

use crate::domain::server::{ServerId, ServerTable};

/// The table size unless `maglev_table` says otherwise: a prime above 100 x the servers of
/// most pools, as the paper advises (shares within about 1 %).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// How many distinct servers a key's preference order takes from further table slots before
/// going on in identity order.
const HEAD: usize = 16;
/// How many further slots are drawn to find them.
const PROBES: u64 = 64;

/// SplitMix64 finaliser: a cheap mix in which every input bit affects every output bit.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether `n` is a prime (trial division: at most ~1,000 steps for the largest table).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n % 2 == 0 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The bytes that identify a server: address family, address, port.
fn identity(addr: SocketAddr) -> ([u8; 19], usize) {
    let mut b = [0u8; 19];
    let port = addr.port().to_be_bytes();
    let len = match addr.ip() {
        IpAddr::V4(v4) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&v4.octets());
            b[5..7].copy_from_slice(&port);
            7
        }
        IpAddr::V6(v6) => {
            b[0] = 6;
            b[1..17].copy_from_slice(&v6.octets());
            b[17..19].copy_from_slice(&port);
            19
        }
    };
    (b, len)
}

/// FNV-1a over `bytes` then mixed with `seed`: a fixed function, the same everywhere.
fn identity_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h ^ seed)
}

/// One server as the table sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    id: ServerId,
    addr: SocketAddr,
    weight: u32,
}

impl Member {
    /// Identity order: address family, address, port; then weight and position, so that even
    /// two servers with the same address are ordered.
    fn cmp_identity(&self, other: &Self) -> Ordering {
        let (a, al) = identity(self.addr);
        let (b, bl) = identity(other.addr);
        a.get(..al)
            .cmp(&b.get(..bl))
            .then(self.weight.cmp(&other.weight))
            .then(self.id.0.cmp(&other.id.0))
    }
}

/// A Maglev lookup table over a set of servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    /// The table size asked for (the slots, unless there are no servers).
    size: u32,
    /// For each slot, an index into `order`.
    slots: Vec<u32>,
    /// The servers in identity order.
    order: Vec<ServerId>,
    /// For each server number, its index in `order` (`u32::MAX`: not in the table).
    rank: Vec<u32>,
    /// The inputs, for [`MaglevCache`] to tell whether a rebuild would change anything.
    members: Vec<Member>,
}

impl MaglevTable {
    /// The table of size `size` (a prime, see [`is_prime`]; other sizes still give a table,
    /// but some servers may then be left out of some permutations) for the servers given as
    /// (number, address, weight). A weight of 0 counts as 1: weights are ratios, and C pen's
    /// default weight is 0.
    pub fn build(servers: &[(ServerId, SocketAddr, u32)], size: u32) -> Self {
        let mut members: Vec<Member> = servers
            .iter()
            .map(|&(id, addr, weight)| Member {
                id,
                addr,
                weight: weight.max(1),
            })
            .collect();
        members.sort_by(Member::cmp_identity);
        Self::from_members(members, size)
    }

    /// The table of `members` (already in identity order).
    fn from_members(members: Vec<Member>, size: u32) -> Self {
        let size = size.max(1);
        let order: Vec<ServerId> = members.iter().map(|m| m.id).collect();
        let rank_len = order.iter().map(|id| id.0 + 1).max().unwrap_or(0);
        let mut rank = vec![u32::MAX; rank_len];
        for (r, id) in order.iter().enumerate() {
            if let Some(slot) = rank.get_mut(id.0) {
                *slot = r as u32;
            }
        }
        let slots = populate(&members, size);
        MaglevTable {
            size,
            slots,
            order,
            rank,
            members,
        }
    }

    /// The table for the servers of `table` that have an address, by their configured
    /// weights.
    pub fn from_servers(table: &ServerTable, size: u32) -> Self {
        Self::from_members(members_of(table), size)
    }

    /// The number of slots.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The number of servers in the table.
    pub fn servers(&self) -> usize {
        self.order.len()
    }

    /// Whether server `id` is in the table.
    pub fn contains(&self, id: ServerId) -> bool {
        self.rank.get(id.0).is_some_and(|&r| r != u32::MAX)
    }

    /// The server of each slot, in slot order (for tests and digests).
    pub fn entries(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.slots
            .iter()
            .filter_map(|&i| self.order.get(i as usize).copied())
    }

    /// The server at `slot`.
    fn at(&self, slot: u64) -> Option<ServerId> {
        let len = self.slots.len() as u64;
        if len == 0 {
            return None;
        }
        let i = *self.slots.get((slot % len) as usize)?;
        self.order.get(i as usize).copied()
    }

    /// The server for `key`: one array index. `None` for an empty table.
    pub fn lookup(&self, key: u64) -> Option<ServerId> {
        self.at(key)
    }

    /// The first distinct servers of `key`'s preference order (the first one is
    /// [`MaglevTable::lookup`]'s), up to [`HEAD`] ranks on the stack; drawing stops early,
    /// with [`Head::Next`], at the first one after rank `after`.
    fn head(&self, key: u64, after: u32) -> Head {
        let mut head = [0u32; HEAD];
        let mut len = 0;
        let want = self.order.len().min(HEAD);
        let len_slots = self.slots.len() as u64;
        if len_slots == 0 {
            return Head::Full(head, 0);
        }
        let mut seen_after = false;
        for probe in 0..=PROBES {
            if len >= want {
                break;
            }
            let slot = if probe == 0 {
                key % len_slots
            } else {
                mix64(key ^ probe.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % len_slots
            };
            let Some(&r) = self.slots.get(slot as usize) else {
                continue;
            };
            if head.get(..len).is_some_and(|h| h.contains(&r)) {
                continue;
            }
            if seen_after {
                return Head::Next(r);
            }
            if let Some(h) = head.get_mut(len) {
                *h = r;
            }
            len += 1;
            seen_after = r == after;
        }
        Head::Full(head, len)
    }

    /// Failover in `key`'s preference order: the server after `last`, cyclically, or `None`
    /// when that would be `first` again (the round is over) or `last` is not in the table.
    /// The order is the distinct servers of further slots drawn from the key (so a down
    /// server's clients spread over the others by weight), then every other server in
    /// identity order; it depends only on the key and the set of servers, so every pen fails
    /// a client over to the same server. No allocation.
    pub fn next_after(&self, key: u64, first: ServerId, last: ServerId) -> Option<ServerId> {
        let n = self.order.len();
        let last_rank = *self.rank.get(last.0).filter(|&&r| r != u32::MAX)?;
        let next_rank = match self.head(key, last_rank) {
            Head::Next(r) => r,
            Head::Full(head, hl) => {
                let head = head.get(..hl)?;
                let &h0 = head.first()?;
                // The tail: identity order from just after `start`, skipping the head, up
                // to the first server (where the order wraps round).
                let tail_from = |start: u32| -> Option<u32> {
                    let mut r = start;
                    for _ in 0..n {
                        r = if r as usize + 1 >= n { 0 } else { r + 1 };
                        if r == h0 {
                            return None;
                        }
                        if !head.contains(&r) {
                            return Some(r);
                        }
                    }
                    None
                };
                let from = if head.contains(&last_rank) {
                    h0
                } else {
                    last_rank
                };
                tail_from(from).unwrap_or(h0)
            }
        };
        let next = *self.order.get(next_rank as usize)?;
        (next != first && next != last).then_some(next)
    }
}

/// The start of a preference order ([`MaglevTable::head`]).
enum Head {
    /// The rank after the one asked about.
    Next(u32),
    /// The whole head: ranks and how many.
    Full([u32; HEAD], usize),
}

/// The servers of `table` that have an address, in identity order, weight 0 counted as 1.
fn members_of(table: &ServerTable) -> Vec<Member> {
    let mut members: Vec<Member> = table
        .iter()
        .filter(|(_, s)| s.has_address())
        .filter_map(|(id, s)| {
            s.addr.map(|addr| Member {
                id,
                addr,
                weight: s.weight.max(1),
            })
        })
        .collect();
    members.sort_by(Member::cmp_identity);
    members
}

/// Fills the slots: the members (in identity order) take turns claiming the next free slot of
/// their permutation, a member of weight `w` in a turn when its credit reaches the largest
/// weight.
fn populate(members: &[Member], size: u32) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    let m = u64::from(size);
    let mut slots = vec![EMPTY; size as usize];
    if members.is_empty() {
        return Vec::new();
    }
    let wmax = members
        .iter()
        .map(|x| u64::from(x.weight))
        .max()
        .unwrap_or(1);
    // (position in the permutation, skip, credit) per member.
    let mut state: Vec<(u64, u64, u64)> = members
        .iter()
        .map(|x| {
            let (b, l) = identity(x.addr);
            let bytes = b.get(..l).unwrap_or(&[]);
            let offset = identity_hash(bytes, 0x6d61_676c_6576_3031) % m;
            let skip = if m > 1 {
                identity_hash(bytes, 0x6d61_676c_6576_3032) % (m - 1) + 1
            } else {
                1
            };
            (offset, skip, 0)
        })
        .collect();
    let mut filled = 0u64;
    while filled < m {
        let mut claimed = false;
        for (i, (pos, skip, credit)) in state.iter_mut().enumerate() {
            *credit += u64::from(members.get(i).map_or(1, |x| x.weight));
            if *credit < wmax {
                continue;
            }
            *credit -= wmax;
            // A prime size makes the permutation visit every slot, so a free one is found
            // within `m` steps; the bound keeps a non-prime size from looping.
            for _ in 0..m {
                let slot = *pos;
                *pos = (*pos + *skip) % m;
                if let Some(s) = slots.get_mut(slot as usize) {
                    if *s == EMPTY {
                        *s = i as u32;
                        filled += 1;
                        claimed = true;
                        break;
                    }
                }
            }
            if filled == m {
                break;
            }
        }
        if !claimed {
            // Only with a size that is not a prime: the permutations left some slots out.
            // They go to the members in turn, so the build always ends.
            let n = members.len() as u32;
            for (k, s) in slots.iter_mut().filter(|s| **s == EMPTY).enumerate() {
                *s = k as u32 % n;
            }
            break;
        }
    }
    slots
}

/// The table of a [`ServerTable`], built on first use after a change and kept until the
/// servers, their weights or the table size change (not per connection).
#[derive(Debug, Default)]
pub struct MaglevCache {
    table: RwLock<Option<MaglevTable>>,
    /// The servers may have changed since the table was built ([`MaglevCache::invalidate`]).
    stale: AtomicBool,
}

impl MaglevCache {
    /// The servers may have changed: the next use compares them with the table's and
    /// rebuilds it if they differ.
    pub fn invalidate(&self) {
        self.stale.store(true, Relaxed);
    }

    /// `f` applied to the table for `servers` at `size`: under a read lock while the cached
    /// table is current (one lock and one load per connection), else after rebuilding it.
    pub fn with<R>(
        &self,
        servers: &ServerTable,
        size: u32,
        f: impl FnOnce(&MaglevTable) -> R,
    ) -> R {
        let size = size.max(1);
        if !self.stale.load(Relaxed) {
            let guard = match self.table.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(t) = guard.as_ref().filter(|t| t.size() == size) {
                return f(t);
            }
        }
        let mut guard = match self.table.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.stale.store(false, Relaxed);
        let members = members_of(servers);
        let current = guard
            .as_ref()
            .is_some_and(|t| t.size() == size && t.members == members);
        if !current {
            *guard = Some(MaglevTable::from_members(members, size));
        }
        match guard.as_ref() {
            Some(t) => f(t),
            None => f(&MaglevTable::from_members(Vec::new(), size)),
        }
    }
}

#[cfg(test)]
#[path = "maglev_tests.rs"]
mod tests;
