//! The system clock the runtime gives the workers and the control plane.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::domain::clock::Clock;

/// Monotonic milliseconds since this clock was made (plus one, so never 0), and the system's
/// wall clock.
#[derive(Debug)]
pub(crate) struct SystemClock {
    epoch: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub(crate) fn new() -> Self {
        SystemClock {
            epoch: Instant::now(),
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
    }

    fn wall_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
