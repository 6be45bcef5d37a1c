//! A process-wide monotonic millisecond clock. Pure code takes `now` as a parameter (so tests
//! need no sleeps); only the reactor and the control plane read the clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call in this process (never 0, so 0 can mean "unset").
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}
