//! Health sources: what an external check (a probe, a service registry, an orchestrator) knows
//! about whether a server is up. Selection consults one in addition to pen's own blacklist: a
//! server it reports down takes no new client, exactly as if it were blacklisted.

use std::fmt;

use crate::domain::server::ServerId;

/// Whether a server is up, as far as something outside pen knows. Plugged in with
/// [`Config::with_health`](crate::Config::with_health); without one every server is up
/// (only pen's blacklist keeps a server out).
///
/// Called on the connection path, for each server a selection looks at, under the table's
/// read lock: answer from memory (e.g. an atomic flag a checker thread sets), never by doing
/// I/O.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
/// use pen_core::health::HealthSource;
/// use pen_core::server::ServerId;
///
/// /// Up/down flags set by a probe thread elsewhere.
/// #[derive(Debug)]
/// struct Probed(Vec<AtomicBool>);
///
/// impl HealthSource for Probed {
///     fn is_up(&self, id: ServerId, _now: u64) -> bool {
///         self.0.get(id.0).is_none_or(|up| up.load(Relaxed))
///     }
/// }
///
/// let probed = Probed(vec![AtomicBool::new(true), AtomicBool::new(false)]);
/// assert!(probed.is_up(ServerId(0), 0) && !probed.is_up(ServerId(1), 0));
/// ```
pub trait HealthSource: Send + Sync + fmt::Debug {
    /// Whether server `id` may take new clients at `now` (milliseconds of the balancer's
    /// monotonic clock, as in [`SelectionContext::now`](crate::policy::SelectionContext::now)).
    fn is_up(&self, id: ServerId, now: u64) -> bool;
}

/// The default health source: every server is up.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysUp;

impl HealthSource for AlwaysUp {
    fn is_up(&self, _id: ServerId, _now: u64) -> bool {
        true
    }
}
