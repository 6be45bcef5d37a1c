//! The server table: addresses, limits, weights, priorities, live counters and blacklist deadlines.
//!
//! Structure (addresses, limits) changes under the balancer's write lock; the live fields are
//! atomics so the relay updates them under a read lock without contention.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::domain::addr::ServerSpec;

/// A server's configuration as a plain value (what `server N ...` sets and `write` writes),
/// without its live counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerConf {
    /// Address; `None` until set.
    pub addr: Option<SocketAddr>,
    /// Soft limit (0 = unlimited).
    pub max: u32,
    /// Hard limit (0 = unlimited).
    pub hard: u32,
    /// Weight.
    pub weight: u32,
    /// Priority.
    pub prio: u32,
    /// ACL list a client must pass.
    pub acl: Option<u8>,
    /// The operator's state (`server N drain|maint|ready`) \[ours\].
    pub admin: crate::domain::server_health::AdminState,
    /// Its active health check (`server N check ...`), if any, with its own timing.
    pub check: Option<crate::domain::check::ServerCheck>,
    /// The PROXY header sent before the client's bytes (`server N proxy`) \[ours\].
    pub proxy: crate::domain::proxy_header::ProxyVersion,
    /// The host name it was given, looked up again by the resolver (issue 14) \[ours\].
    pub dns: Option<crate::domain::dns::DnsName>,
}

/// Index of a server in the table (servers are numbered from 0 in command-line order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub usize);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One backend server.
#[derive(Debug, Default)]
pub struct Server {
    /// Address; `None` for a slot created by `server N` beyond the table and not yet set.
    pub addr: Option<SocketAddr>,
    /// Soft limit on connections (0 = unlimited).
    pub max: u32,
    /// Hard limit, still admitting clients tracked to this server (0 = unlimited).
    pub hard: u32,
    /// Weight (weight mode).
    pub weight: u32,
    /// Priority (prio mode; lower first).
    pub prio: u32,
    /// ACL list a client must pass to use this server (`server N acl A`).
    pub acl: Option<u8>,
    /// Open (or opening) connections.
    pub(crate) conns: AtomicU32,
    /// Connections established to the server, in total.
    pub(crate) total: AtomicU64,
    /// Bytes sent to the server.
    pub(crate) sent: AtomicU64,
    /// Bytes received from the server.
    pub(crate) received: AtomicU64,
    /// Blacklisted until this time (milliseconds of the balancer's monotonic clock); 0 = not
    /// blacklisted.
    pub(crate) blacklisted_until: AtomicU64,
    /// Health as pen's checks, the operator and live traffic see it (see `in_service`).
    pub(crate) health: crate::domain::server_health::ServerHealth,
    /// Its active health check (`server N check ...`), if any: the checker thread runs it.
    pub check: Option<crate::domain::check::ServerCheck>,
    /// The last check's result and the check counters.
    pub(crate) last_check: crate::domain::check::LastCheck,
    /// The PROXY header sent before the client's bytes (`server N proxy`) \[ours\].
    pub proxy: crate::domain::proxy_header::ProxyVersion,
    /// The host name it was given (issue 14), if any.
    pub dns: Option<crate::domain::dns::DnsName>,
}

impl Server {
    /// The server's live health (operator state, check verdict, passive ejection).
    pub fn health(&self) -> &crate::domain::server_health::ServerHealth {
        &self.health
    }

    /// Its last active check and the check counters.
    pub fn last_check(&self) -> &crate::domain::check::LastCheck {
        &self.last_check
    }

    /// A server from a command-line spec.
    pub fn from_spec(spec: &ServerSpec) -> Self {
        Server {
            addr: Some(spec.addr),
            max: spec.max,
            hard: spec.hard,
            weight: spec.weight,
            prio: spec.prio,
            ..Server::default()
        }
    }

    /// Its configuration.
    pub fn conf(&self) -> ServerConf {
        ServerConf {
            addr: self.addr,
            max: self.max,
            hard: self.hard,
            weight: self.weight,
            prio: self.prio,
            acl: self.acl,
            admin: self.health.admin(),
            check: self.check.clone(),
            proxy: self.proxy,
            dns: self.dns.clone(),
        }
    }

    /// Open (or opening) connections now.
    pub fn conns(&self) -> u32 {
        self.conns.load(Relaxed)
    }

    /// Connections established to it, in total.
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// Bytes sent to it, in total (counted when a connection closes).
    pub fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    /// Bytes received from it, in total (counted when a connection closes).
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// Sets the open-connection count: for benchmarks and simulations that build a table by
    /// hand (a running balancer counts them itself).
    #[doc(hidden)]
    pub fn set_conns(&self, n: u32) {
        self.conns.store(n, Relaxed);
    }

    /// Releases one connection (never below zero: a connection may outlive a reload that
    /// removed and re-added its server).
    pub(crate) fn release(&self) {
        let _ = self
            .conns
            .fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(1)));
    }

    /// Whether it has an address and a nonzero port.
    pub fn has_address(&self) -> bool {
        matches!(self.addr, Some(a) if a.port() != 0 && !a.ip().is_unspecified())
    }

    /// Whether it is blacklisted at `now`.
    pub fn is_blacklisted(&self, now: u64) -> bool {
        self.blacklisted_until.load(Relaxed) > now
    }

    /// Seconds of blacklisting left at `now` (rounded up), 0 if none.
    pub fn blacklist_left_secs(&self, now: u64) -> u64 {
        self.blacklisted_until
            .load(Relaxed)
            .saturating_sub(now)
            .div_ceil(1000)
    }

    /// Blacklists it for `secs` seconds from `now` (0 clears).
    pub fn blacklist(&self, now: u64, secs: u64) {
        let until = if secs == 0 {
            0
        } else {
            now.saturating_add(secs.saturating_mul(1000))
        };
        self.blacklisted_until.store(until, Relaxed);
    }

    /// Whether it may take a new client at `now` as far as its state goes: it has an address,
    /// is not blacklisted, and its health ([`ServerHealth::takes_new_clients`]) lets it: ready
    /// (not drained nor in maintenance), not checked down, not ejected by passive detection.
    /// Limits, weight and ACL are the selector's part.
    ///
    /// [`ServerHealth::takes_new_clients`]: crate::domain::server_health::ServerHealth::takes_new_clients
    pub fn in_service(&self, now: u64) -> bool {
        self.has_address() && !self.is_blacklisted(now) && self.health.takes_new_clients(now)
    }

    /// Its state in one word for the status page and the metrics (issue 13): the operator's
    /// state when not ready, else `ejected` while passive detection keeps it out, else `ready`.
    pub fn state_word(&self, now: u64) -> &'static str {
        use crate::domain::server_health::AdminState;
        match self.health.admin() {
            AdminState::Ready if self.health.is_ejected(now) => "ejected",
            a => a.word(),
        }
    }

    /// Whether a UDP flow already on it stays (its datagrams keep going to it) at `now`: as
    /// [`Server::in_service`], except that a drained server keeps its flows, as a drained
    /// server keeps its established TCP connections.
    pub fn keeps_flows(&self, now: u64) -> bool {
        use crate::domain::server_health::AdminState;
        self.has_address()
            && !self.is_blacklisted(now)
            && self.health.admin() != AdminState::Maint
            && self.health.is_healthy(now)
    }

    /// Whether the connection limits admit one more client; `tracked` says whether this is the
    /// client's remembered server (then only `hard` applies).
    pub fn below_limits(&self, tracked: bool) -> bool {
        let c = self.conns.load(Relaxed);
        if tracked {
            self.hard == 0 || c < self.hard
        } else {
            (self.max == 0 || c < self.max) && (self.hard == 0 || c < self.hard)
        }
    }

    /// The address as shown by `servers` (`0.0.0.0` and port 0 when unset).
    pub fn shown_addr(&self) -> (IpAddr, u16) {
        match self.addr {
            Some(a) => (a.ip(), a.port()),
            None => (IpAddr::from([0, 0, 0, 0]), 0),
        }
    }
}

/// The servers, in order, plus the emergency server.
#[derive(Debug, Default)]
pub struct ServerTable {
    servers: Vec<Server>,
    /// The emergency server (`-e`), used only when no regular server is available.
    pub emergency: Option<Server>,
    /// The abuse server (`-B`), where clients denied by the client ACL go.
    pub abuse: Option<Server>,
    /// The Maglev table of these servers (issue 14), built when first used after a change.
    maglev: crate::domain::maglev::MaglevCache,
    /// Whether some server is sent a PROXY header (`server N proxy v1|v2`), kept by
    /// [`ServerTable::reconfigure`] so that engines without it can tell cheaply.
    sends_proxy: bool,
}

impl ServerTable {
    /// A table from command-line specs.
    pub fn new(specs: &[ServerSpec], emergency: Option<&ServerSpec>) -> Self {
        ServerTable {
            servers: specs.iter().map(Server::from_spec).collect(),
            emergency: emergency.map(Server::from_spec),
            abuse: None,
            maglev: Default::default(),
            sends_proxy: false,
        }
    }

    /// Whether some server is sent a PROXY header (`server N proxy v1|v2`).
    pub fn sends_proxy(&self) -> bool {
        self.sends_proxy
    }

    /// Sets the abuse server (`-B`).
    pub fn set_abuse(&mut self, spec: Option<&ServerSpec>) {
        self.abuse = spec.map(Server::from_spec);
    }

    /// Number of regular servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no regular servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Server `id`, if it exists.
    pub fn get(&self, id: ServerId) -> Option<&Server> {
        self.servers.get(id.0)
    }

    /// Makes the table match `confs`: servers are updated in place (live counters and open
    /// connections untouched), added, or removed from the end. Returns the servers removed
    /// (their tracked clients must choose afresh). A server whose address or port changed
    /// keeps its tracked clients, as in C pen: they follow server N to its new address.
    pub fn reconfigure(&mut self, confs: &[ServerConf]) -> Vec<ServerId> {
        let removed = (confs.len()..self.servers.len()).map(ServerId).collect();
        self.maglev.invalidate();
        self.sends_proxy = confs
            .iter()
            .any(|c| c.proxy != crate::domain::proxy_header::ProxyVersion::Off);
        self.servers.resize_with(confs.len(), Server::default);
        for (s, c) in self.servers.iter_mut().zip(confs) {
            s.addr = c.addr;
            s.max = c.max;
            s.hard = c.hard;
            s.weight = c.weight;
            s.prio = c.prio;
            s.acl = c.acl;
            s.check.clone_from(&c.check);
            s.proxy = c.proxy;
            s.dns.clone_from(&c.dns);
        }
        removed
    }

    /// Sets each server's operator state from `confs` at `now` (after
    /// [`ServerTable::reconfigure`]); returns the servers whose state changed. A server made
    /// ready again starts its slow-start ramp at `now`.
    pub fn apply_states(
        &self,
        confs: &[ServerConf],
        now: u64,
    ) -> Vec<(ServerId, crate::domain::server_health::AdminState)> {
        use crate::domain::server_health::AdminState;
        let mut changed = Vec::new();
        for ((id, s), c) in self.iter().zip(confs) {
            let old = s.health.admin();
            if old != c.admin {
                s.health.set_admin(c.admin);
                if c.admin == AdminState::Ready {
                    s.health.mark_up_since(now.max(1));
                }
                changed.push((id, c.admin));
            }
        }
        changed
    }

    /// The Maglev table of the servers (issue 14), kept until they change.
    pub fn maglev(&self) -> &crate::domain::maglev::MaglevCache {
        &self.maglev
    }

    /// All regular servers with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (ServerId, &Server)> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| (ServerId(i), s))
    }

    /// The server a connection target refers to.
    pub fn target(&self, t: Target) -> Option<&Server> {
        match t {
            Target::Server(id) => self.get(id),
            Target::Emergency => self.emergency.as_ref(),
            Target::Abuse => self.abuse.as_ref(),
        }
    }
}

/// Where a connection goes: a regular server or the emergency server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A regular server.
    Server(ServerId),
    /// The emergency server.
    Emergency,
    /// The abuse server (clients the client ACL denies).
    Abuse,
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::domain::server_health::{AdminState, CheckVerdict};

    /// A drained server takes no new client but keeps its UDP flows; a maintained, checked
    /// down, ejected or blacklisted one keeps neither.
    #[test]
    fn drain_keeps_flows_the_other_states_do_not() {
        let s = Server {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 81))),
            ..Server::default()
        };
        assert!(s.in_service(10) && s.keeps_flows(10));
        s.health().set_admin(AdminState::Drain);
        assert!(!s.in_service(10) && s.keeps_flows(10));
        s.health().set_admin(AdminState::Maint);
        assert!(!s.in_service(10) && !s.keeps_flows(10));
        s.health().set_admin(AdminState::Drain);
        s.health().set_verdict(CheckVerdict::Down, 10);
        assert!(!s.keeps_flows(10));
        s.health().set_verdict(CheckVerdict::Up, 11);
        s.health().eject_until(20);
        assert!(!s.keeps_flows(19) && s.keeps_flows(20));
        s.blacklist(20, 1);
        assert!(!s.keeps_flows(20) && s.keeps_flows(1_020));
    }

    /// `apply_states` reports each change once and starts the ramp of a server made ready.
    #[test]
    fn apply_states_reports_changes_and_marks_the_return() {
        let spec = crate::domain::addr::parse_server("127.0.0.1:81", 80).unwrap();
        let mut t = ServerTable::new(&[spec], None);
        let mut confs: Vec<ServerConf> = t.iter().map(|(_, s)| s.conf()).collect();
        confs[0].admin = AdminState::Maint;
        t.reconfigure(&confs);
        assert_eq!(
            t.apply_states(&confs, 100),
            [(ServerId(0), AdminState::Maint)]
        );
        assert!(t.apply_states(&confs, 200).is_empty());
        confs[0].admin = AdminState::Ready;
        assert_eq!(
            t.apply_states(&confs, 300),
            [(ServerId(0), AdminState::Ready)]
        );
        assert_eq!(t.get(ServerId(0)).unwrap().health().up_since(), 300);
    }
}
