//! Active health checks as data (issue 13): what a check does ([`CheckSpec`], the argument of
//! `server N check ...`), the global timing ([`CheckSettings`]: `check_interval`,
//! `check_timeout`, `check_rise`, `check_fall`), the rise/fall state machine ([`RiseFall`]) and
//! the agent reply parser ([`parse_agent_reply`]). Pure: the checker thread in
//! `runtime/checker.rs` does the I/O and passes `now` in.

use std::fmt;

use crate::domain::server_health::{AdminState, CheckVerdict};

mod per_server;
pub use per_server::{parse_server_check, CheckTiming, ServerCheck};

/// Longest TEXT of `send`/`expect` and longest HTTP path or regular expression, in bytes.
pub const CHECK_TEXT_MAX: usize = 1024;
/// Longest `host NAME` of an HTTP check, in bytes (a DNS name is at most 253).
pub const CHECK_HOST_MAX: usize = 255;
/// Longest answer a check reads before it decides (an expectation not met by then fails).
pub const CHECK_READ_MAX: usize = 4096;

/// What a server's check expects to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Nothing: a completed send (or connect) passes.
    Nothing,
    /// These bytes somewhere in the answer.
    Text(Vec<u8>),
    /// A regular expression (`regex` crate syntax, one word as written) found in the answer.
    Regex(String),
}

/// One server's active check (`server N check KIND ...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    /// `connect`: the TCP connect succeeds.
    Connect,
    /// `send TEXT expect TEXT`, `send TEXT expect_re RE`, `expect TEXT` (a banner), `send TEXT`.
    Send {
        /// Bytes written after the connect (may be empty: a banner check).
        send: Vec<u8>,
        /// What the answer must contain.
        expect: Expect,
    },
    /// `http PATH [LO[-HI]] [host NAME]`: `GET PATH` with `Host:` NAME (by default the
    /// server's address); the status line's code must be within `lo..=hi` (default 200-399).
    Http {
        /// Request path (no whitespace).
        path: String,
        /// Lowest accepted status.
        lo: u16,
        /// Highest accepted status.
        hi: u16,
        /// The `Host:` header's value; `None`: the server's `address:port`.
        host: Option<String>,
    },
    /// `tls`: a TLS handshake completes (the certificate is not verified).
    Tls,
    /// `agent PORT`: connect to PORT on the server's address and read one line (see
    /// [`parse_agent_reply`]).
    Agent {
        /// The agent's port.
        port: u16,
    },
}

/// Why a check specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    /// A word that is not what the grammar expects here.
    #[error("unexpected `{token}`: expected {expected}")]
    Unexpected {
        /// The word.
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The specification stopped early.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A TEXT with a bad escape or over [`CHECK_TEXT_MAX`] bytes.
    #[error("bad text `{token}`: {reason}")]
    Text {
        /// The word.
        token: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Decodes a TEXT word: `\r \n \t \s (space) \\ \xHH`, other bytes as they are.
///
/// # Errors
/// [`CheckSpecError::Text`] for an unknown or short escape, or a text over [`CHECK_TEXT_MAX`].
pub fn unescape(word: &str) -> Result<Vec<u8>, CheckSpecError> {
    let bad = |reason| CheckSpecError::Text {
        token: word.to_string(),
        reason,
    };
    let mut out = Vec::with_capacity(word.len());
    let mut bytes = word.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b's') => b' ',
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
                match (hex(bytes.next()), hex(bytes.next())) {
                    (Some(h), Some(l)) => u8::try_from(h * 16 + l).map_err(|_| bad("bad \\x"))?,
                    _ => return Err(bad("expected two hex digits after \\x")),
                }
            }
            _ => return Err(bad("expected one of \\r \\n \\t \\s \\\\ \\xHH")),
        });
    }
    if out.len() > CHECK_TEXT_MAX {
        return Err(bad("longer than 1024 bytes"));
    }
    Ok(out)
}

/// Encodes bytes as one TEXT word that [`unescape`] reads back.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b' ' => out.push_str("\\s"),
            b'\\' => out.push_str("\\\\"),
            // `#` would start a comment at the front of a word.
            0x21..=0x7e if b != b'#' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Parses `connect`, `send TEXT [expect TEXT | expect_re RE]`, `expect TEXT`,
/// `http PATH [LO[-HI]] [host NAME]`, `tls`, `agent PORT` from the words after `check`, taking only the
/// words it needs from `words`. `off` (no check) is the caller's.
///
/// # Errors
/// [`CheckSpecError`] naming the word and what was expected.
pub fn parse_spec<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<CheckSpec, CheckSpecError> {
    const KIND: &str = "connect, send, expect, http, tls, agent or off";
    let kind = words.next().ok_or(CheckSpecError::Missing(KIND))?;
    Ok(match kind {
        "connect" => CheckSpec::Connect,
        "tls" => CheckSpec::Tls,
        "agent" => {
            let p = words
                .next()
                .ok_or(CheckSpecError::Missing("an agent port"))?;
            match p.parse::<u16>() {
                Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                    CheckSpec::Agent { port }
                }
                _ => {
                    return Err(CheckSpecError::Unexpected {
                        token: p.to_string(),
                        expected: "an agent port 1-65535",
                    })
                }
            }
        }
        "http" => {
            let path = words
                .next()
                .ok_or(CheckSpecError::Missing("an HTTP path"))?;
            if !path.starts_with('/') || path.len() > CHECK_TEXT_MAX {
                return Err(CheckSpecError::Unexpected {
                    token: path.to_string(),
                    expected: "an HTTP path starting with / (up to 1024 bytes)",
                });
            }
            let (mut lo, mut hi) = (200, 399);
            if let Some(range) = words.peek().copied().and_then(status_range) {
                words.next();
                (lo, hi) = range;
            }
            let mut host = None;
            if words.peek() == Some(&"host") {
                words.next();
                let name = words.next().ok_or(CheckSpecError::Missing("a host NAME"))?;
                host = Some(host_name(name)?);
            }
            CheckSpec::Http {
                path: path.to_string(),
                lo,
                hi,
                host,
            }
        }
        "send" => {
            let send = unescape(
                words
                    .next()
                    .ok_or(CheckSpecError::Missing("a TEXT to send"))?,
            )?;
            let expect = match words.peek().copied() {
                Some("expect" | "expect_re") => parse_expect(words)?,
                _ => Expect::Nothing,
            };
            CheckSpec::Send { send, expect }
        }
        "expect" | "expect_re" => CheckSpec::Send {
            send: Vec::new(),
            expect: {
                let text = words
                    .next()
                    .ok_or(CheckSpecError::Missing("a TEXT to expect"))?;
                expectation(kind, text)?
            },
        },
        other => {
            return Err(CheckSpecError::Unexpected {
                token: other.to_string(),
                expected: KIND,
            })
        }
    })
}

fn parse_expect<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<Expect, CheckSpecError> {
    let key = words.next().unwrap_or_default();
    let text = words
        .next()
        .ok_or(CheckSpecError::Missing("a TEXT to expect"))?;
    expectation(key, text)
}

fn expectation(key: &str, text: &str) -> Result<Expect, CheckSpecError> {
    if key == "expect_re" {
        if text.starts_with('#') {
            // It would read back as a comment: `\#` means the same to the regex.
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "a regular expression starting with # (write \\#)",
            });
        }
        if text.len() > CHECK_TEXT_MAX {
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "longer than 1024 bytes",
            });
        }
        // Taken as it is: the regex syntax has its own escapes (`\r`, `\x20`, `\s`).
        let re = text.to_string();
        if regex::bytes::RegexBuilder::new(&re)
            .size_limit(1 << 20)
            .build()
            .is_err()
        {
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "not a regular expression (regex crate syntax, up to 1 MiB compiled)",
            });
        }
        Ok(Expect::Regex(re))
    } else {
        Ok(Expect::Text(unescape(text)?))
    }
}

/// A `host NAME` for the `Host:` header: a DNS name or address, optionally with `:PORT`
/// (letters, digits, `-._:[]`, up to [`CHECK_HOST_MAX`] bytes), so that it can neither end
/// the header nor read back as a comment.
fn host_name(name: &str) -> Result<String, CheckSpecError> {
    let ok = !name.is_empty()
        && name.len() <= CHECK_HOST_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(CheckSpecError::Text {
            token: name.to_string(),
            reason: "a host name (letters, digits, - . _ : [ ], up to 255 bytes)",
        })
    }
}

/// `LO` or `LO-HI` with 100 <= LO <= HI <= 599; `None` for any other word.
pub fn status_range(word: &str) -> Option<(u16, u16)> {
    let code = |s: &str| {
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .filter(|c| (100..=599).contains(c))
    };
    let (lo, hi) = match word.split_once('-') {
        Some((l, h)) => (code(l)?, code(h)?),
        None => (code(word)?, code(word)?),
    };
    (lo <= hi).then_some((lo, hi))
}

impl fmt::Display for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSpec::Connect => f.write_str("connect"),
            CheckSpec::Tls => f.write_str("tls"),
            CheckSpec::Agent { port } => write!(f, "agent {port}"),
            CheckSpec::Http { path, lo, hi, host } => {
                if lo == hi {
                    write!(f, "http {path} {lo}")?;
                } else {
                    write!(f, "http {path} {lo}-{hi}")?;
                }
                match host {
                    Some(h) => write!(f, " host {h}"),
                    None => Ok(()),
                }
            }
            CheckSpec::Send { send, expect } => {
                let exp = match expect {
                    Expect::Nothing => String::new(),
                    Expect::Text(t) => format!("expect {}", escape(t)),
                    Expect::Regex(r) => format!("expect_re {r}"),
                };
                match (send.is_empty(), exp.is_empty()) {
                    (true, false) => f.write_str(&exp),
                    // Not made by the parser (a word is never empty): a connect check in effect.
                    (true, true) => f.write_str("connect"),
                    (false, true) => write!(f, "send {}", escape(send)),
                    (false, false) => write!(f, "send {} {exp}", escape(send)),
                }
            }
        }
    }
}

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

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
