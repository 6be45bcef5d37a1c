//! The resolver thread (issue 14): servers given by host name are looked up again every
//! `dns_interval` seconds, and a changed answer goes through the controller's configuration
//! transaction, as `server N address ...` from penctl would (so tracking, health, metrics and
//! `write` see an operator's change). Lookups run on this thread only, never on a worker and
//! never under the configuration lock; a failing name keeps its servers' last addresses and is
//! logged once when it starts failing and once when it recovers.
//!
//! The thread exists only while a server has a name (a C-pen-style configuration of
//! addresses has no extra thread), and is woken after every committed change, so that a new
//! name, or a group given more slots, is served at once.

pub(crate) mod lookup;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::controller::Controller;
use crate::domain::dns::{NameState, Transition};
use crate::engine::state::Shared;
use crate::error::{AddrError, ApplyError};

/// Longest sleep between two rounds (a round also comes after every committed change).
const ROUND_MAX: Duration = Duration::from_secs(60);

/// The first address of `name` from the DNS server `server` (`server N address NAME` with
/// `dns_server` set).
pub(crate) fn first_address(name: &str, server: SocketAddr) -> Result<IpAddr, ApplyError> {
    let fail = |reason: String| AddrError::Resolve {
        host: name.to_string(),
        reason,
    };
    let addrs = lookup::ask(server, name, lookup::LOOKUP_TIMEOUT)
        .map_err(|e| fail(format!("{e} (DNS server {server})")))?;
    let first = addrs.first().copied();
    Ok(first.ok_or_else(|| fail("no addresses".to_string()))?)
}

/// The thread's control: started on demand, woken after changes, stopped with the balancer.
#[derive(Default)]
pub(crate) struct Gate {
    /// The controller whose transaction applies answers (set once the balancer has it).
    ctl: OnceLock<Weak<Controller>>,
    inner: Mutex<Inner>,
    wake: Condvar,
    /// Each name's lookups (for the thread and the `dns` query).
    states: Mutex<BTreeMap<String, NameState>>,
    /// The DNS server the names were last looked up with (`None` before the first round).
    server: Mutex<Option<Option<SocketAddr>>>,
}

#[derive(Default)]
struct Inner {
    thread: Option<JoinHandle<()>>,
    running: bool,
    poked: bool,
    stop: bool,
}

/// The distinct names servers were given.
fn names(shared: &Shared) -> Vec<String> {
    let confs: Vec<_> = shared
        .servers
        .read()
        .iter()
        .filter(|(_, s)| s.dns.is_some())
        .map(|(_, s)| s.conf())
        .collect();
    crate::control::dns::names(&confs)
}

impl Gate {
    /// Records the controller (the balancer's, once it is shared).
    pub(crate) fn bind(&self, ctl: &Arc<Controller>) {
        let _ = self.ctl.set(Arc::downgrade(ctl));
    }

    /// After each committed change and at start: wakes the thread, or starts it when a server
    /// has a name and none runs.
    pub(crate) fn ensure(self: &Arc<Self>, shared: &Arc<Shared>) {
        if !shared.running.load(Relaxed) || shared.stopping.load(Relaxed) {
            return;
        }
        let Some(ctl) = self.ctl.get().cloned() else {
            return;
        };
        let mut inner = self.inner.lock();
        if inner.stop {
            return;
        }
        if inner.running {
            inner.poked = true;
            self.wake.notify_all();
            return;
        }
        if names(shared).is_empty() {
            return;
        }
        if let Some(old) = inner.thread.take() {
            let _ = old.join();
        }
        let sh = Arc::clone(shared);
        let gate = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("pen-resolver".into())
            .spawn(move || run(&sh, &gate, &ctl));
        match spawned {
            Ok(t) => {
                inner.thread = Some(t);
                inner.running = true;
            }
            Err(e) => log::warn!("cannot start the resolver thread: {e}"),
        }
    }

    /// Stops the thread (the balancer is stopping) and waits for it briefly: a lookup in
    /// progress may take up to its limit (3 s), and C pen's SIGTERM exits at once, so a thread
    /// still in a lookup after [`JOIN_WAIT_MS`] is left to end by itself (it applies nothing
    /// once stopped).
    pub(crate) fn join(&self) {
        let handle = {
            let mut inner = self.inner.lock();
            inner.stop = true;
            self.wake.notify_all();
            inner.thread.take()
        };
        if let Some(t) = handle {
            for _ in 0..JOIN_WAIT_MS / 10 {
                if t.is_finished() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::debug!("the resolver thread is in a lookup; not waiting for it");
            }
        }
    }

    /// Called by the thread with no name left: it may end unless one came meanwhile.
    fn may_end(&self, shared: &Shared) -> bool {
        let mut inner = self.inner.lock();
        if !inner.stop && !shared.stopping.load(Relaxed) && !names(shared).is_empty() {
            return false;
        }
        inner.running = false;
        true
    }

    fn stopped(&self, shared: &Shared) -> bool {
        shared.stopping.load(Relaxed) || self.inner.lock().stop
    }

    /// Sleeps until `deadline_ms` of the balancer's clock (at most [`ROUND_MAX`]), a change or
    /// the stop.
    fn sleep(&self, shared: &Shared, deadline_ms: u64) {
        let ms = deadline_ms.saturating_sub(shared.now_ms());
        let wait = Duration::from_millis(ms).min(ROUND_MAX);
        let mut inner = self.inner.lock();
        if !inner.poked && !inner.stop && !wait.is_zero() {
            let _ = self.wake.wait_for(&mut inner, wait);
        }
        inner.poked = false;
    }

    /// The `dns` reply: one line per name (`NAME servers N,M addresses A,B lookups L
    /// failures F ok|failing: REASON`).
    pub(crate) fn status(&self, shared: &Shared) -> String {
        let confs: Vec<_> = shared
            .servers
            .read()
            .iter()
            .map(|(_, s)| s.conf())
            .collect();
        let states = self.states.lock();
        let mut out = String::new();
        for name in crate::control::dns::names(&confs) {
            let heads: Vec<String> = confs
                .iter()
                .enumerate()
                .filter(|(_, c)| c.dns.as_ref().is_some_and(|d| d.name == name))
                .map(|(i, c)| match c.dns.as_ref().map_or(0, |d| d.all) {
                    0 => i.to_string(),
                    n => format!("{i}+{n}"),
                })
                .collect();
            let st = states.get(&name).cloned().unwrap_or_default();
            let addrs: Vec<String> = st.addrs.iter().map(ToString::to_string).collect();
            let shown = if addrs.is_empty() {
                "-".to_string()
            } else {
                addrs.join(",")
            };
            let state = match &st.error {
                Some(e) => format!("failing: {e}"),
                None if st.lookups == 0 => "pending".to_string(),
                None => "ok".to_string(),
            };
            out.push_str(&format!(
                "{name} servers {} addresses {shown} lookups {} failures {} {state}\n",
                heads.join(","),
                st.lookups,
                st.failures
            ));
        }
        out
    }
}

/// The thread: a round over every name (looking up those due, applying each last good answer
/// where the table differs from it), then sleep until the next is due or a change comes.
/// How long stopping waits for the resolver thread before leaving it (ms).
const JOIN_WAIT_MS: u64 = 200;

fn run(shared: &Arc<Shared>, gate: &Arc<Gate>, ctl: &Weak<Controller>) {
    loop {
        if gate.stopped(shared) {
            gate.inner.lock().running = false;
            return;
        }
        let names = names(shared);
        if names.is_empty() {
            if gate.may_end(shared) {
                return;
            }
            continue;
        }
        gate.states.lock().retain(|n, _| names.contains(n));
        // Another DNS server: every name is looked up again at once.
        let dns = shared.settings.read().dns;
        if gate.server.lock().replace(dns.server) != Some(dns.server) {
            gate.states
                .lock()
                .values_mut()
                .for_each(|s| s.last_ms = None);
        }
        for name in &names {
            if gate.stopped(shared) {
                break;
            }
            round(shared, gate, ctl, name);
        }
        let next = gate
            .states
            .lock()
            .values()
            .map(|s| s.next_ms(dns.interval_secs))
            .min()
            .unwrap_or(u64::MAX);
        gate.sleep(shared, next);
    }
}

/// One name's turn: a lookup if due (no lock held while it runs), then its last good answer
/// applied through the controller when the table differs from it.
fn round(shared: &Shared, gate: &Gate, ctl: &Weak<Controller>, name: &str) {
    let dns = shared.settings.read().dns;
    let due = gate
        .states
        .lock()
        .get(name)
        .is_none_or(|s| s.due(shared.now_ms(), dns.interval_secs));
    if due {
        let outcome = lookup::lookup(name, dns.server).map_err(|e| e.to_string());
        let now = shared.now_ms();
        let change = gate
            .states
            .lock()
            .entry(name.to_string())
            .or_default()
            .record(outcome, now);
        match change {
            Some(Transition::Failed(e)) => {
                log::warn!("server name {name}: {e}; its servers keep their last addresses")
            }
            Some(Transition::Recovered) => log::info!("server name {name} resolves again"),
            None => {}
        }
    }
    // Stopped while the lookup ran: nothing more is applied.
    if gate.stopped(shared) {
        return;
    }
    let answer = gate
        .states
        .lock()
        .get(name)
        .map(|s| s.addrs.clone())
        .unwrap_or_default();
    if answer.is_empty() {
        return;
    }
    if let Some(ctl) = ctl.upgrade() {
        if let Err(e) = ctl.apply_dns(name, &answer) {
            log::warn!("server name {name}: the new addresses were not applied: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::domain::clock::ManualClock;
    use crate::domain::event::ConfigSource;

    /// A DNS server answering A queries for any name with the address in `addr` (none:
    /// NXDOMAIN), counting queries.
    fn stub(addr: Arc<Mutex<Option<[u8; 4]>>>, queries: Arc<AtomicUsize>) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = s.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                queries.fetch_add(1, Relaxed);
                let mut m = buf[..n].to_vec();
                let a_query = m[n - 3] == wire::TYPE_A as u8;
                m[2] = 0x81;
                m[3] = 0x80;
                match *addr.lock() {
                    None => m[3] |= 3,
                    Some(ip) if a_query => {
                        m[7] = 1;
                        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4]);
                        m.extend_from_slice(&ip);
                    }
                    Some(_) => {}
                }
                let _ = s.send_to(&m, from);
            }
        });
        at
    }

    /// Rounds driven by the injected clock: a name is looked up when due and not before,
    /// its answer changes the server through the controller, a failure keeps the address and
    /// is counted, and a name no server has any more is forgotten.
    #[test]
    fn rounds_follow_the_clock() {
        let answer = Arc::new(Mutex::new(Some([10, 0, 0, 1])));
        let queries = Arc::new(AtomicUsize::new(0));
        let server = stub(Arc::clone(&answer), Arc::clone(&queries));
        let clock = Arc::new(ManualClock::new(1_000, 1_800_000_000));
        let settings = crate::domain::settings::Settings::default();
        let shared = Arc::new(Shared::for_tests(&[], None, settings, clock.clone()));
        let ctl = Arc::new(Controller::new(Arc::clone(&shared), None));
        let weak = Arc::downgrade(&ctl);
        let gate = Gate::default();
        for line in [
            format!("dns_server {server}"),
            "dns_interval 10".to_string(),
            "server 0 address svc.test port 80".to_string(),
        ] {
            ctl.apply_line(&line, ConfigSource::Api).unwrap();
        }
        let addr = || {
            shared
                .servers
                .read()
                .get(crate::server::ServerId(0))
                .unwrap()
                .addr
        };
        let sa = |ip: [u8; 4]| Some(SocketAddr::from((ip, 80)));
        assert_eq!(addr(), sa([10, 0, 0, 1]));
        let asked = queries.load(Relaxed);

        round(&shared, &gate, &weak, "svc.test"); // never looked up by the thread: due
        assert_eq!(queries.load(Relaxed), asked + 2, "an A and an AAAA query");
        *answer.lock() = Some([10, 0, 0, 2]);
        clock.advance_ms(9_999);
        round(&shared, &gate, &weak, "svc.test");
        assert_eq!(queries.load(Relaxed), asked + 2, "not due yet");
        assert_eq!(addr(), sa([10, 0, 0, 1]));
        clock.advance_ms(1);
        round(&shared, &gate, &weak, "svc.test");
        assert_eq!(addr(), sa([10, 0, 0, 2]), "moved through the controller");

        *answer.lock() = None;
        clock.advance_ms(10_000);
        round(&shared, &gate, &weak, "svc.test");
        assert_eq!(addr(), sa([10, 0, 0, 2]), "the last good address stays");
        let status = gate.status(&shared);
        assert!(
            status.starts_with(
                "svc.test servers 0 addresses 10.0.0.2 lookups 3 failures 1 failing: no such name"
            ),
            "{status}"
        );
        ctl.apply_line("server 0 address 10.9.9.9", ConfigSource::Api)
            .unwrap();
        assert_eq!(gate.status(&shared), "", "no name left");
    }
}
