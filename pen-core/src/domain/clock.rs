//! Time as an injected value. The workers and the control plane are given a [`Clock`]; pure code
//! takes `now` (milliseconds of that clock) as a parameter, so tests drive time with a
//! [`ManualClock`] instead of sleeping. The system clock lives in the runtime
//! (`runtime::clock::SystemClock`); this layer never reads the time itself.

#[cfg(any(test, feature = "fuzzing"))]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A source of time: a monotonic millisecond count for timers and expiry, and the wall clock
/// for what people read (log lines, the status page, `write`'s header).
pub(crate) trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds on a monotonic clock; never 0 (0 means "unset" in the tables).
    fn now_ms(&self) -> u64;
    /// Seconds since the Unix epoch.
    fn wall_secs(&self) -> u64;
}

/// A clock that moves only when told: for tests and simulations.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug)]
pub(crate) struct ManualClock {
    ms: AtomicU64,
    wall_ms: AtomicU64,
}

#[cfg(any(test, feature = "fuzzing"))]
impl ManualClock {
    /// A clock reading `now_ms` on the monotonic scale (raised to 1 if 0) and `wall_secs` on
    /// the wall clock.
    pub(crate) fn new(now_ms: u64, wall_secs: u64) -> Self {
        ManualClock {
            ms: AtomicU64::new(now_ms.max(1)),
            wall_ms: AtomicU64::new(wall_secs.saturating_mul(1000)),
        }
    }

    /// Moves both scales forward by `ms` milliseconds (saturating).
    #[cfg(test)]
    pub(crate) fn advance_ms(&self, ms: u64) {
        let add = |v: u64| Some(v.saturating_add(ms));
        let _ = self.ms.fetch_update(Relaxed, Relaxed, add);
        let _ = self.wall_ms.fetch_update(Relaxed, Relaxed, add);
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Relaxed)
    }

    fn wall_secs(&self) -> u64 {
        self.wall_ms.load(Relaxed) / 1000
    }
}

/// Seconds since the Unix epoch as a UTC `YYYY-MM-DD HH:MM:SS` (proleptic Gregorian calendar;
/// no time zone database needed).
pub(crate) fn format_utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, restated for u64).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::new(1_000, 1_700_000_000);
        clock.advance_ms(2_500);
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.wall_secs(), 1_700_000_002);
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_795_551_527), "2026-11-24 20:18:47");
    }
}
