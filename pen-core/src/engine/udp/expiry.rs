//! Expiry and closing: flows idle for the flow idle time end; each flow's bytes reach its
//! client's counters while it lives and when it closes.

use std::sync::atomic::Ordering::Relaxed;

use super::{idle_secs, unreported, UdpWorker};
use crate::domain::clients::source_key;

impl UdpWorker {
    /// Adds the bytes each flow relayed since its last report to its client's counters (one
    /// lock for all), so that `recent` counts a UDP client's bytes while its flow lives.
    fn report_bytes(&mut self) {
        let mut deltas = Vec::new();
        for slot in 0..self.slots.capacity() {
            if let Some(f) = self.slots.get_mut(slot) {
                if let Some(d) = unreported(f) {
                    deltas.push(d);
                }
            }
        }
        if deltas.is_empty() {
            return;
        }
        let mut clients = self.shared.clients.lock();
        for (ip, to_client, from_client) in deltas {
            clients.add_bytes(ip, to_client, from_client);
        }
    }

    /// Closes flows idle for the flow idle time.
    pub(super) fn sweep(&mut self, now: u64) {
        self.report_bytes();
        let idle = idle_secs(self.shared.settings.read().idle_timeout_secs);
        let limit = idle.saturating_mul(1000);
        for slot in 0..self.slots.capacity() {
            let stale =
                (self.slots.get(slot)).is_some_and(|f| now.saturating_sub(f.last_active) >= limit);
            if stale {
                self.shared.counters.idle_timeouts.fetch_add(1, Relaxed);
                self.close(slot);
            }
        }
    }

    pub(super) fn close(&mut self, slot: usize) {
        let Some(flow) = self.slots.get(slot) else {
            return;
        };
        if let Some(s) = self.shared.servers.read().target(flow.target) {
            s.release();
        }
        self.close_uncounted(slot);
    }

    /// Closes without touching the target's flow count (already released).
    pub(super) fn close_uncounted(&mut self, slot: usize) {
        let Some(mut flow) = self.slots.remove(slot) else {
            return;
        };
        self.flows.remove(&flow.client);
        let source = source_key(flow.ip);
        if let Some(n) = self.sources.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sources.remove(&source);
            }
        }
        self.poller.delete(&flow.sock);
        if let Some((ip, to_client, from_client)) = unreported(&mut flow) {
            self.shared
                .clients
                .lock()
                .add_bytes(ip, to_client, from_client);
        }
        self.shared.release();
    }
}
