//! Server selection (PEN-SPEC 2): the first choice for a new client and the failover order.
//!
//! Precedence when several modes are on: tracking (unless round robin) > prio > weight > hash >
//! round robin. The policies of issue 14 (`maglev`, `leastconn`, `p2c`, `random`, see
//! [`Balance`]) come after tracking and replace the four modes while one is on (their
//! selection is in `balance.rs`, Maglev's table in [`crate::domain::maglev`]). Failover is
//! written once ([`Selector::next_after`]): the next available server after the last one
//! tried, cyclically, until the first choice comes round again; in Maglev mode the built-in
//! policy follows the client's preference order instead ([`Selector::failover_after`]).
//!
//! The balancer asks a [`Policy`]: the built-in modes above are the [`DefaultPolicy`]; an
//! embedding program may plug its own ([`Config::with_policy`](crate::Config::with_policy)).
//! Whatever a policy answers is checked: a server that is not available (no address,
//! blacklisted, reported down by the [`HealthSource`], at its limits, weight 0 in weight mode,
//! or denied by its ACL) is never used ([`choose`], [`next_available`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::domain::acl::AclSet;
use crate::domain::health::HealthSource;
use crate::domain::server::{ServerId, ServerTable};
pub use crate::domain::settings::Balance;

/// The selection modes in force (from [`crate::domain::settings::Settings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    /// Hash of the client address picks the first server.
    pub hash: bool,
    /// Round robin without client tracking.
    pub roundrobin: bool,
    /// Least connections per weight.
    pub weight: bool,
    /// Lowest priority number first.
    pub prio: bool,
    /// The policy beyond C pen's modes (issue 14): when not [`Balance::Modes`], it makes the
    /// first choice instead of `prio`, `weight`, `hash` and round robin.
    pub balance: Balance,
    /// The Maglev table size (a prime).
    pub maglev_table: u32,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            hash: false,
            roundrobin: false,
            weight: false,
            prio: false,
            balance: Balance::Modes,
            maglev_table: crate::domain::maglev::DEFAULT_TABLE_SIZE,
        }
    }
}

impl Modes {
    /// The modes that `settings` set.
    pub fn of(settings: &crate::domain::settings::Settings) -> Self {
        Modes {
            hash: settings.hash,
            roundrobin: settings.roundrobin,
            weight: settings.weight,
            prio: settings.prio,
            balance: settings.balance,
            maglev_table: settings.maglev_table,
        }
    }
}

pub use crate::domain::maglev::mix64;

/// A deterministic hash over all bits of the client address (and the port when `with_port`).
pub fn client_hash(ip: IpAddr, port: Option<u16>) -> u64 {
    let base = match ip {
        IpAddr::V4(v4) => mix64(u64::from(u32::from(v4))),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            mix64(mix64(n as u64) ^ ((n >> 64) as u64))
        }
    };
    match port {
        Some(p) => mix64(base ^ u64::from(p)),
        None => base,
    }
}

/// A view of the tables at one instant, answering "which server next?" with the built-in modes.
///
/// ```
/// use std::sync::atomic::AtomicUsize;
/// use pen_core::acl::AclSet;
/// use pen_core::addr::parse_server;
/// use pen_core::policy::{Modes, Selector};
/// use pen_core::server::{ServerId, ServerTable};
///
/// let specs = [parse_server("127.0.0.1:81", 80)?, parse_server("127.0.0.1:82", 80)?];
/// let table = ServerTable::new(&specs, None);
/// let acls = AclSet::default();
/// let sel = Selector::new(&table, &acls, 1, Modes::default());
/// let rr = AtomicUsize::new(usize::MAX);
/// let client = "10.0.0.1".parse()?;
/// assert_eq!(sel.first_choice(client, 4000, None, &rr), Some(ServerId(0)));
/// assert_eq!(sel.first_choice(client, 4000, None, &rr), Some(ServerId(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Selector<'a> {
    /// The servers.
    pub table: &'a ServerTable,
    /// The ACL lists (for `server N acl A`).
    pub acls: &'a AclSet,
    /// The current time (milliseconds of the balancer's monotonic clock).
    pub now: u64,
    /// The modes in force.
    pub modes: Modes,
    /// What an external check says about the servers (`None`: every server is up).
    pub health: Option<&'a dyn HealthSource>,
    /// Slow start and the panic threshold (both off by default).
    pub rules: StateRules,
    /// Whether panic mode is on for this selection (see [`StateRules::panic`]).
    pub panic: bool,
}

// `PanicMode` and `StateRules` are defined beside the server health they read (so that
// `server_health` needs nothing from selection); their selection methods are here.
pub use crate::domain::server_health::{PanicMode, StateRules};

impl StateRules {
    /// Whether fewer than `panic_pct` % of the servers in `table` are available at `now` (in
    /// service by [`Server::in_service`](crate::domain::server::Server::in_service)), with
    /// the mode `open` (in `refuse` mode selection is unchanged, so panic is reported only
    /// through [`StateRules::panicking`]).
    pub fn panic(&self, table: &ServerTable, now: u64) -> bool {
        self.panic_mode == PanicMode::Open && self.panicking(table, now)
    }

    /// Whether fewer than `panic_pct` % of the servers in `table` are available at `now`
    /// (whatever the mode; false when the threshold is off or there are no servers).
    pub fn panicking(&self, table: &ServerTable, now: u64) -> bool {
        let n = table.len() as u64;
        if self.panic_pct == 0 || n == 0 {
            return false;
        }
        let up = table.iter().filter(|(_, s)| s.in_service(now)).count() as u64;
        up.saturating_mul(100) < n.saturating_mul(u64::from(self.panic_pct))
    }
}

impl<'a> Selector<'a> {
    /// A selector over `table` at `now` with `modes`, every server up as far as health goes.
    pub fn new(table: &'a ServerTable, acls: &'a AclSet, now: u64, modes: Modes) -> Self {
        Selector {
            table,
            acls,
            now,
            modes,
            health: None,
            rules: StateRules::default(),
            panic: false,
        }
    }

    /// The same, with slow start and the panic threshold `rules` (panic mode is decided here,
    /// once per selection).
    #[must_use]
    pub fn with_rules(self, rules: StateRules) -> Self {
        Selector {
            rules,
            panic: rules.panic(self.table, self.now),
            ..self
        }
    }

    /// The same, consulting `health` too: a server it reports down is not available.
    #[must_use]
    pub fn with_health(self, health: &'a dyn HealthSource) -> Self {
        Selector {
            health: Some(health),
            ..self
        }
    }
}

impl Selector<'_> {
    /// Whether server `id` can take client `client` now (PEN-SPEC 2.4); `tracked` says whether it
    /// is the client's remembered server, which admits it up to the hard limit. A server the
    /// health source reports down is not available.
    pub fn available(&self, id: ServerId, client: IpAddr, tracked: bool) -> bool {
        let Some(s) = self.table.get(id) else {
            return false;
        };
        let healthy = if self.panic {
            // Panic (open): health is ignored, the operator's state is not.
            s.has_address() && s.health().admin() == crate::domain::server_health::AdminState::Ready
        } else {
            s.in_service(self.now) && self.health.is_none_or(|h| h.is_up(id, self.now))
        };
        healthy
            && !(self.modes.weight && self.weight_of(s) == 0)
            && s.below_limits(tracked)
            && s.acl.is_none_or(|a| self.acls.permits(a, client))
    }

    /// The weight of `s` in weight mode: its configured weight scaled by the agent's share and
    /// by slow start (see [`ServerHealth::effective_weight`]).
    ///
    /// [`ServerHealth::effective_weight`]: crate::domain::server_health::ServerHealth::effective_weight
    pub fn weight_of(&self, s: &crate::domain::server::Server) -> u32 {
        let h = s.health();
        let since = h.back_since(s.blacklisted_until.load(Relaxed));
        h.effective_weight_since(s.weight, since, self.now, self.rules.slow_start_ms)
    }

    /// The first server to try for `client` (`port` is its source port, mixed into the hash in
    /// round-robin mode), given the server it used last. `None` when no server is available.
    pub fn first_choice(
        &self,
        client: IpAddr,
        port: u16,
        tracked: Option<ServerId>,
        rr: &AtomicUsize,
    ) -> Option<ServerId> {
        if !self.modes.roundrobin {
            if let Some(t) = tracked.filter(|&t| self.available(t, client, true)) {
                return Some(t);
            }
        }
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        match self.modes.balance {
            Balance::Modes => {}
            Balance::Maglev => {
                let with_port = self.modes.roundrobin.then_some(port);
                return self.maglev_choice(client, client_hash(client, with_port));
            }
            Balance::LeastConn => return self.least_conn(client, rr),
            Balance::P2c => return self.p2c(client),
            Balance::Random => return self.random(client),
        }
        let ok = |id: ServerId| self.available(id, client, false);
        if self.modes.prio {
            return self.best_by(client, |s| (u64::from(s.prio), 0));
        }
        if self.modes.weight {
            // Least conns/weight, compared exactly as conns_a * w_b < conns_b * w_a.
            // Kept as u32 so that the products of two widened u32s visibly fit a u64: no
            // overflow check is emitted (release builds have `overflow-checks` on).
            let mut best: Option<(ServerId, u32, u32)> = None;
            for (id, s) in self.table.iter() {
                if !ok(id) {
                    continue;
                }
                let (c, w) = (s.conns.load(Relaxed), self.weight_of(s));
                let wide = u64::from;
                if best.is_none_or(|(_, bc, bw)| wide(c) * wide(bw) < wide(bc) * wide(w)) {
                    best = Some((id, c, w));
                }
            }
            return best.map(|b| b.0);
        }
        if self.modes.hash {
            let with_port = self.modes.roundrobin.then_some(port);
            let start = (client_hash(client, with_port) % n as u64) as usize;
            let first = ServerId(start);
            return if ok(first) {
                Some(first)
            } else {
                self.next_after(first, first, client)
            };
        }
        // Round robin: the next available server after the last one chosen.
        let last = rr.load(Relaxed);
        let start = if last >= n { n - 1 } else { last };
        let pick = self
            .next_after(ServerId(start), ServerId(start), client)
            .or_else(|| {
                // The only candidate left may be the last one chosen itself.
                ok(ServerId(start)).then_some(ServerId(start))
            })?;
        rr.store(pick.0, Relaxed);
        Some(pick)
    }

    /// The available server minimising `key` (ties: fewer connections, then lower number).
    fn best_by(
        &self,
        client: IpAddr,
        key: impl Fn(&crate::domain::server::Server) -> (u64, u64),
    ) -> Option<ServerId> {
        self.table
            .iter()
            .filter(|&(id, _)| self.available(id, client, false))
            .min_by_key(|(id, s)| (key(s), s.conns.load(Relaxed), id.0))
            .map(|(id, _)| id)
    }

    /// Failover: the next available server after `last`, cyclically, stopping before `first`
    /// comes round again. `None` when the round is complete.
    pub fn next_after(&self, first: ServerId, last: ServerId, client: IpAddr) -> Option<ServerId> {
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        // At most one round: `first` may lie beyond a table a reload has shrunk, and then it
        // never comes round again.
        let mut i = last.0;
        for _ in 0..n {
            i = (i + 1) % n;
            if i == first.0 {
                return None;
            }
            if self.available(ServerId(i), client, false) {
                return Some(ServerId(i));
            }
        }
        None
    }

    /// The built-in failover ([`DefaultPolicy`]'s): [`Selector::next_after`], except in
    /// Maglev mode, where it is the client's preference order (see
    /// [`MaglevTable::next_after`](crate::domain::maglev::MaglevTable::next_after)), the same
    /// in every pen with the same servers.
    pub fn failover_after(
        &self,
        first: ServerId,
        last: ServerId,
        client: IpAddr,
    ) -> Option<ServerId> {
        if self.modes.balance == Balance::Maglev {
            if let Some(next) = self.maglev_next(client_hash(client, None), first, last, client) {
                return next;
            }
        }
        self.next_after(first, last, client)
    }

    /// Whether the emergency server may be used now (it exists and is in service: an
    /// address, not blacklisted, its health lets it). Callers use it only when no regular
    /// server is available.
    pub fn emergency_available(&self) -> bool {
        self.table
            .emergency
            .as_ref()
            .is_some_and(|e| e.in_service(self.now))
    }
}

/// What a [`Policy`] is asked about: one new client (or one failover) against the tables at
/// one instant.
#[derive(Clone, Copy)]
pub struct SelectionContext<'a> {
    selector: Selector<'a>,
    client: IpAddr,
    port: Option<u16>,
    tracked: Option<ServerId>,
    rr: &'a AtomicUsize,
}

impl<'a> SelectionContext<'a> {
    /// The context for `client` (source `port`, `None` in a failover), whose remembered server
    /// is `tracked`; `rr` is the round-robin cursor (the last server round robin chose).
    pub fn new(
        selector: Selector<'a>,
        client: IpAddr,
        port: Option<u16>,
        tracked: Option<ServerId>,
        rr: &'a AtomicUsize,
    ) -> Self {
        SelectionContext {
            selector,
            client,
            port,
            tracked,
            rr,
        }
    }

    /// The servers: addresses, limits, weights, priorities, live counters.
    pub fn table(&self) -> &'a ServerTable {
        self.selector.table
    }

    /// The built-in selection over the same tables (modes, ACLs, health).
    pub fn selector(&self) -> &Selector<'a> {
        &self.selector
    }

    /// The client's address.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// The client's source port (`None` in a failover).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The server the client used last, if it is remembered (never in round-robin mode).
    pub fn tracked(&self) -> Option<ServerId> {
        self.tracked
    }

    /// The time: milliseconds of the balancer's monotonic clock.
    pub fn now(&self) -> u64 {
        self.selector.now
    }

    /// The selection modes in force (`hash`, `roundrobin`, `weight`, `prio`).
    pub fn modes(&self) -> Modes {
        self.selector.modes
    }

    /// Whether server `id` can take this client now: it has an address, is not blacklisted nor
    /// reported down, is below its limits (only the hard one for the tracked server), has a
    /// weight in weight mode, and its ACL permits the client.
    pub fn available(&self, id: ServerId) -> bool {
        self.selector
            .available(id, self.client, Some(id) == self.tracked)
    }
}

/// A selection policy: which server a new client goes to, and where it goes next when that
/// server fails. The built-in one is [`DefaultPolicy`]; plug another with
/// [`Config::with_policy`](crate::Config::with_policy).
///
/// Called on the connection path under the table's read lock: answer from memory. An answer
/// that is not [`available`](SelectionContext::available) is not used (see [`choose`]), so a
/// policy need not re-check everything, but it should prefer available servers.
///
/// ```
/// use pen_core::policy::{Policy, SelectionContext};
/// use pen_core::server::ServerId;
///
/// /// The available server that has been sent the fewest bytes.
/// #[derive(Debug)]
/// struct FewestBytes;
///
/// impl Policy for FewestBytes {
///     fn first_choice(&self, ctx: &SelectionContext<'_>) -> Option<ServerId> {
///         ctx.table()
///             .iter()
///             .filter(|&(id, _)| ctx.available(id))
///             .min_by_key(|(_, s)| s.sent())
///             .map(|(id, _)| id)
///     }
/// }
/// ```
pub trait Policy: Send + Sync + fmt::Debug {
    /// The first server to try for the client, `None` when there is none.
    fn first_choice(&self, ctx: &SelectionContext<'_>) -> Option<ServerId>;

    /// Failover: the server to try after `last` failed, for a client whose round started at
    /// `first`; `None` ends the round (then the emergency server, if any, is tried). The
    /// default is the built-in order, [`Selector::next_after`]: the next available server
    /// after `last`, cyclically, until `first` comes round again.
    fn next_after(
        &self,
        ctx: &SelectionContext<'_>,
        first: ServerId,
        last: ServerId,
    ) -> Option<ServerId> {
        ctx.selector().next_after(first, last, ctx.client())
    }
}

/// The built-in modes: tracking (unless round robin) > prio > weight > hash > round robin,
/// as C pen (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn first_choice(&self, ctx: &SelectionContext<'_>) -> Option<ServerId> {
        ctx.selector
            .first_choice(ctx.client, ctx.port.unwrap_or(0), ctx.tracked, ctx.rr)
    }

    fn next_after(
        &self,
        ctx: &SelectionContext<'_>,
        first: ServerId,
        last: ServerId,
    ) -> Option<ServerId> {
        ctx.selector.failover_after(first, last, ctx.client)
    }
}

/// The server a new client goes to: `policy`'s first choice if it is available; if it is not,
/// the failover order from it ([`next_available`]). `None` when no server is available.
pub fn choose(policy: &dyn Policy, ctx: &SelectionContext<'_>) -> Option<ServerId> {
    let pick = policy.first_choice(ctx)?;
    if ctx.available(pick) {
        return Some(pick);
    }
    next_available(policy, ctx, pick, pick)
}

/// Failover: `policy`'s next server after `last` (the round started at `first`), passing over
/// any answer that is not available, for at most one round of the table. `None` when the
/// round is over.
pub fn next_available(
    policy: &dyn Policy,
    ctx: &SelectionContext<'_>,
    first: ServerId,
    last: ServerId,
) -> Option<ServerId> {
    let mut last = last;
    for _ in 0..=ctx.table().len() {
        let next = policy.next_after(ctx, first, last)?;
        if ctx.selector.available(next, ctx.client, false) {
            return Some(next);
        }
        if next == first || next == last {
            return None;
        }
        last = next;
    }
    None
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "policy_props.rs"]
mod props;

#[path = "balance.rs"]
mod balance;
