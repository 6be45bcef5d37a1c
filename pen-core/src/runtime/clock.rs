//! The system clock the runtime gives the workers and the control plane.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::domain::clock::Clock;

/// Monotonic milliseconds since this clock was made (plus one, so never 0), and the system's
/// wall clock.
#[derive(Debug)]
pub(crate) struct SystemClock {
    epoch: Instant,
    /// Added to every reading: a pen started by an upgrade continues its predecessor's scale,
    /// so that times older than its own start (a client seen a minute ago) can be expressed.
    base: u64,
}

impl SystemClock {
    /// A clock starting now.
    pub(crate) fn new() -> Self {
        SystemClock::continuing(0)
    }

    /// A clock whose first reading is just above `base_ms` (an upgraded pen's predecessor's
    /// reading when it handed over).
    pub(crate) fn continuing(base_ms: u64) -> Self {
        SystemClock {
            epoch: Instant::now(),
            base: base_ms,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
            .saturating_add(self.base)
    }

    fn wall_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
