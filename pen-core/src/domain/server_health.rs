//! The health of one server as pen itself knows it: the operator's state (`drain`, `maint`),
//! the verdict of pen's active checks and of an agent, and what live traffic showed (passive
//! ejection). Atomics only: a checker thread and the control plane write them, the workers
//! read them on every selection without a lock.
//!
//! This module only stores; how a state changes selection (and slow start, the panic
//! threshold) is decided by the selection code, and when a check changes the verdict (rise,
//! fall) by the checker.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// The largest agent weight share selection honours, in percent (HAProxy's agent allows up
/// to 256 %; more is taken as this).
pub const AGENT_PCT_MAX: u32 = 1000;

/// The settings of server states (slow start, panic threshold, passive detection), one
/// field of `Settings` so that they travel together. The defaults keep C pen's behaviour:
/// no slow start, no panic threshold, and passive detection as C pen's blacklist (a single
/// failed connect takes the server out for `blacklist` seconds, no back-off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateSettings {
    /// `slow_start S`: seconds over which a server coming back ramps its weight (0 = off).
    pub slow_start_secs: u64,
    /// `panic_threshold P`: percent of servers below which panic mode starts (0 = off).
    pub panic_pct: u32,
    /// `panic_threshold P open|refuse`: what panic mode does.
    pub panic_mode: PanicMode,
    /// `outlier_failures N`: failures in a row on live traffic that eject a server; 0 (the
    /// default) keeps C pen's rule: every failed connect blacklists for `blacklist` seconds.
    pub outlier_failures: u32,
    /// `outlier_ejection_time S`: the first ejection's length; each further one without a
    /// clean period doubles it, up to [`EJECTION_MAX_SECS`] (default 30).
    pub outlier_ejection_secs: u64,
    /// `outlier_max_percent P`: at most this share of the servers ejected at once (default 50).
    pub outlier_max_pct: u32,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            slow_start_secs: 0,
            panic_pct: 0,
            panic_mode: PanicMode::Open,
            outlier_failures: 0,
            outlier_ejection_secs: 30,
            outlier_max_pct: 50,
        }
    }
}

impl StateSettings {
    /// The selection rules these settings give.
    pub fn rules(&self) -> StateRules {
        StateRules {
            slow_start_ms: self.slow_start_secs.saturating_mul(1000),
            panic_pct: self.panic_pct,
            panic_mode: self.panic_mode,
        }
    }
}

/// The longest ejection, whatever the back-off (seconds).
pub const EJECTION_MAX_SECS: u64 = 300;

/// The length of an ejection after `previous` ejections without a clean period, for a base
/// of `base_secs`: base x 2^previous, capped at [`EJECTION_MAX_SECS`] (or at the base when the
/// operator set a longer one), in milliseconds.
pub fn ejection_ms(base_secs: u64, previous: u32) -> u64 {
    let cap = EJECTION_MAX_SECS.max(base_secs);
    let secs = base_secs
        .checked_shl(previous.min(32))
        .filter(|&s| s >> previous.min(32) == base_secs)
        .map_or(cap, |s| s.min(cap));
    secs.saturating_mul(1000)
}

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
    /// The word in commands and in `servers`: `ready`, `drain`, `maint`.
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

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

    /// Whether the health lets the server take a new client at `now`: the operator's state is
    /// ready, the checks do not say down, and passive detection has not ejected it. The one
    /// rule selection (TCP and UDP, every mode) applies on top of address, blacklist, limits
    /// and ACL; see `Server::in_service`.
    pub fn takes_new_clients(&self, now: u64) -> bool {
        self.admin() == AdminState::Ready && self.is_healthy(now)
    }

    /// Whether checks and live traffic find the server healthy at `now` (whatever the
    /// operator's state): not checked down, not ejected.
    pub fn is_healthy(&self, now: u64) -> bool {
        self.verdict() != CheckVerdict::Down && !self.is_ejected(now)
    }

    /// The slow-start share at `now` in per mille: 1000 when `ramp_ms` is 0 (off) or the
    /// server came back at least `ramp_ms` ago (or at an unknown time), otherwise rising
    /// linearly from 100 (10 %) at `up_since` to 1000.
    pub fn ramp_permille(&self, now: u64, ramp_ms: u64) -> u64 {
        ramp_permille_since(self.back_since(0), now, ramp_ms)
    }

    /// When the server last came back, counting the end of a passive ejection and the end of
    /// a blacklisting (`blacklisted_until`, the server's own deadline) as a return too: the
    /// latest of those and [`ServerHealth::up_since`] (0: unknown, long ago).
    pub fn back_since(&self, blacklisted_until: u64) -> u64 {
        self.up_since()
            .max(self.ejected_until())
            .max(blacklisted_until)
    }

    /// The weight selection uses in weight mode: `weight` scaled by the agent's share and by
    /// slow start (`ramp_ms`, 0 = off) at `now`, the ramp starting at `since` (see
    /// [`ServerHealth::back_since`]). In units of weight x 1/100 % x 1/10, at most `weight`
    /// x 1000, so two of them multiplied fit a u64 for weights up to a million.
    pub fn effective_weight_since(&self, weight: u32, since: u64, now: u64, ramp_ms: u64) -> u32 {
        let pct = u64::from(self.agent_pct().min(AGENT_PCT_MAX));
        let w = u64::from(weight)
            .saturating_mul(pct)
            .saturating_mul(ramp_permille_since(since, now, ramp_ms))
            / 1000;
        u32::try_from(w).unwrap_or(u32::MAX)
    }

    /// [`ServerHealth::effective_weight_since`] from [`ServerHealth::back_since`] without a
    /// blacklisting.
    pub fn effective_weight(&self, weight: u32, now: u64, ramp_ms: u64) -> u32 {
        self.effective_weight_since(weight, self.back_since(0), now, ramp_ms)
    }

    /// Until when passive detection ejected the server (0: never, or forgotten).
    pub fn ejected_until(&self) -> u64 {
        self.ejected_until_ms.load(Relaxed)
    }

    /// A failure on live traffic at `now` under `cfg` (`outlier_failures` at least 1; the
    /// caller keeps C pen's blacklist when it is 0). Returns the ejection length in
    /// milliseconds when this failure ejects the server: the `outlier_failures`-th in a row,
    /// when `may_eject` (the share of servers already ejected allows one more). The length
    /// is `outlier_ejection_time` x 2^(ejections so far), at most [`EJECTION_MAX_SECS`] (or
    /// the base itself when that is longer). The count in a row starts again after an
    /// ejection.
    pub fn on_failure(&self, now: u64, cfg: &StateSettings, may_eject: bool) -> Option<u64> {
        let n = self.record_failure();
        if n < cfg.outlier_failures.max(1) || !may_eject || self.is_ejected(now) {
            return None;
        }
        let ms = ejection_ms(cfg.outlier_ejection_secs, self.ejections());
        self.failures_in_row.store(0, Relaxed);
        self.eject_until(now.saturating_add(ms));
        Some(ms)
    }

    /// A success on live traffic at `now`: the failures in a row start again, and once the
    /// server has been clean (not ejected) for as long as its last ejection would now last,
    /// the back-off starts again too.
    pub fn on_success(&self, now: u64, cfg: &StateSettings) {
        self.record_success();
        let k = self.ejections();
        if k == 0 {
            return;
        }
        let until = self.ejected_until();
        if now >= until.saturating_add(ejection_ms(cfg.outlier_ejection_secs, k.saturating_sub(1)))
        {
            self.clear_ejections();
        }
    }

    /// Passive detection's state as it crosses a binary upgrade: ejected until `ejected_until`
    /// (0: not), after `ejections` ejections without a clean period, `failures` failures in
    /// a row so far.
    pub fn restore_passive(&self, ejected_until: u64, ejections: u32, failures: u32) {
        self.ejected_until_ms.store(ejected_until, Relaxed);
        self.ejections.store(ejections, Relaxed);
        self.failures_in_row.store(failures, Relaxed);
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

/// The slow-start share at `now` in per mille for a server back since `since` (0: long ago):
/// 1000 when `ramp_ms` is 0 (off) or `since` is at least `ramp_ms` ago, 1000 too while
/// `since` is still ahead (the server is still out: selection does not use it), otherwise
/// rising linearly from 100 (10 %) at `since` to 1000.
pub fn ramp_permille_since(since: u64, now: u64, ramp_ms: u64) -> u64 {
    if ramp_ms == 0 || since == 0 || since > now {
        return 1000;
    }
    let elapsed = now.saturating_sub(since);
    if elapsed >= ramp_ms {
        return 1000;
    }
    // elapsed < ramp_ms, so the quotient is below 900: no overflow (ramp_ms is bounded by
    // the seconds maximum, times 1000, times 900 fits a u64).
    100 + elapsed.saturating_mul(900) / ramp_ms
}

/// What to do when too few servers are available (`panic_threshold P open|refuse`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PanicMode {
    /// Spread clients over every server with an address, ignoring health (check verdict,
    /// passive ejection, blacklist), keeping the operator's drain and maint, ACLs and limits.
    #[default]
    Open,
    /// Keep refusing: only available servers are used, as without a threshold.
    Refuse,
}

impl PanicMode {
    /// The word in `panic_threshold P open|refuse`.
    pub fn word(self) -> &'static str {
        match self {
            PanicMode::Open => "open",
            PanicMode::Refuse => "refuse",
        }
    }
}

/// How server states shape selection beyond "available or not": slow start and the panic
/// threshold. The default is off for both (C pen's selection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StateRules {
    /// Slow start in milliseconds (0: off): a server that came back ramps its weight.
    pub slow_start_ms: u64,
    /// Panic threshold in percent of the servers (0: off).
    pub panic_pct: u32,
    /// What panic mode does.
    pub panic_mode: PanicMode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outlier(n: u32, base: u64) -> StateSettings {
        StateSettings {
            outlier_failures: n,
            outlier_ejection_secs: base,
            ..StateSettings::default()
        }
    }

    #[test]
    fn takes_new_clients_only_when_ready_up_and_not_ejected() {
        let h = ServerHealth::default();
        assert!(h.takes_new_clients(10));
        h.set_admin(AdminState::Drain);
        assert!(!h.takes_new_clients(10) && h.is_healthy(10));
        h.set_admin(AdminState::Maint);
        assert!(!h.takes_new_clients(10));
        h.set_admin(AdminState::Ready);
        h.set_verdict(CheckVerdict::Down, 10);
        assert!(!h.takes_new_clients(10));
        h.set_verdict(CheckVerdict::Up, 20);
        assert!(h.takes_new_clients(20));
        h.eject_until(30);
        assert!(!h.takes_new_clients(29) && h.takes_new_clients(30));
    }

    #[test]
    fn ejection_after_n_failures_with_back_off_and_clean_reset() {
        let cfg = outlier(3, 10);
        let h = ServerHealth::default();
        assert_eq!(h.on_failure(1_000, &cfg, true), None);
        assert_eq!(h.on_failure(1_001, &cfg, true), None);
        // A success in between starts the count again.
        h.on_success(1_002, &cfg);
        assert_eq!(h.on_failure(1_003, &cfg, true), None);
        assert_eq!(h.on_failure(1_004, &cfg, true), None);
        assert_eq!(h.on_failure(1_005, &cfg, true), Some(10_000));
        assert!(h.is_ejected(11_004) && !h.is_ejected(11_005));
        // Not while the share of ejected servers is used up.
        for t in 0..3 {
            assert_eq!(h.on_failure(20_000 + t, &cfg, false), None);
        }
        // The failures went on counting: the next one that may eject does, with back-off
        // (20 s, then 40 s, ...).
        assert_eq!(h.on_failure(21_000, &cfg, true), Some(20_000));
        // A success soon after the ejection keeps the back-off...
        h.on_success(41_000 + 5_000, &cfg);
        assert_eq!(h.ejections(), 2);
        // ...one after a clean period as long as the last ejection resets it.
        h.on_success(41_000 + 20_000, &cfg);
        assert_eq!(h.ejections(), 0);
        for t in 0..2 {
            assert_eq!(h.on_failure(70_000 + t, &cfg, true), None);
        }
        assert_eq!(h.on_failure(70_002, &cfg, true), Some(10_000));
    }

    #[test]
    fn ramp_rises_from_a_tenth_to_full() {
        let h = ServerHealth::default();
        assert_eq!(h.ramp_permille(5_000, 10_000), 1000, "never down: full");
        h.mark_up_since(1_000);
        assert_eq!(h.ramp_permille(1_000, 0), 1000, "slow start off");
        assert_eq!(h.ramp_permille(1_000, 10_000), 100);
        assert_eq!(h.ramp_permille(6_000, 10_000), 550);
        assert_eq!(h.ramp_permille(11_000, 10_000), 1000);
        assert_eq!(h.effective_weight(4, 6_000, 10_000), 4 * 100 * 550 / 1000);
        h.set_agent_pct(50);
        assert_eq!(h.effective_weight(4, 20_000, 10_000), 200);
        h.set_agent_pct(u32::MAX);
        assert_eq!(h.effective_weight(1_000_000, 20_000, 10_000), 1_000_000_000);
    }

    proptest! {
        /// An ejection never lasts longer than the cap (or the base, when longer), never
        /// shorter than the base, and never wraps.
        #[test]
        fn ejection_is_capped(base in 1u64..=31_536_000, k in any::<u32>()) {
            let ms = ejection_ms(base, k);
            prop_assert!(ms >= base * 1000);
            prop_assert!(ms <= EJECTION_MAX_SECS.max(base) * 1000);
            if k < 64 && base.checked_shl(k).is_some_and(|v| v >> k == base && v <= EJECTION_MAX_SECS) {
                prop_assert_eq!(ms, (base << k) * 1000);
            }
        }

        /// The effective weight is monotonic in the ramp and never above weight x 1000.
        #[test]
        fn effective_weight_bounded(w in 0u32..=1_000_000, pct in 0u32..=2000, since in 1u64..1000, after in 0u64..20_000) {
            let h = ServerHealth::default();
            h.set_agent_pct(pct);
            h.mark_up_since(since);
            let now = since + after;
            let e = h.effective_weight(w, now, 10_000);
            prop_assert!(u64::from(e) <= u64::from(w) * 1000);
            prop_assert!(e <= h.effective_weight(w, now + 1000, 10_000));
        }
    }

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
