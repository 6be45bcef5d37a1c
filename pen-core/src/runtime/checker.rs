//! The active health checker (issue 13): one thread, one poller, non-blocking sockets, at most
//! one check in flight per server. The thread starts when the first check is configured and
//! ends when the last is removed ([`Gate`]); while it runs it follows the server table (a check
//! added, changed, readdressed or removed by penctl or a reload is picked up within [`TICK`])
//! and stops with the balancer.
//!
//! Why a thread of its own and not the workers' timers: a check's connect, TLS handshake and
//! regular expression would cost the relay's latency on the worker that ran it, checks would
//! have to be split between workers (or run N times), and a worker stalled by traffic would
//! delay the checks that are meant to notice trouble. One thread sleeping in its own poller
//! costs nothing on the hot path: the workers only read the verdict (an atomic).
//!
//! Timing: every server is first checked at a point spread over the first interval (by its
//! number), then every `check_interval` ±15% (jitter, so checks of many pens do not line up),
//! and every quarter interval while the verdict is changing (a result disagreed with it).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::domain::check::{CheckResult, CheckSettings, CheckSpec, Expect, RiseFall};
use crate::domain::event::Event;
use crate::domain::server::{Server, ServerId, ServerTable, Target};
use crate::domain::server_health::CheckVerdict;
use crate::engine::state::Shared;
use crate::poll::{Events, Poller};

mod probe;
use probe::{connect, step, Phase, Probe};

/// Longest sleep while checks exist, so that reconfiguration and stop are noticed.
const TICK: Duration = Duration::from_millis(50);

/// Starts the checker thread on demand: none runs while no server has a check, so a
/// C-pen-compatible configuration has no extra thread and no wake-ups. The controller calls
/// [`Gate::ensure`] after each committed change and the balancer once at start; the thread
/// ends when the last check is removed (deciding so under the gate's lock, so that a check
/// added at that moment either keeps it or starts a new one).
#[derive(Default)]
pub(crate) struct Gate {
    /// The thread, while one runs (or has ended and is not yet joined), and whether it runs.
    inner: Mutex<(Option<JoinHandle<()>>, bool)>,
}

impl Gate {
    /// Starts the thread if a server has a check, the balancer runs and none is running.
    pub(crate) fn ensure(self: &Arc<Self>, shared: &Arc<Shared>) {
        if !shared.running.load(Relaxed) || shared.stopping.load(Relaxed) || !any_check(shared) {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.1 {
            return;
        }
        // A thread that ended when the last check went: it has left (or is leaving) `run`.
        if let Some(old) = inner.0.take() {
            let _ = old.join();
        }
        let sh = Arc::clone(shared);
        let gate = Arc::clone(self);
        let spawned = Poller::new().and_then(|poller| {
            std::thread::Builder::new()
                .name("pen-checker".into())
                .spawn(move || Checker::new(sh, poller, gate).run())
        });
        match spawned {
            Ok(t) => *inner = (Some(t), true),
            Err(e) => log::warn!("cannot start the health checker: {e}"),
        }
    }

    /// Waits for the thread to end (the balancer is stopping).
    pub(crate) fn join(&self) {
        let handle = self.inner.lock().0.take();
        if let Some(t) = handle {
            let _ = t.join();
        }
    }

    /// Called by the thread with no check left: it may end unless a check came meanwhile.
    fn may_end(&self, shared: &Shared) -> bool {
        let mut inner = self.inner.lock();
        if any_check(shared) && !shared.stopping.load(Relaxed) {
            return false;
        }
        inner.1 = false;
        true
    }
}

/// Whether any server has a check to run.
fn any_check(shared: &Shared) -> bool {
    let table = shared.servers.read();
    let found = entries(&table).any(|(_, s)| s.check.is_some() && s.has_address());
    found
}

/// The checker's key of the emergency server (`-e`; numbered servers are keyed by number, at
/// most a few thousand). Also the probe's key in the poller, which keeps `u64::MAX` for its
/// waker: hence far from both ends.
const EMERGENCY_KEY: usize = usize::MAX / 2;
/// The checker's key of the abuse server (`-B`).
const ABUSE_KEY: usize = usize::MAX / 2 + 1;

/// Every server that may have a check, with its key: the numbered ones, the emergency and the
/// abuse server.
fn entries(table: &ServerTable) -> impl Iterator<Item = (usize, &Server)> {
    (table.iter().map(|(ServerId(id), s)| (id, s)))
        .chain(table.emergency.as_ref().map(|s| (EMERGENCY_KEY, s)))
        .chain(table.abuse.as_ref().map(|s| (ABUSE_KEY, s)))
}

/// The server a checker key names.
fn target_of(key: usize) -> Target {
    match key {
        EMERGENCY_KEY => Target::Emergency,
        ABUSE_KEY => Target::Abuse,
        id => Target::Server(ServerId(id)),
    }
}

/// One checked server.
struct Slot {
    addr: SocketAddr,
    spec: CheckSpec,
    regex: Option<regex::bytes::Regex>,
    rf: RiseFall,
    due: u64,
    probe: Option<Probe>,
    /// The server's own timing (`server N check ... interval MS ...`) over the global one.
    timing: crate::domain::check::CheckTiming,
}

struct Checker {
    shared: Arc<Shared>,
    poller: Poller,
    slots: HashMap<usize, Slot>,
    settings: CheckSettings,
    rng: u64,
    tls: Option<Arc<rustls::ClientConfig>>,
    gate: Arc<Gate>,
}

impl Checker {
    fn new(shared: Arc<Shared>, poller: Poller, gate: Arc<Gate>) -> Self {
        let seed = shared.now_ms() ^ u64::from(std::process::id()).rotate_left(32);
        Checker {
            shared,
            poller,
            slots: HashMap::new(),
            settings: CheckSettings::default(),
            rng: seed | 1,
            tls: None,
            gate,
        }
    }

    fn run(mut self) {
        let mut events = Events::new();
        while !self.shared.stopping.load(Relaxed) {
            let now = self.shared.now_ms();
            self.sync(now);
            if self.slots.is_empty() && self.gate.may_end(&self.shared) {
                return;
            }
            self.start_due(now);
            self.expire(now);
            let next = self
                .slots
                .values()
                .map(|s| s.probe.as_ref().map_or(s.due, |p| p.deadline))
                .min()
                .unwrap_or(u64::MAX);
            let wait = Duration::from_millis(next.saturating_sub(now).max(1)).min(TICK);
            if let Err(e) = self.poller.wait(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("health checker: {e}");
                    std::thread::sleep(TICK);
                }
                continue;
            }
            let now = self.shared.now_ms();
            let keys: Vec<usize> = events.iter().map(|e| e.key).collect();
            for key in keys {
                self.advance(key, now);
            }
        }
    }

    /// Follows the server table: new, changed and removed checks.
    fn sync(&mut self, now: u64) {
        self.settings = self.shared.settings.read().checks;
        let table = self.shared.servers.read();
        let mut seen = 0usize;
        for (id, s) in entries(&table) {
            let want = match (&s.check, s.addr) {
                (Some(check), Some(addr)) if s.has_address() => Some((&check.spec, addr)),
                _ => None,
            };
            // Its own timing, or the global one (a change applies from the next check on).
            let timing = s.check.as_ref().map(|c| c.timing).unwrap_or_default();
            let same = match (self.slots.get(&id), want) {
                (Some(slot), Some((spec, addr))) => slot.spec == *spec && slot.addr == addr,
                (None, None) => true,
                _ => false,
            };
            if same {
                seen += usize::from(want.is_some());
                // A verdict taken over from the pen this one replaced (binary upgrade) while
                // this one had not decided yet: go on from it (rise and fall apply).
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.timing = timing;
                    let v = s.health().verdict();
                    if slot.rf.verdict() == CheckVerdict::Unchecked && v != CheckVerdict::Unchecked
                    {
                        slot.rf = RiseFall::from_verdict(v);
                    }
                }
                continue;
            }
            if let Some(old) = self.slots.remove(&id) {
                self.drop_probe(old.probe);
                s.health().set_verdict(CheckVerdict::Unchecked, now);
            }
            if let Some((spec, addr)) = want {
                let regex = match spec {
                    CheckSpec::Send {
                        expect: Expect::Regex(r),
                        ..
                    } => regex::bytes::RegexBuilder::new(r)
                        .size_limit(1 << 20)
                        .build()
                        .ok(),
                    _ => None,
                };
                // Spread the first checks over one interval.
                let interval = timing.apply(&self.settings).interval_ms;
                let spread = (id as u64).wrapping_mul(7919) % interval.max(1);
                self.slots.insert(
                    id,
                    Slot {
                        addr,
                        spec: spec.clone(),
                        regex,
                        // Unchecked for a new check (a changed one was reset above); a
                        // verdict taken over in an upgrade goes on.
                        rf: RiseFall::from_verdict(s.health().verdict()),
                        due: now + spread.min(interval / 2),
                        probe: None,
                        timing,
                    },
                );
                seen += 1;
            }
        }
        if seen != self.slots.len() {
            let gone: Vec<usize> = (self.slots.keys().copied())
                .filter(|&k| table.target(target_of(k)).is_none())
                .collect();
            for k in gone {
                if let Some(old) = self.slots.remove(&k) {
                    self.drop_probe(old.probe);
                }
            }
        }
    }

    fn drop_probe(&self, p: Option<Probe>) {
        if let Some(p) = p {
            self.poller.delete(&p.sock);
        }
    }

    fn start_due(&mut self, now: u64) {
        let due: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.probe.is_none() && s.due <= now)
            .map(|(&k, _)| k)
            .collect();
        for key in due {
            let Some(slot) = self.slots.get(&key) else {
                continue;
            };
            let timeout = slot.timing.apply(&self.settings).timeout_ms;
            let target = match slot.spec {
                CheckSpec::Agent { port } => SocketAddr::new(slot.addr.ip(), port),
                _ => slot.addr,
            };
            match connect(target) {
                Ok(sock) => {
                    if self.poller.add(&sock, key).is_err() {
                        self.finish(key, CheckResult::Failed, now, None);
                        continue;
                    }
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.probe = Some(Probe {
                            sock,
                            started: now,
                            deadline: now + timeout,
                            phase: Phase::Connecting,
                            out: Vec::new(),
                            written: 0,
                            buf: Vec::new(),
                            tls: None,
                        });
                    }
                }
                Err(_) => self.finish(key, CheckResult::Failed, now, None),
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let late: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.probe.as_ref().is_some_and(|p| p.deadline <= now))
            .map(|(&k, _)| k)
            .collect();
        for key in late {
            self.finish(key, CheckResult::Timeout, now, None);
        }
    }

    /// Drives the check of server `key` as far as its socket allows.
    fn advance(&mut self, key: usize, now: u64) {
        let tls_config = self.tls_config();
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        let Some(p) = slot.probe.as_mut() else {
            return;
        };
        let outcome = step(slot.addr, &slot.spec, slot.regex.as_ref(), p, tls_config);
        if let Some((result, agent)) = outcome {
            self.finish(key, result, now, agent);
        }
    }

    fn tls_config(&mut self) -> Option<Arc<rustls::ClientConfig>> {
        if self.tls.is_none() {
            self.tls = super::checker_tls::client_config();
        }
        self.tls.clone()
    }

    /// Ends the check of server `key`: records the result, applies the rise/fall machine and
    /// an agent's reply, and schedules the next check.
    fn finish(
        &mut self,
        key: usize,
        result: CheckResult,
        now: u64,
        agent: Option<crate::domain::check::AgentReply>,
    ) {
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        let started = slot.probe.as_ref().map_or(now, |p| p.started);
        if let Some(p) = slot.probe.take() {
            self.poller.delete(&p.sock);
        }
        let timing = slot.timing.apply(&self.settings);
        let changed = slot.rf.record(result.ok(), &timing);
        let mut interval = timing.interval_ms;
        if slot.rf.changing() {
            interval = (interval / 4).max(1);
        }
        // ±15% jitter (xorshift: no need for a real random source).
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = interval * 30 / 100;
        let offset = if jitter == 0 {
            0
        } else {
            self.rng % (jitter + 1)
        };
        slot.due = now + interval - interval * 15 / 100 + offset;
        let table = self.shared.servers.read();
        let Some(s) = table.target(target_of(key)) else {
            return;
        };
        s.last_check
            .record(result, now.saturating_sub(started).saturating_mul(1000));
        if let Some(a) = agent {
            if let Some(state) = a.admin {
                s.health().set_admin(state);
            }
            if let Some(pct) = a.pct {
                s.health().set_agent_pct(pct);
            }
        }
        if let Some(v) = changed {
            s.health().set_verdict(v, now);
            s.last_check.transition();
            let up = v == CheckVerdict::Up;
            // The `pen` binary logs every event while `debug` is on (`-d`).
            self.shared.events.emit(|| Event::ServerCheck {
                server: target_of(key),
                up,
                last: result.word().to_string(),
            });
        }
    }
}
