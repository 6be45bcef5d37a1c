//! New flows: the client ACL, the per-source and `-x` bounds (the admission rules in the
//! parent module's documentation), selection and the upstream socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{Flow, UdpWorker};
use crate::domain::clients::source_key;
use crate::engine::net::canonical_ip;
use crate::engine::route;
use crate::engine::slab::key;

impl UdpWorker {
    /// Makes a flow for a new client address: client ACL, the per-source and `-x` bounds
    /// (see the module's admission rules), selection, the upstream socket. `None` when the
    /// datagram is to be dropped.
    pub(super) fn new_flow(&mut self, client: SocketAddr, now: u64) -> Option<usize> {
        let shared = Arc::clone(&self.shared);
        let ip = canonical_ip(client.ip());
        let source = source_key(ip);
        let per_source = shared.settings.read().conn_per_client;
        let held = self.sources.get(&source).copied().unwrap_or(0);
        if per_source > 0 && held as usize >= per_source {
            // The source's own stalest flow makes room; never another source's.
            self.evict_oldest_of(source);
        }
        if !shared.admit() {
            // At the -x limit: only a source holding several flows here gives one up.
            if !self.evict_from_crowded(source) || !shared.admit() {
                shared.counters.accept_pauses.fetch_add(1, Relaxed);
                return None;
            }
        }
        let who = format_args!("UDP client {client}");
        let Some((target, first)) = route::choose(&shared, ip, client.port(), now, &who) else {
            self.shared.release();
            return None;
        };
        shared.counters.accepted.fetch_add(1, Relaxed);
        let Some((target, sock, proxy)) = self.open(target, first, ip, now) else {
            self.shared.release();
            return None;
        };
        let flow = Flow {
            client,
            ip,
            sock,
            target,
            first,
            failed: false,
            last_active: now,
            sent: 0,
            received: 0,
            reported: (0, 0),
            proxy,
        };
        let (slot, gen) = self.slots.insert(flow);
        let registered = match self.slots.get(slot) {
            Some(f) => self.poller.add(&f.sock, key(slot, gen, false)),
            None => Err(io::ErrorKind::NotFound.into()),
        };
        if let Err(e) = registered {
            log::warn!("cannot watch UDP server socket: {e}");
            if let Some(s) = shared.servers.read().target(target) {
                s.release();
            }
            drop(self.slots.remove(slot));
            self.shared.release();
            return None;
        }
        self.flows.insert(client, slot);
        let held = self.sources.entry(source).or_insert(0);
        *held = held.saturating_add(1);
        Some(slot)
    }

    /// At the `-x` limit: closes the least recently active flow of the source holding the most
    /// flows on this worker (the new datagram's own `source` first among equals), if it holds
    /// more than one. False when every source holds at most one: nothing is evicted. (Scans:
    /// they happen only at the limit.)
    fn evict_from_crowded(&mut self, source: IpAddr) -> bool {
        let crowded = (self.sources.iter())
            .map(|(&s, &n)| (n, s == source, s))
            .max_by_key(|&(n, own, _)| (n, own));
        match crowded {
            Some((n, _, s)) if n > 1 => self.evict_oldest_of(s),
            _ => false,
        }
    }

    /// Closes the least recently active flow of `source` on this worker; false if it has none.
    fn evict_oldest_of(&mut self, source: IpAddr) -> bool {
        let oldest = (self.slots.iter())
            .filter(|(_, f)| source_key(f.ip) == source)
            .map(|(i, f)| (f.last_active, i))
            .min();
        match oldest {
            Some((_, slot)) => {
                self.close(slot);
                true
            }
            None => false,
        }
    }
}
