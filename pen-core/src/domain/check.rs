//! Active health checks as data (issue 13): what a check does ([`CheckSpec`], the argument of
//! `server N check ...`), the global timing ([`CheckSettings`]: `check_interval`,
//! `check_timeout`, `check_rise`, `check_fall`), the rise/fall state machine ([`RiseFall`]) and
//! the agent reply parser ([`parse_agent_reply`]). Pure: the checker thread in
//! `runtime/checker.rs` does the I/O and passes `now` in.

use crate::domain::server_health::{AdminState, CheckVerdict};

mod per_server;
pub use per_server::{parse_server_check, CheckTiming, ServerCheck};
mod result;
mod spec;
pub use result::{CheckResult, CheckSnapshot, LastCheck, LastCheckCounts, CHECK_BUCKETS_MS};
pub use spec::{
    escape, parse_spec, status_range, unescape, CheckSpec, CheckSpecError, Expect, CHECK_HOST_MAX,
    CHECK_TEXT_MAX,
};

/// Longest answer a check reads before it decides (an expectation not met by then fails).
pub const CHECK_READ_MAX: usize = 4096;

/// The timing of every check (`check_interval`, `check_timeout`, `check_rise`, `check_fall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckSettings {
    /// Milliseconds between two checks of one server (default 2000), ±15% jitter.
    pub interval_ms: u64,
    /// Milliseconds one check may take, connect included (default 1000).
    pub timeout_ms: u64,
    /// Successes in a row that make a down server up (default 2).
    pub rise: u32,
    /// Failures in a row that make an up server down (default 3).
    pub fall: u32,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            interval_ms: 2000,
            timeout_ms: 1000,
            rise: 2,
            fall: 3,
        }
    }
}

/// Most milliseconds of `check_interval` and `check_timeout` (one hour).
pub const CHECK_MS_MAX: u64 = 3_600_000;
/// Least milliseconds of `check_interval` and `check_timeout` (so a typo cannot spin).
pub const CHECK_MS_MIN: u64 = 10;
/// Most of `check_rise` and `check_fall`.
pub const CHECK_COUNT_MAX: u32 = 1000;

/// The rise/fall state machine of one server. A new one starts [`CheckVerdict::Unchecked`]:
/// the first result decides at once (a server pen starts with is neither trusted nor
/// distrusted for `fall` intervals), after that `rise` successes or `fall` failures in a row
/// change the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiseFall {
    verdict: CheckVerdict,
    /// Results in a row that disagree with the verdict.
    streak: u32,
}

impl RiseFall {
    /// A machine already at `verdict` (taken over from the pen this one replaced): `rise`
    /// successes or `fall` failures in a row change it, as if this pen had checked all along.
    pub fn from_verdict(verdict: CheckVerdict) -> Self {
        RiseFall { verdict, streak: 0 }
    }

    /// The current verdict.
    pub fn verdict(&self) -> CheckVerdict {
        self.verdict
    }

    /// Whether the state is changing (a result disagreed with the verdict): probe faster.
    pub fn changing(&self) -> bool {
        self.streak > 0
    }

    /// Records one result; returns the new verdict if it changed.
    pub fn record(&mut self, ok: bool, s: &CheckSettings) -> Option<CheckVerdict> {
        let (agrees, to, need) = match self.verdict {
            CheckVerdict::Unchecked => {
                self.verdict = if ok {
                    CheckVerdict::Up
                } else {
                    CheckVerdict::Down
                };
                return Some(self.verdict);
            }
            CheckVerdict::Up => (ok, CheckVerdict::Down, s.fall),
            CheckVerdict::Down => (!ok, CheckVerdict::Up, s.rise),
        };
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak >= need.max(1) {
            self.streak = 0;
            self.verdict = to;
            return Some(to);
        }
        None
    }
}

/// What an agent said: a verdict, an operator state and a weight share, each if given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentReply {
    /// `up` / `down`.
    pub up: Option<bool>,
    /// `ready`, `drain`, `maint`.
    pub admin: Option<AdminState>,
    /// `N%` (0-100; more is capped at 100).
    pub pct: Option<u32>,
}

/// Parses one agent line: words separated by spaces, commas or tabs, each `up`, `down`,
/// `ready`, `drain`, `maint` or `N%` (case-insensitive; `up` also sets `ready`). Unknown words
/// are ignored (agents of other balancers send more); a line with no known word is `None`.
pub fn parse_agent_reply(line: &[u8]) -> Option<AgentReply> {
    let text = String::from_utf8_lossy(line);
    let mut r = AgentReply::default();
    let mut any = false;
    for w in text.split([' ', ',', '\t', '\r', '\n']) {
        let w = w.trim().to_ascii_lowercase();
        match w.as_str() {
            "up" => {
                r.up = Some(true);
                r.admin = r.admin.or(Some(AdminState::Ready));
            }
            "down" => r.up = Some(false),
            "ready" => r.admin = Some(AdminState::Ready),
            "drain" => r.admin = Some(AdminState::Drain),
            "maint" => r.admin = Some(AdminState::Maint),
            _ => match w.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(n)) => r.pct = Some(n.min(100)),
                _ => continue,
            },
        }
        any = true;
    }
    any.then_some(r)
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
