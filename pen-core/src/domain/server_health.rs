//! The health of one server as pen itself knows it: the operator's state (`drain`, `maint`),
//! the verdict of pen's active checks and of an agent, and what live traffic showed (passive
//! ejection). Atomics only: a checker thread and the control plane write them, the workers
//! read them on every selection without a lock.
//!
//! This module only stores; how a state changes selection (and slow start, the panic
//! threshold) is decided by the selection code, and when a check changes the verdict (rise,
//! fall) by the checker.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// The operator's state of a server (`server N drain`, `server N maint`, `server N ready`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AdminState {
    /// Takes clients as usual.
    #[default]
    Ready,
    /// No new clients; existing connections finish; tracked clients move on their next connect.
    Drain,
    /// Out of service as if blacklisted for ever; checks keep running.
    Maint,
}

impl AdminState {
    fn code(self) -> u8 {
        match self {
            AdminState::Ready => 0,
            AdminState::Drain => 1,
            AdminState::Maint => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => AdminState::Drain,
            2 => AdminState::Maint,
            _ => AdminState::Ready,
        }
    }
}

/// What pen's active checks concluded (after their rise and fall thresholds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CheckVerdict {
    /// No check configured: the server counts as up.
    #[default]
    Unchecked,
    /// Checks pass.
    Up,
    /// Checks fail.
    Down,
}

impl CheckVerdict {
    fn code(self) -> u8 {
        match self {
            CheckVerdict::Unchecked => 0,
            CheckVerdict::Up => 1,
            CheckVerdict::Down => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => CheckVerdict::Up,
            2 => CheckVerdict::Down,
            _ => CheckVerdict::Unchecked,
        }
    }
}

/// The live health of one server (see the module docs). Default: ready, unchecked, full
/// weight, never ejected.
#[derive(Debug)]
pub struct ServerHealth {
    admin: AtomicU8,
    verdict: AtomicU8,
    /// Weight share an agent asked for, in percent (100 when no agent spoke).
    agent_pct: AtomicU32,
    /// When the server last became available (milliseconds, balancer clock); 0 = unknown,
    /// which slow start treats as "long ago".
    up_since_ms: AtomicU64,
    /// Ejected by passive detection until this time; 0 = not ejected.
    ejected_until_ms: AtomicU64,
    /// Failures seen on live traffic in a row (reset by a success).
    failures_in_row: AtomicU32,
    /// Ejections so far without a clean period (for the exponential back-off).
    ejections: AtomicU32,
}

impl Default for ServerHealth {
    fn default() -> Self {
        ServerHealth {
            admin: AtomicU8::new(AdminState::Ready.code()),
            verdict: AtomicU8::new(CheckVerdict::Unchecked.code()),
            agent_pct: AtomicU32::new(100),
            up_since_ms: AtomicU64::new(0),
            ejected_until_ms: AtomicU64::new(0),
            failures_in_row: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
        }
    }
}

impl ServerHealth {
    /// The operator's state.
    pub fn admin(&self) -> AdminState {
        AdminState::from_code(self.admin.load(Relaxed))
    }

    /// Sets the operator's state.
    pub fn set_admin(&self, state: AdminState) {
        self.admin.store(state.code(), Relaxed);
    }

    /// The active checks' verdict.
    pub fn verdict(&self) -> CheckVerdict {
        CheckVerdict::from_code(self.verdict.load(Relaxed))
    }

    /// Sets the active checks' verdict; a change to up at `now` starts the slow-start ramp.
    pub fn set_verdict(&self, v: CheckVerdict, now: u64) {
        let old = CheckVerdict::from_code(self.verdict.swap(v.code(), Relaxed));
        if v == CheckVerdict::Up && old == CheckVerdict::Down {
            self.up_since_ms.store(now, Relaxed);
        }
    }

    /// The weight share an agent asked for, in percent (100 by default).
    pub fn agent_pct(&self) -> u32 {
        self.agent_pct.load(Relaxed)
    }

    /// Sets the agent's weight share in percent.
    pub fn set_agent_pct(&self, pct: u32) {
        self.agent_pct.store(pct, Relaxed);
    }

    /// When the server last became available (0: unknown, long ago).
    pub fn up_since(&self) -> u64 {
        self.up_since_ms.load(Relaxed)
    }

    /// Records that the server became available at `now` (slow start ramps from here).
    pub fn mark_up_since(&self, now: u64) {
        self.up_since_ms.store(now, Relaxed);
    }

    /// Whether passive detection has ejected the server at `now`.
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now
    }

    /// Ejects the server until `until` (milliseconds), counting the ejection for back-off.
    pub fn eject_until(&self, until: u64) {
        self.ejected_until_ms.store(until, Relaxed);
        self.ejections.fetch_add(1, Relaxed);
    }

    /// Ejections so far without a clean period.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Relaxed)
    }

    /// Forgets past ejections (after a clean period).
    pub fn clear_ejections(&self) {
        self.ejections.store(0, Relaxed);
        self.ejected_until_ms.store(0, Relaxed);
    }

    /// Counts a failure on live traffic; the failures in a row so far.
    pub fn record_failure(&self) -> u32 {
        self.failures_in_row.fetch_add(1, Relaxed).saturating_add(1)
    }

    /// Counts a success on live traffic (the failures in a row start again).
    pub fn record_success(&self) {
        if self.failures_in_row.load(Relaxed) != 0 {
            self.failures_in_row.store(0, Relaxed);
        }
    }

    /// Failures on live traffic in a row.
    pub fn failures_in_row(&self) -> u32 {
        self.failures_in_row.load(Relaxed)
    }

    /// Copies the state of `other` (the same server across a reconfiguration).
    pub fn copy_from(&self, other: &ServerHealth) {
        self.admin.store(other.admin.load(Relaxed), Relaxed);
        self.verdict.store(other.verdict.load(Relaxed), Relaxed);
        self.agent_pct.store(other.agent_pct.load(Relaxed), Relaxed);
        self.up_since_ms
            .store(other.up_since_ms.load(Relaxed), Relaxed);
        self.ejected_until_ms
            .store(other.ejected_until_ms.load(Relaxed), Relaxed);
        self.failures_in_row
            .store(other.failures_in_row.load(Relaxed), Relaxed);
        self.ejections.store(other.ejections.load(Relaxed), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trips() {
        let h = ServerHealth::default();
        assert_eq!(h.admin(), AdminState::Ready);
        assert_eq!(h.verdict(), CheckVerdict::Unchecked);
        assert_eq!(h.agent_pct(), 100);
        assert!(!h.is_ejected(0));
        for s in [AdminState::Drain, AdminState::Maint, AdminState::Ready] {
            h.set_admin(s);
            assert_eq!(h.admin(), s);
        }
        h.set_verdict(CheckVerdict::Down, 5);
        h.set_verdict(CheckVerdict::Up, 7);
        assert_eq!((h.verdict(), h.up_since()), (CheckVerdict::Up, 7));
        assert_eq!((h.record_failure(), h.record_failure()), (1, 2));
        h.record_success();
        assert_eq!(h.failures_in_row(), 0);
        h.eject_until(100);
        assert!(h.is_ejected(99) && !h.is_ejected(100));
        assert_eq!(h.ejections(), 1);
        let copy = ServerHealth::default();
        copy.copy_from(&h);
        assert!(copy.is_ejected(99) && copy.verdict() == CheckVerdict::Up);
    }
}
