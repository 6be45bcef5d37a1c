//! Runtime state across a binary upgrade: what the old pen learnt while running moves to the
//! new one, so that an upgrade changes nothing a client or an operator sees. Carried: the
//! client tracking table (each client's server and how long ago it was seen, its connects and
//! bytes), each server's health (the checks' verdict, an agent's weight share, passive
//! ejection and its back-off, when it came back for slow start), the last check and its
//! counters, the per-server counters (connections, bytes) and the global ones.
//!
//! Sent by the old pen after its listeners are closed (nothing new is counted there), before
//! the live connections, as text messages of at most [`CHUNK`] bytes, each
//! [`STATE_HEAD`] then lines:
//!
//! - `s KIND ID ADDR TOTAL SENT RECEIVED VERDICT AGENT_PCT EJECT_LEFT EJECTIONS FAILURES UP_AGO
//!   RESULT MICROS TRANSITIONS SUM B0 .. B8`: a server (`KIND` `n` numbered, `e` emergency,
//!   `a` abuse; `ADDR` or `-`; `VERDICT` `-`, `u` or `d`; `UP_AGO` `-` when unknown);
//! - `g NAME VALUE`: a global counter;
//! - `c IP SERVER AGE CONNECTS SENT RECEIVED`: a tracked client, oldest first.
//!
//! Times cross as milliseconds before "now" (each process has its own monotonic clock). The
//! new pen checks everything: a line it cannot read, a number out of range or a server that it
//! does not have at the same address is skipped (and counted); nothing allocates beyond one
//! message, and the client table keeps its own bound.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::domain::check::{CheckResult, LastCheckCounts, CHECK_BUCKETS_MS};
use crate::domain::clients::ClientEntry;
use crate::domain::server::{Server, ServerId, ServerTable};
use crate::domain::server_health::{CheckVerdict, AGENT_PCT_MAX};
use crate::engine::state::{Counters, Shared};

/// The first line of every state message (and its version).
pub(super) const STATE_HEAD: &[u8] = b"pen-upgrade-state 1\n";
/// The longest state message (under the record size the new pen reads).
pub(super) const CHUNK: usize = 60 * 1024;
/// The longest time a state line may name (a year, the longest time setting).
const MS_MAX: u64 = 31_536_000_000;

/// The global counters by the name they cross under.
fn counters(c: &Counters) -> [(&'static str, &AtomicU64); 13] {
    [
        ("accepted", &c.accepted),
        ("refused_acl", &c.refused_acl),
        ("refused_per_client", &c.refused_per_client),
        ("request_timeouts", &c.request_timeouts),
        ("no_server", &c.no_server),
        ("failovers", &c.failovers),
        ("blacklistings", &c.blacklistings),
        ("connect_timeouts", &c.connect_timeouts),
        ("idle_timeouts", &c.idle_timeouts),
        ("http_oversized", &c.http_oversized),
        ("accept_pauses", &c.accept_pauses),
        ("control_commands", &c.control_commands),
        ("control_errors", &c.control_errors),
    ]
}

/// Adds `n` to `a` without wrapping.
fn add(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_add(n)));
}

/// Splits lines into messages of at most [`CHUNK`] bytes, each starting with [`STATE_HEAD`].
struct Chunks {
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
}

impl Chunks {
    fn new() -> Self {
        Chunks {
            done: Vec::new(),
            cur: STATE_HEAD.to_vec(),
        }
    }

    fn line(&mut self, line: &str) {
        if self.cur.len() + line.len() + 1 > CHUNK && self.cur.len() > STATE_HEAD.len() {
            let full = std::mem::replace(&mut self.cur, STATE_HEAD.to_vec());
            self.done.push(full);
        }
        self.cur.extend_from_slice(line.as_bytes());
        self.cur.push(b'\n');
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if self.cur.len() > STATE_HEAD.len() {
            self.done.push(self.cur);
        }
        self.done
    }
}

/// The server line of `s` (see the module docs).
fn server_line(kind: char, id: usize, s: &Server, now: u64) -> String {
    let h = s.health();
    let verdict = match h.verdict() {
        CheckVerdict::Unchecked => '-',
        CheckVerdict::Up => 'u',
        CheckVerdict::Down => 'd',
    };
    let addr = s.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
    let up_ago = match h.up_since() {
        0 => "-".to_string(),
        t => now.saturating_sub(t).to_string(),
    };
    let c = s.last_check().counts();
    let mut line = format!(
        "s {kind} {id} {addr} {} {} {} {verdict} {} {} {} {} {up_ago} {} {} {} {}",
        s.total(),
        s.sent(),
        s.received(),
        h.agent_pct(),
        h.ejected_until().saturating_sub(now),
        h.ejections(),
        h.failures_in_row(),
        c.result.code(),
        c.micros,
        c.transitions,
        c.sum_micros,
    );
    for b in c.buckets {
        let _ = write!(line, " {b}");
    }
    line
}

/// The old pen's state as messages (see the module docs), taken at `shared`'s now.
pub(super) fn export(shared: &Shared) -> Vec<Vec<u8>> {
    let now = shared.now_ms();
    let mut out = Chunks::new();
    {
        let t = shared.servers.read();
        for (ServerId(id), s) in t.iter() {
            out.line(&server_line('n', id, s, now));
        }
        if let Some(s) = &t.emergency {
            out.line(&server_line('e', 0, s, now));
        }
        if let Some(s) = &t.abuse {
            out.line(&server_line('a', 0, s, now));
        }
    }
    for (name, a) in counters(&shared.counters).iter() {
        out.line(&format!("g {name} {}", a.load(Relaxed)));
    }
    // Copied under the lock, written out of it; oldest first, so that the new pen's table
    // ends with the same order of use.
    let clients: Vec<ClientEntry> = shared.clients.lock().iter().cloned().collect();
    for e in clients.iter().rev() {
        out.line(&format!(
            "c {} {} {} {} {} {}",
            e.addr,
            e.server.0,
            now.saturating_sub(e.last_ms),
            e.connects,
            e.sent,
            e.received
        ));
    }
    out.finish()
}

/// What the new pen made of the state messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Imported {
    /// Servers whose state was taken.
    pub(super) servers: usize,
    /// Clients taken into the table.
    pub(super) clients: usize,
    /// Lines skipped (unreadable, or naming a server this pen does not have there).
    pub(super) skipped: usize,
}

/// The new pen's side: takes in state messages one by one.
#[derive(Debug, Default)]
pub(super) struct Importer {
    /// Per numbered server of this pen: whether the old pen had it at the same address (its
    /// tracked clients are taken only then). At most this pen's server count.
    matched: Vec<bool>,
    /// The tally so far.
    pub(super) done: Imported,
}

/// The fields of a line, at most `N` of them, exactly `N` or `None`.
fn fields<const N: usize>(rest: &str) -> Option<[&str; N]> {
    let mut it = rest.split(' ');
    let mut out = [""; N];
    for o in &mut out {
        *o = it.next()?;
    }
    it.next().is_none().then_some(out)
}

fn num(w: &str) -> Option<u64> {
    // Digits only: `+5` and spaces are not numbers here.
    (w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty())
        .then(|| w.parse().ok())
        .flatten()
}

fn ms(w: &str) -> Option<u64> {
    num(w).filter(|&v| v <= MS_MAX)
}

impl Importer {
    /// Takes in one message (which starts with [`STATE_HEAD`]) at `shared`'s now.
    pub(super) fn absorb(&mut self, shared: &Shared, msg: &[u8]) {
        let Some(body) = msg.strip_prefix(STATE_HEAD) else {
            return;
        };
        let now = shared.now_ms();
        let text = String::from_utf8_lossy(body);
        for line in text.lines() {
            let ok = match line.split_once(' ') {
                Some(("s", rest)) => self.server(shared, rest, now),
                Some(("g", rest)) => counter(&shared.counters, rest),
                Some(("c", rest)) => self.client(shared, rest, now),
                _ => false,
            };
            if !ok {
                self.done.skipped += 1;
            }
        }
    }

    fn server(&mut self, shared: &Shared, rest: &str, now: u64) -> bool {
        let Some(f) = fields::<25>(rest) else {
            return false;
        };
        let [kind, id, addr, total, sent, received, verdict, pct, eject_left, ejections, failures, up_ago, result, micros, transitions, sum, b @ ..] =
            f;
        let addr: Option<SocketAddr> = match addr {
            "-" => None,
            a => match a.parse() {
                Ok(a) => Some(a),
                Err(_) => return false,
            },
        };
        let mut buckets = [0u64; CHECK_BUCKETS_MS.len() + 1];
        for (o, w) in buckets.iter_mut().zip(b) {
            match num(w) {
                Some(v) => *o = v,
                None => return false,
            }
        }
        let (
            Some(id),
            Some(total),
            Some(sent),
            Some(received),
            Some(pct),
            Some(eject_left),
            Some(ejections),
            Some(failures),
            Some(result),
            Some(micros),
            Some(transitions),
            Some(sum),
        ) = (
            num(id).and_then(|v| usize::try_from(v).ok()),
            num(total),
            num(sent),
            num(received),
            num(pct).filter(|&v| v <= u64::from(AGENT_PCT_MAX)),
            ms(eject_left),
            num(ejections).and_then(|v| u32::try_from(v).ok()),
            num(failures).and_then(|v| u32::try_from(v).ok()),
            num(result)
                .and_then(|v| u8::try_from(v).ok())
                .and_then(CheckResult::from_code),
            num(micros),
            num(transitions),
            num(sum),
        )
        else {
            return false;
        };
        let up_ago = match up_ago {
            "-" => None,
            w => match ms(w) {
                Some(v) => Some(v),
                None => return false,
            },
        };
        let verdict = match verdict {
            "-" => CheckVerdict::Unchecked,
            "u" => CheckVerdict::Up,
            "d" => CheckVerdict::Down,
            _ => return false,
        };
        let t = shared.servers.read();
        let Some(s) = target(&t, kind, id) else {
            return false;
        };
        // Another server now (the new configuration moved or removed it): nothing of the
        // old one's applies to it.
        if s.addr != addr {
            return false;
        }
        if kind == "n" {
            if let Some(m) = self.matched_mut(t.len(), id) {
                *m = true;
            }
        }
        add(&s.total, total);
        add(&s.sent, sent);
        add(&s.received, received);
        let h = s.health();
        // A verdict only for a server this pen checks too, and only while its own checks
        // have not decided (the checker then goes on from it: see `RiseFall::from_verdict`).
        if s.check.is_some() && h.verdict() == CheckVerdict::Unchecked {
            h.set_verdict(verdict, now);
        }
        h.set_agent_pct(u32::try_from(pct).unwrap_or(100));
        let until = if eject_left == 0 {
            0
        } else {
            now.saturating_add(eject_left)
        };
        h.restore_passive(until, ejections, failures);
        if let Some(ago) = up_ago {
            h.mark_up_since(now.saturating_sub(ago).max(1));
        }
        s.last_check().absorb(&LastCheckCounts {
            result,
            micros,
            transitions,
            buckets,
            sum_micros: sum,
        });
        self.done.servers += 1;
        true
    }

    fn matched_mut(&mut self, n: usize, id: usize) -> Option<&mut bool> {
        if self.matched.len() < n {
            self.matched.resize(n, false);
        }
        self.matched.get_mut(id)
    }

    fn client(&mut self, shared: &Shared, rest: &str, now: u64) -> bool {
        let Some([ip, server, age, connects, sent, received]) = fields::<6>(rest) else {
            return false;
        };
        let (Ok(ip), Some(server), Some(age), Some(connects), Some(sent), Some(received)) = (
            ip.parse::<IpAddr>(),
            num(server).and_then(|v| usize::try_from(v).ok()),
            ms(age),
            num(connects),
            num(sent),
            num(received),
        ) else {
            return false;
        };
        // Only a client of a server the old pen had at the same address.
        if !self.matched.get(server).copied().unwrap_or(false) {
            return false;
        }
        shared.clients.lock().import(ClientEntry {
            addr: ip,
            server: ServerId(server),
            last_ms: now.saturating_sub(age).max(1),
            connects,
            sent,
            received,
        });
        self.done.clients += 1;
        true
    }
}

/// The server `KIND ID` names in `t`.
fn target<'a>(t: &'a ServerTable, kind: &str, id: usize) -> Option<&'a Server> {
    match kind {
        "n" => t.get(ServerId(id)),
        "e" if id == 0 => t.emergency.as_ref(),
        "a" if id == 0 => t.abuse.as_ref(),
        _ => None,
    }
}

/// A `g NAME VALUE` line: adds VALUE to the counter NAME (an unknown name is skipped).
fn counter(c: &Counters, rest: &str) -> bool {
    let Some([name, value]) = fields::<2>(rest) else {
        return false;
    };
    let Some(v) = num(value) else {
        return false;
    };
    match counters(c).iter().find(|(n, _)| *n == name) {
        Some((_, a)) => {
            add(a, v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::check::CheckSpec;
    use crate::domain::clock::ManualClock;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// A balancer's state over servers at `addrs` (ports on 127.0.0.1), its clock at `now`.
    fn shared(ports: &[u16], now: u64) -> (Shared, Arc<ManualClock>) {
        let specs: Vec<_> = (ports.iter())
            .map(|p| crate::domain::addr::parse_server(&format!("127.0.0.1:{p}"), 80).unwrap())
            .collect();
        let em = crate::domain::addr::parse_server("127.0.0.1:99", 80).unwrap();
        let clock = Arc::new(ManualClock::new(now, 1_000));
        let sh = Shared::for_tests(&specs, Some(&em), Default::default(), clock.clone());
        (sh, clock)
    }

    fn import_all(to: &Shared, msgs: &[Vec<u8>]) -> Imported {
        let mut imp = Importer::default();
        for m in msgs {
            imp.absorb(to, m);
        }
        imp.done
    }

    #[test]
    fn state_crosses_with_times_relative_to_now() {
        // The old pen has run 10 minutes; the new one's clock reads something else entirely.
        let (old, _) = shared(&[81, 82], 600_000);
        {
            let t = old.servers.read();
            let s1 = t.get(ServerId(1)).unwrap();
            s1.total.store(7, Relaxed);
            s1.sent.store(700, Relaxed);
            s1.received.store(70, Relaxed);
            s1.health().set_verdict(CheckVerdict::Down, 1);
            s1.health().set_agent_pct(40);
            s1.health().restore_passive(630_000, 2, 1);
            s1.last_check().record(CheckResult::Timeout, 1_500_000);
            t.emergency.as_ref().unwrap().total.store(3, Relaxed);
        }
        old.counters.accepted.store(41, Relaxed);
        {
            let mut c = old.clients.lock();
            c.record("10.0.0.1".parse().unwrap(), ServerId(1), 540_000);
            c.record("10.0.0.2".parse().unwrap(), ServerId(0), 599_000);
        }
        let msgs = export(&old);
        assert!(msgs
            .iter()
            .all(|m| m.starts_with(STATE_HEAD) && m.len() <= CHUNK));

        let (new, _) = shared(&[81, 82], 2_000_000);
        let mut confs: Vec<_> = (new.servers.read().iter()).map(|(_, s)| s.conf()).collect();
        confs[1].check = Some(CheckSpec::Connect.into());
        new.servers.write().reconfigure(&confs);
        let got = import_all(&new, &msgs);
        assert_eq!(
            got,
            Imported {
                servers: 3,
                clients: 2,
                skipped: 0
            }
        );
        let t = new.servers.read();
        let s1 = t.get(ServerId(1)).unwrap();
        assert_eq!((s1.total(), s1.sent(), s1.received()), (7, 700, 70));
        assert_eq!(s1.health().verdict(), CheckVerdict::Down);
        assert_eq!(s1.health().agent_pct(), 40);
        // Ejected 30 s more, from the new pen's now.
        assert_eq!(s1.health().ejected_until(), 2_030_000);
        assert_eq!(s1.health().ejections(), 2);
        assert_eq!(s1.last_check().result(), CheckResult::Timeout);
        assert_eq!(s1.last_check().counts().buckets[8], 1);
        // Server 0 has no check here: no verdict is invented for it.
        assert_eq!(
            t.get(ServerId(0)).unwrap().health().verdict(),
            CheckVerdict::Unchecked
        );
        assert_eq!(t.emergency.as_ref().unwrap().total(), 3);
        drop(t);
        assert_eq!(new.counters.accepted.load(Relaxed), 41);
        let c = new.clients.lock();
        let e1 = c.get("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!((e1.server, e1.last_ms), (ServerId(1), 2_000_000 - 60_000));
        // The order of use is kept: the most recent first.
        let order: Vec<String> = c.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(order, ["10.0.0.2", "10.0.0.1"]);
    }

    #[test]
    fn a_server_moved_or_removed_takes_nothing_nor_do_its_clients() {
        let (old, _) = shared(&[81, 82, 83], 5_000);
        for (_, s) in old.servers.read().iter() {
            s.total.store(5, Relaxed);
        }
        {
            let mut c = old.clients.lock();
            c.record("10.0.0.1".parse().unwrap(), ServerId(1), 4_000);
            c.record("10.0.0.2".parse().unwrap(), ServerId(2), 4_000);
            c.record("10.0.0.3".parse().unwrap(), ServerId(0), 4_000);
        }
        // The new configuration: server 1 at another port, server 2 gone.
        let (new, _) = shared(&[81, 92], 5_000);
        let got = import_all(&new, &export(&old));
        assert_eq!((got.servers, got.clients, got.skipped), (2, 1, 4));
        let t = new.servers.read();
        assert_eq!(t.get(ServerId(0)).unwrap().total(), 5);
        assert_eq!(t.get(ServerId(1)).unwrap().total(), 0);
        drop(t);
        let c = new.clients.lock();
        assert_eq!(c.len(), 1);
        assert!(c.get("10.0.0.3".parse().unwrap()).is_some());
    }

    #[test]
    fn a_large_client_table_crosses_in_chunks_and_keeps_the_new_bound() {
        let (old, _) = shared(&[81], 100_000);
        {
            let mut c = old.clients.lock();
            c.grow(5_000);
            for i in 0..5_000u32 {
                c.record(
                    IpAddr::from((0x0a00_0000 + i).to_be_bytes()),
                    ServerId(0),
                    50_000,
                );
            }
        }
        let msgs = export(&old);
        assert!(msgs.len() > 1, "{} message(s)", msgs.len());
        let (new, _) = shared(&[81], 1);
        // The new pen's table has the default 2048 slots: the most recent clients stay.
        let got = import_all(&new, &msgs);
        assert_eq!(got.clients, 5_000);
        let c = new.clients.lock();
        assert_eq!(c.len(), 2048);
        assert!(c
            .get(IpAddr::from((0x0a00_0000u32 + 4_999).to_be_bytes()))
            .is_some());
        // Older than the new pen's whole clock: clamped to its first millisecond.
        assert!(c.iter().all(|e| e.last_ms == 1));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let (new, _) = shared(&[81], 1_000);
        let bad = [
            "s n 0 127.0.0.1:81 1 2 3 x 100 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s n 0 127.0.0.1:81 1 2 3 d 5000 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s n 0 127.0.0.1:81 1 2 3 d 100 99999999999999 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s n 0 127.0.0.1:81 +1 2 3 d 100 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s n 0 127.0.0.1:81 1 2 3 d 100 0 0 0 - 77 0 0 0 0 0 0 0 0 0 0 0 0",
            "s x 0 127.0.0.1:81 1 2 3 d 100 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s e 1 127.0.0.1:99 1 2 3 d 100 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0 0",
            "s n 0 127.0.0.1:81 1 2 3 d 100 0 0 0 - 0 0 0 0 0 0 0 0 0 0 0 0",
            "c 10.0.0.1 0 5 1 1",
            "c 10.0.0.1 9 5 1 1 1",
            "c banana 0 5 1 1 1",
            "g accepted -1",
            "g nothing 5",
            "",
        ];
        let msg = [STATE_HEAD, bad.join("\n").as_bytes()].concat();
        let got = import_all(&new, &[msg]);
        assert_eq!(got.servers + got.clients, 0, "{got:?}");
        assert_eq!(got.skipped, bad.len() - 1);
        assert_eq!(new.servers.read().get(ServerId(0)).unwrap().total(), 0);
        assert_eq!(new.counters.accepted.load(Relaxed), 0);
    }

    proptest! {
        /// Whatever arrives, the import neither panics nor grows the client table past its
        /// bound.
        #[test]
        fn any_message_is_safe(body in proptest::collection::vec(any::<u8>(), 0..2000),
                               lines in proptest::collection::vec("[scg] [-a-z0-9.: ]{0,80}", 0..40)) {
            let (new, _) = shared(&[81], 1_000);
            let mut imp = Importer::default();
            imp.absorb(&new, &[STATE_HEAD, &body].concat());
            imp.absorb(&new, [STATE_HEAD, lines.join("\n").as_bytes()].concat().as_slice());
            prop_assert!(new.clients.lock().len() <= 2048);
        }
    }
}
