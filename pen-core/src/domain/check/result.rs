//! The outcome of checks ([`CheckResult`]) and the per-server record the checker writes and
//! the queries, status page and metrics read ([`LastCheck`], [`CheckSnapshot`]).

use std::fmt;

use crate::domain::server_health::CheckVerdict;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// No check has finished yet.
    None,
    /// It passed.
    Ok,
    /// The connect (or a read or write) failed.
    Failed,
    /// It took longer than `check_timeout`.
    Timeout,
    /// The server answered something else than expected (or closed first).
    BadAnswer,
    /// An agent said `down`.
    AgentDown,
}

impl CheckResult {
    const ALL: [CheckResult; 6] = [
        CheckResult::None,
        CheckResult::Ok,
        CheckResult::Failed,
        CheckResult::Timeout,
        CheckResult::BadAnswer,
        CheckResult::AgentDown,
    ];

    /// Whether the server passed.
    pub fn ok(self) -> bool {
        self == CheckResult::Ok
    }

    /// The word `servers` and the events show.
    pub fn word(self) -> &'static str {
        match self {
            CheckResult::None => "none",
            CheckResult::Ok => "ok",
            CheckResult::Failed => "failed",
            CheckResult::Timeout => "timeout",
            CheckResult::BadAnswer => "bad_answer",
            CheckResult::AgentDown => "agent_down",
        }
    }
}

/// The last check of a server and its counters, as atomics the checker writes and the
/// queries, status page and metrics read.
#[derive(Debug, Default)]
pub struct LastCheck {
    result: std::sync::atomic::AtomicU8,
    /// How long the last check took, in microseconds.
    micros: std::sync::atomic::AtomicU64,
    /// Verdict changes so far.
    transitions: std::sync::atomic::AtomicU64,
    /// Checks so far per duration bucket (see [`CHECK_BUCKETS_MS`]), the last one for longer.
    buckets: [std::sync::atomic::AtomicU64; CHECK_BUCKETS_MS.len() + 1],
    /// Sum of all check durations in microseconds.
    sum_micros: std::sync::atomic::AtomicU64,
}

/// A [`LastCheck`] as plain values (see [`LastCheck::counts`], [`LastCheck::absorb`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastCheckCounts {
    /// The last result.
    pub result: CheckResult,
    /// How long it took, in microseconds.
    pub micros: u64,
    /// Verdict changes.
    pub transitions: u64,
    /// The duration histogram (per bucket, not cumulative).
    pub buckets: [u64; CHECK_BUCKETS_MS.len() + 1],
    /// Sum of the durations in microseconds.
    pub sum_micros: u64,
}

impl CheckResult {
    /// Its number on the upgrade channel (0 for [`CheckResult::None`]).
    pub fn code(self) -> u8 {
        let i = CheckResult::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or(0);
        u8::try_from(i).unwrap_or(0)
    }

    /// The result numbered `code`, if any.
    pub fn from_code(code: u8) -> Option<CheckResult> {
        CheckResult::ALL.get(usize::from(code)).copied()
    }
}

/// Upper bounds of the check duration histogram, in milliseconds.
pub const CHECK_BUCKETS_MS: [u64; 8] = [1, 5, 10, 25, 50, 100, 500, 1000];

impl LastCheck {
    /// Records a finished check.
    pub fn record(&self, r: CheckResult, micros: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let code = CheckResult::ALL.iter().position(|c| *c == r).unwrap_or(0);
        self.result.store(u8::try_from(code).unwrap_or(0), Relaxed);
        self.micros.store(micros, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
        let i = CHECK_BUCKETS_MS
            .iter()
            .position(|&ms| micros <= ms * 1000)
            .unwrap_or(CHECK_BUCKETS_MS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
    }

    /// Takes over the record of the pen this one replaced (binary upgrade): its last result
    /// and duration where this one has checked nothing yet, and its counters added to these.
    pub fn absorb(&self, old: &LastCheckCounts) {
        use std::sync::atomic::Ordering::Relaxed;
        let add = |a: &std::sync::atomic::AtomicU64, n: u64| {
            let _ = a.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_add(n)));
        };
        if self.result() == CheckResult::None {
            let code = CheckResult::ALL
                .iter()
                .position(|c| *c == old.result)
                .unwrap_or(0);
            self.result.store(u8::try_from(code).unwrap_or(0), Relaxed);
            self.micros.store(old.micros, Relaxed);
        }
        add(&self.transitions, old.transitions);
        add(&self.sum_micros, old.sum_micros);
        for (b, n) in self.buckets.iter().zip(old.buckets) {
            add(b, n);
        }
    }

    /// Its record as plain values (to carry across a binary upgrade).
    pub fn counts(&self) -> LastCheckCounts {
        let (buckets, sum_micros) = self.histogram();
        LastCheckCounts {
            result: self.result(),
            micros: self.micros(),
            transitions: self.transitions(),
            buckets,
            sum_micros,
        }
    }

    /// Counts a verdict change.
    pub fn transition(&self) {
        self.transitions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The last result.
    pub fn result(&self) -> CheckResult {
        let c = self.result.load(std::sync::atomic::Ordering::Relaxed);
        CheckResult::ALL
            .get(usize::from(c))
            .copied()
            .unwrap_or(CheckResult::None)
    }

    /// How long the last check took, in microseconds.
    pub fn micros(&self) -> u64 {
        self.micros.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verdict changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The histogram: per bucket of [`CHECK_BUCKETS_MS`] (and one for longer) the count of
    /// checks in it (not cumulative), and the sum of durations in microseconds.
    pub fn histogram(&self) -> ([u64; CHECK_BUCKETS_MS.len() + 1], u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = [0; CHECK_BUCKETS_MS.len() + 1];
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            *o = b.load(Relaxed);
        }
        (out, self.sum_micros.load(Relaxed))
    }
}

/// A server's checks at one moment, for the status page and the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSnapshot {
    /// The verdict: `Some(true)` up, `Some(false)` down, `None` not decided yet.
    pub up: Option<bool>,
    /// The last result.
    pub last: Option<CheckResult>,
    /// How long the last check took, in microseconds.
    pub last_micros: u64,
    /// Verdict changes so far.
    pub transitions: u64,
    /// Checks per duration bucket ([`CHECK_BUCKETS_MS`], then longer), not cumulative.
    pub buckets: [u64; CHECK_BUCKETS_MS.len() + 1],
    /// Sum of check durations in microseconds.
    pub sum_micros: u64,
}

impl fmt::Display for CheckSnapshot {
    /// `check up, last ok in 1 ms` (the status page's words).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = self
            .up
            .map_or("unchecked", |up| if up { "up" } else { "down" });
        let last = self.last.map_or("none", CheckResult::word);
        let ms = self.last_micros / 1000;
        write!(f, "check {verdict}, last {last} in {ms} ms")
    }
}

impl LastCheck {
    /// A snapshot with the verdict `v`.
    pub fn snapshot(&self, v: CheckVerdict) -> CheckSnapshot {
        let (buckets, sum_micros) = self.histogram();
        CheckSnapshot {
            up: match v {
                CheckVerdict::Up => Some(true),
                CheckVerdict::Down => Some(false),
                CheckVerdict::Unchecked => None,
            },
            last: Some(self.result()).filter(|r| *r != CheckResult::None),
            last_micros: self.micros(),
            transitions: self.transitions(),
            buckets,
            sum_micros,
        }
    }
}
