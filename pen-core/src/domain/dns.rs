//! DNS-driven servers (issue 14) as plain data: the name a server was given, the settings of
//! re-resolution, how a new answer maps onto server slots, and the per-name lookup state that
//! decides when to look again and when to log. No I/O here; `now` is an argument.
//!
//! A server given by name (`server N address NAME`) keeps the name; the runtime's resolver
//! thread looks it up again every [`DnsSettings::interval_secs`] and changes the server's
//! address through the configuration transaction when the answer changes. `all MAX` makes the
//! name own the slots N..N+MAX-1, one address each.

use std::net::{IpAddr, SocketAddr};

/// Default seconds between two lookups of a name (`dns_interval`).
pub const INTERVAL_DEFAULT_SECS: u64 = 30;
/// Most slots one name may own (`all MAX`).
pub const ALL_MAX: u16 = 256;
/// The slots `all` owns when no number follows it.
pub const ALL_DEFAULT: u16 = 8;
/// Most addresses kept from one answer (a larger answer is cut, in answer order).
pub const ADDRESSES_MAX: usize = 256;

/// How server names are re-resolved (`dns_interval`, `dns_server`) \[ours\].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsSettings {
    /// Seconds between two lookups of a name; 0: names are looked up when given, never again.
    pub interval_secs: u64,
    /// The DNS server asked (`dns_server IP:PORT`); `None`: the system resolver
    /// (`getaddrinfo`: `/etc/hosts`, then the servers of `/etc/resolv.conf`).
    pub server: Option<SocketAddr>,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            interval_secs: INTERVAL_DEFAULT_SECS,
            server: None,
        }
    }
}

/// The host name a server was given, kept so that it is looked up again and `write` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsName {
    /// The name as given.
    pub name: String,
    /// `all MAX`: the name owns slots N..N+MAX-1, one address each; 0: the server takes one
    /// address of the answer (C pen's meaning of a name).
    pub all: u16,
}

impl DnsName {
    /// How many slots the name owns (at least its own).
    pub fn slots(&self) -> usize {
        usize::from(self.all.max(1))
    }
}

/// The addresses of the slots a name owns after a new `answer`: an address still in the
/// answer stays in its slot (its clients and connections are not moved), slots whose address
/// went (or that had none) take the answer's new addresses in answer order, and slots left
/// over have none. No address is in two slots. `current` holds each slot's address (`None` or
/// an unspecified address: none).
pub fn assign(current: &[Option<IpAddr>], answer: &[IpAddr]) -> Vec<Option<IpAddr>> {
    let mut out: Vec<Option<IpAddr>> = Vec::with_capacity(current.len());
    for ip in current {
        let keep = ip
            .filter(|ip| !ip.is_unspecified() && answer.contains(ip) && !out.contains(&Some(*ip)));
        out.push(keep);
    }
    let kept: Vec<IpAddr> = out.iter().flatten().copied().collect();
    let mut fresh = answer.iter().filter(|ip| !kept.contains(ip));
    let mut placed: Vec<IpAddr> = Vec::new();
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        // An answer may list an address twice: place it once.
        let next = fresh.by_ref().find(|ip| !placed.contains(ip));
        if let Some(ip) = next {
            placed.push(*ip);
            *slot = Some(*ip);
        }
    }
    out
}

/// What a lookup changed in a name's state, to log once (not on every attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The name stopped resolving (the reason); its servers keep their last addresses.
    Failed(String),
    /// The name resolves again after failing.
    Recovered,
}

/// One name's lookups: the last good answer, whether it is failing, the counters, and when
/// the last lookup was (the next is due `dns_interval` after it, whatever the interval is
/// when it comes, so a changed interval applies at once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameState {
    /// The last good answer.
    pub addrs: Vec<IpAddr>,
    /// Why the last lookup failed, while it fails.
    pub error: Option<String>,
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that failed.
    pub failures: u64,
    /// When the last lookup ended (milliseconds of the balancer's clock); `None`: never, or
    /// to be done again at once (the DNS server changed).
    pub last_ms: Option<u64>,
}

impl NameState {
    /// When the next lookup is due with `interval_secs` between lookups (`u64::MAX`: never;
    /// 0: at once).
    pub fn next_ms(&self, interval_secs: u64) -> u64 {
        match (self.last_ms, interval_secs) {
            (None, _) => 0,
            (Some(_), 0) => u64::MAX,
            (Some(t), s) => t.saturating_add(s.saturating_mul(1000)),
        }
    }

    /// Whether a lookup is due at `now`.
    pub fn due(&self, now: u64, interval_secs: u64) -> bool {
        self.next_ms(interval_secs) <= now
    }

    /// Records a lookup's outcome at `now`. Returns the change of state worth a log line, if
    /// any.
    pub fn record(&mut self, outcome: Result<Vec<IpAddr>, String>, now: u64) -> Option<Transition> {
        self.lookups = self.lookups.saturating_add(1);
        self.last_ms = Some(now);
        match outcome {
            Ok(addrs) => {
                self.addrs = addrs;
                self.error.take().map(|_| Transition::Recovered)
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let first = self.error.is_none();
                self.error = Some(e.clone());
                first.then_some(Transition::Failed(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// Addresses that stay keep their slot; a gone one's slot takes the new address; slots
    /// beyond the answer go empty.
    #[test]
    fn addresses_keep_their_slots() {
        let cur = [Some(ip(1)), Some(ip(2)), Some(ip(3)), None];
        assert_eq!(
            assign(&cur, &[ip(3), ip(4), ip(1)]),
            [Some(ip(1)), Some(ip(4)), Some(ip(3)), None]
        );
        assert_eq!(assign(&cur, &[ip(2)]), [None, Some(ip(2)), None, None]);
        let unspec = [Some(IpAddr::from([0, 0, 0, 0])), None];
        assert_eq!(
            assign(&unspec, &[ip(9), ip(9), ip(8)]),
            [Some(ip(9)), Some(ip(8))]
        );
    }

    /// One plain name: the current address stays while it is in the answer, else the first.
    #[test]
    fn a_plain_name_moves_only_when_its_address_goes() {
        assert_eq!(assign(&[Some(ip(2))], &[ip(1), ip(2)]), [Some(ip(2))]);
        assert_eq!(assign(&[Some(ip(3))], &[ip(1), ip(2)]), [Some(ip(1))]);
    }

    /// A failure is reported once, a recovery once; the last good answer stays; lookups are
    /// spaced by the interval in effect (never again with 0).
    #[test]
    fn failures_are_logged_once_per_change_of_state() {
        let mut s = NameState::default();
        assert!(s.due(0, 30));
        assert_eq!(s.record(Ok(vec![ip(1)]), 1_000), None);
        assert!(!s.due(30_999, 30) && s.due(31_000, 30));
        assert!(s.due(2_000, 1), "a shorter interval applies at once");
        let t = s.record(Err("timeout".into()), 31_000);
        assert_eq!(t, Some(Transition::Failed("timeout".into())));
        assert_eq!(s.record(Err("NXDOMAIN".into()), 61_000), None);
        assert_eq!(s.addrs, [ip(1)]);
        assert_eq!((s.lookups, s.failures), (3, 2));
        assert_eq!(
            s.record(Ok(vec![ip(2)]), 91_000),
            Some(Transition::Recovered)
        );
        assert_eq!(s.record(Ok(vec![ip(2)]), 121_000), None);
        assert!(!s.due(u64::MAX - 1, 0));
        s.last_ms = None; // the DNS server changed
        assert!(s.due(0, 0));
    }

    proptest! {
        /// Whatever the slots held and the answer says: no address twice, every address
        /// placed is in the answer, one kept is where it was, and as many slots are filled as
        /// the answer has distinct addresses (up to the slots).
        #[test]
        fn assignment_is_stable_and_complete(
            cur in proptest::collection::vec(proptest::option::of(0u8..12), 0..10),
            answer in proptest::collection::vec(0u8..12, 0..12),
        ) {
            let cur: Vec<Option<IpAddr>> = cur.into_iter().map(|o| o.map(ip)).collect();
            let answer: Vec<IpAddr> = answer.into_iter().map(ip).collect();
            let out = assign(&cur, &answer);
            prop_assert_eq!(out.len(), cur.len());
            let placed: Vec<IpAddr> = out.iter().flatten().copied().collect();
            let mut distinct = placed.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), placed.len());
            prop_assert!(placed.iter().all(|ip| answer.contains(ip)));
            let mut in_answer = answer.clone();
            in_answer.sort();
            in_answer.dedup();
            prop_assert_eq!(placed.len(), in_answer.len().min(cur.len()));
            for (c, o) in cur.iter().zip(&out) {
                if let Some(c) = c {
                    if answer.contains(c) && o != &Some(*c) {
                        // Only a duplicate in `current` may lose its slot.
                        prop_assert_eq!(cur.iter().filter(|x| *x == &Some(*c)).count() > 1, true);
                    }
                }
            }
        }
    }
}
