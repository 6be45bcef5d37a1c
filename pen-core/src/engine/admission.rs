//! Admission against the `-x` limit, one implementation for both engines: a client connection
//! (TCP) or flow (UDP) is counted in `Shared::active` while it lives; at the limit a TCP worker
//! stops accepting, and whoever frees a place at the limit wakes every worker.

use std::sync::atomic::Ordering::Relaxed;

use crate::engine::state::Shared;

impl Shared {
    /// Counts one more connection or flow against `-x`; `false` (nothing counted) at the
    /// limit.
    pub(crate) fn admit(&self) -> bool {
        let max = self.conn_max.load(Relaxed);
        if self.active.fetch_add(1, Relaxed) >= max {
            self.active.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// Uncounts a connection or flow; at the limit, wakes the workers paused there.
    pub(crate) fn release(&self) {
        let prev = self
            .active
            .fetch_update(Relaxed, Relaxed, |a| Some(a.saturating_sub(1)))
            .unwrap_or(0);
        if prev >= self.conn_max.load(Relaxed) {
            self.wake_all();
        }
    }
}
