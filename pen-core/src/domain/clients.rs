//! The client tracking table: client address -> last server, bounded, least recently used evicted.
//!
//! A hash map from address to slot plus an intrusive doubly linked LRU list over a slot vector:
//! lookup, insert and eviction are O(1) and nothing allocates once the table is full.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::domain::server::ServerId;

const NIL: u32 = u32::MAX;

/// The most client slots a table can have (larger sizes are clamped to it).
pub const MAX_CAPACITY: usize = NIL as usize - 1;

/// One remembered client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEntry {
    /// The client address.
    pub addr: IpAddr,
    /// The server it used last.
    pub server: ServerId,
    /// When it was last seen (milliseconds of the balancer's monotonic clock).
    pub last_ms: u64,
    /// Connections made.
    pub connects: u64,
    /// Bytes sent to the client (as in C pen's `recent`: the client's point of view is the
    /// other way round).
    pub sent: u64,
    /// Bytes received from the client.
    pub received: u64,
}

#[derive(Debug)]
struct Slot {
    entry: ClientEntry,
    prev: u32,
    next: u32,
}

/// The hasher of every table keyed by client input (this client table, the UDP flows, any
/// per-client count): std's SipHash-1-3 with random keys drawn once per process, so that no
/// one can choose addresses that collide (an unkeyed, invertible hash let one IPv6 /64 of
/// colliding addresses raise a lookup from 28 ns to 12.7 us at 20,000 entries, under the lock
/// every accept takes). Measured in benches/results/client-table-hashing.md. The `-h` hash
/// *policy* (which server a client goes to) stays deterministic: it is `policy::client_hash`.
pub(crate) type ClientHashBuilder = std::collections::hash_map::RandomState;

/// The key under which per-source limits count a client: its IPv4 address, or its IPv6 /64
/// (one host usually holds a whole /64, so counting single IPv6 addresses would be no limit).
/// `ip` is expected canonical (an IPv4-mapped IPv6 address already turned into IPv4).
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// The bounded client table.
#[derive(Debug)]
pub struct ClientTable {
    index: HashMap<IpAddr, u32, ClientHashBuilder>,
    slots: Vec<Slot>,
    capacity: usize,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl ClientTable {
    /// A table with room for `capacity` clients (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        ClientTable {
            index: HashMap::with_hasher(ClientHashBuilder::new()),
            slots: Vec::new(),
            capacity,
            head: NIL,
            tail: NIL,
        }
    }

    /// Slots available.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Grows the table to `capacity` (it never shrinks while running, as in C pen).
    pub fn grow(&mut self, capacity: usize) {
        self.capacity = self.capacity.max(capacity.min(NIL as usize - 1));
    }

    /// The server `addr` used last, unless forgotten: an entry older than `tracking_secs`
    /// (when > 0) no longer chooses the server, but stays (with its connects and bytes, which
    /// the next [`record`](Self::record) adds to, as in C pen) until evicted.
    pub fn lookup(&mut self, addr: IpAddr, now: u64, tracking_secs: u64) -> Option<ServerId> {
        let i = *self.index.get(&addr)?;
        let e = &self.slot(i)?.entry;
        if tracking_secs > 0 && now.saturating_sub(e.last_ms) > tracking_secs.saturating_mul(1000) {
            return None;
        }
        Some(e.server)
    }

    /// Records that `addr` connected to `server` at `now`, evicting the least recently used
    /// client if the table is full: the new client takes its slot, as in C pen (see
    /// [`in_slot_order`](Self::in_slot_order)).
    pub fn record(&mut self, addr: IpAddr, server: ServerId, now: u64) {
        if let Some(&i) = self.index.get(&addr) {
            if let Some(s) = self.slot_mut(i) {
                let e = &mut s.entry;
                e.server = server;
                e.last_ms = now;
                e.connects = e.connects.saturating_add(1);
                self.touch(i);
                return;
            }
        }
        let entry = ClientEntry {
            addr,
            server,
            last_ms: now,
            connects: 1,
            sent: 0,
            received: 0,
        };
        if self.slots.len() >= self.capacity && self.tail != NIL {
            // Full (the capacity never shrinks): the least recently used slot is reused in place.
            let i = self.tail;
            if let Some(old) = self.slot(i).map(|s| s.entry.addr) {
                self.unlink(i);
                self.index.remove(&old);
                if let Some(s) = self.slot_mut(i) {
                    s.entry = entry;
                }
                self.index.insert(addr, i);
                self.link_front(i);
            }
            return;
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            entry,
            prev: NIL,
            next: NIL,
        });
        self.index.insert(addr, i);
        self.link_front(i);
    }

    /// Adds transferred bytes to `addr`'s counters (if still remembered).
    pub fn add_bytes(&mut self, addr: IpAddr, sent: u64, received: u64) {
        if let Some(s) = self
            .index
            .get(&addr)
            .and_then(|&i| self.slots.get_mut(i as usize))
        {
            s.entry.sent = s.entry.sent.saturating_add(sent);
            s.entry.received = s.entry.received.saturating_add(received);
        }
    }

    /// Forgets every client tracked to `server` (used when a server is removed or changed).
    pub fn forget_server(&mut self, server: ServerId) {
        let doomed: Vec<u32> = (0u32..)
            .zip(&self.slots)
            .filter(|(_, s)| s.entry.server == server)
            .map(|(i, _)| i)
            .collect();
        // Remove from the highest slot down: removal moves the last slot into the hole.
        for i in doomed.into_iter().rev() {
            self.remove_slot(i);
        }
    }

    /// Takes in an entry remembered by the pen this one replaced (binary upgrade), as the most
    /// recently used. An address this table already knows (it connected here since) keeps its
    /// server and time, the later ones; the connects and bytes are added. The least recently
    /// used client is evicted when the table is full, as by [`record`](Self::record).
    pub fn import(&mut self, e: ClientEntry) {
        if let Some(&i) = self.index.get(&e.addr) {
            if let Some(s) = self.slot_mut(i) {
                let mine = &mut s.entry;
                if e.last_ms > mine.last_ms {
                    (mine.server, mine.last_ms) = (e.server, e.last_ms);
                }
                mine.connects = mine.connects.saturating_add(e.connects);
                mine.sent = mine.sent.saturating_add(e.sent);
                mine.received = mine.received.saturating_add(e.received);
            }
            return;
        }
        let (addr, server, now) = (e.addr, e.server, e.last_ms);
        self.record(addr, server, now);
        let i = self.index.get(&addr).copied();
        if let Some(s) = i.and_then(|i| self.slot_mut(i)) {
            s.entry = e;
        }
    }

    /// Entries, most recently used first.
    pub fn iter(&self) -> impl Iterator<Item = &ClientEntry> {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            let s = self.slots.get(cur as usize)?;
            cur = s.next;
            Some(&s.entry)
        })
    }

    /// Entries in slot order, C pen's `recent` order: the order clients were first seen in,
    /// except that a client that evicted another one takes its place (and one removed by
    /// [`forget_server`](Self::forget_server) is replaced by the last).
    pub fn in_slot_order(&self) -> impl Iterator<Item = &ClientEntry> {
        self.slots.iter().map(|s| &s.entry)
    }

    /// The entry for `addr`, if remembered (no expiry check).
    pub fn get(&self, addr: IpAddr) -> Option<&ClientEntry> {
        self.index
            .get(&addr)
            .and_then(|&i| self.slot(i))
            .map(|s| &s.entry)
    }

    // Slot indices come from `index` and the links, which only ever name live slots (every
    // removal re-points them); `get` keeps a broken invariant from panicking: the operation
    // is then skipped.
    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)
    }

    /// Sets the `next` link of slot `i`, or the head when `i` is NIL.
    fn set_next(&mut self, i: u32, next: u32) {
        if i == NIL {
            self.head = next;
        } else if let Some(s) = self.slot_mut(i) {
            s.next = next;
        }
    }

    /// Sets the `prev` link of slot `i`, or the tail when `i` is NIL.
    fn set_prev(&mut self, i: u32, prev: u32) {
        if i == NIL {
            self.tail = prev;
        } else if let Some(s) = self.slot_mut(i) {
            s.prev = prev;
        }
    }

    fn unlink(&mut self, i: u32) {
        let Some(&Slot { prev, next, .. }) = self.slot(i) else {
            return;
        };
        self.set_next(prev, next);
        self.set_prev(next, prev);
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        let Some(s) = self.slot_mut(i) else {
            return;
        };
        s.prev = NIL;
        s.next = old;
        self.set_prev(old, i);
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    /// Removes slot `i`, moving the last slot into its place to keep the vector dense.
    fn remove_slot(&mut self, i: u32) {
        let Some(addr) = self.slot(i).map(|s| s.entry.addr) else {
            return;
        };
        self.unlink(i);
        self.index.remove(&addr);
        // `i` is a live slot, so the vector is not empty and `last` >= `i`.
        let last = self.slots.len() as u32 - 1;
        if i != last {
            // Re-point the neighbours of `last` at `i` before moving it.
            if let Some((moved, prev, next)) =
                self.slot(last).map(|s| (s.entry.addr, s.prev, s.next))
            {
                self.set_next(prev, i);
                self.set_prev(next, i);
                self.index.insert(moved, i);
            }
        }
        self.slots.swap_remove(i as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    /// An imported entry is taken as it is; one for a client seen here since is merged (the
    /// later server and time win, the counts add); the bound holds.
    #[test]
    fn import_takes_new_entries_and_merges_known_ones() {
        let mut t = ClientTable::new(2);
        let old = |addr: u32, server: usize, last_ms: u64| ClientEntry {
            addr: ip(addr),
            server: ServerId(server),
            last_ms,
            connects: 4,
            sent: 10,
            received: 20,
        };
        t.import(old(1, 1, 500));
        assert_eq!(t.get(ip(1)), Some(&old(1, 1, 500)));
        t.record(ip(2), ServerId(0), 900);
        t.import(old(2, 1, 800));
        let e = t.get(ip(2)).unwrap();
        assert_eq!(
            (e.server, e.last_ms, e.connects, e.sent),
            (ServerId(0), 900, 5, 10)
        );
        t.import(old(3, 1, 100));
        assert_eq!(t.len(), 2);
        assert!(t.get(ip(1)).is_none(), "the least recently used went");
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut t = ClientTable::new(2);
        t.record(ip(1), ServerId(0), 1);
        t.record(ip(2), ServerId(1), 2);
        assert_eq!(t.lookup(ip(1), 3, 0), Some(ServerId(0)));
        t.record(ip(1), ServerId(0), 3); // 1 is now most recent
        t.record(ip(3), ServerId(1), 4); // evicts 2
        assert_eq!(t.lookup(ip(2), 5, 0), None);
        assert_eq!(t.lookup(ip(1), 5, 0), Some(ServerId(0)));
        assert_eq!(t.len(), 2);
    }

    /// C pen's `recent` order: first seen first; a new client takes the evicted one's place.
    #[test]
    fn slot_order_is_first_seen_and_an_evicting_client_takes_the_slot() {
        let mut t = ClientTable::new(3);
        for (a, now) in [(2, 1), (3, 2), (4, 3), (3, 4), (4, 5), (5, 6)] {
            t.record(ip(a), ServerId(0), now);
        }
        let order: Vec<IpAddr> = t.in_slot_order().map(|e| e.addr).collect();
        assert_eq!(
            order,
            [ip(5), ip(3), ip(4)],
            "5 took the slot of 2, the least recent"
        );
    }

    /// The tables' hasher is keyed: two builders hash one address differently (the old
    /// unkeyed hasher gave every table, and every attacker, the same function).
    #[test]
    fn client_hashing_is_keyed() {
        use std::hash::BuildHasher;
        let a = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
        let (x, y) = (ClientHashBuilder::new(), ClientHashBuilder::new());
        assert_ne!(x.hash_one(a), y.hash_one(a));
    }

    #[test]
    fn source_keys_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(source_key(ip(0x7f00_0002)), ip(0x7f00_0002));
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            source_key(v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            v6("2001:db8:1:2::")
        );
        assert_eq!(
            source_key(v6("2001:db8:1:2::1")),
            source_key(v6("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            source_key(v6("2001:db8:1:2::1")),
            source_key(v6("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn expires_after_tracking_time() {
        let mut t = ClientTable::new(8);
        t.record(ip(1), ServerId(0), 1000);
        assert_eq!(t.lookup(ip(1), 10_000, 10), Some(ServerId(0)));
        assert_eq!(t.lookup(ip(1), 11_001, 10), None);
        // The entry stays: the next connect counts on (C pen's `recent` after expiry).
        t.record(ip(1), ServerId(1), 11_002);
        assert_eq!(
            t.get(ip(1)).map(|e| (e.server, e.connects)),
            Some((ServerId(1), 2))
        );
    }

    proptest! {
        /// The table never exceeds its size and behaves like a reference LRU list.
        #[test]
        fn matches_reference_lru(cap in 1usize..8, ops in prop::collection::vec((0u32..12, 0usize..3), 0..200)) {
            let mut t = ClientTable::new(cap);
            let mut model: Vec<(u32, usize)> = Vec::new(); // most recent first
            let mut slots: Vec<u32> = Vec::new(); // C pen's slot order
            let v4 = |e: &ClientEntry| match e.addr { IpAddr::V4(v) => u32::from(v), IpAddr::V6(_) => 0 };
            for (now, (a, s)) in ops.into_iter().enumerate() {
                t.record(ip(a), ServerId(s), now as u64 + 1);
                if !slots.contains(&a) {
                    match model.get(cap - 1).filter(|_| model.len() == cap) {
                        Some(&(gone, _)) => slots.iter_mut().filter(|x| **x == gone).for_each(|x| *x = a),
                        None => slots.push(a),
                    }
                }
                model.retain(|&(x, _)| x != a);
                model.insert(0, (a, s));
                model.truncate(cap);
                prop_assert!(t.len() <= cap);
                let got: Vec<(u32, usize)> = t.iter().map(|e| (v4(e), e.server.0)).collect();
                prop_assert_eq!(&got, &model);
                let order: Vec<u32> = t.in_slot_order().map(v4).collect();
                prop_assert_eq!(&order, &slots);
            }
        }
    }
}

#[cfg(test)]
#[path = "clients_props.rs"]
mod props;
