//! Routing decisions shared by the TCP engine (`reactor`) and the UDP engine (`udp`): where a new
//! client goes (client ACL and abuse server, tracking, the selection policy, the emergency
//! server), and where it goes next when its server fails (blacklisting and failover). Written
//! once so the two engines cannot drift apart. Blacklistings and failovers are reported as
//! events.
//!
//! C pen's debug lines (`-d`, `debug N`) go to the `log` facade: level 1's at `debug`, level 2's
//! at `trace`. They are made only when `debug` is at least that level, so a logger that lets
//! everything through still prints nothing until `debug` is raised.

use std::fmt::Display;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use crate::domain::acl::AclSet;
use crate::domain::event::{BlacklistReason, Event};
use crate::domain::policy::{self, SelectionContext, Selector};
use crate::domain::server::ServerTable;
use crate::domain::server::{ServerId, Target};
use crate::domain::settings::Settings;
use crate::engine::state::Shared;

/// A target as debug output and `connection N` show it.
pub(crate) fn target_name(t: Target) -> String {
    match t {
        Target::Server(id) => id.to_string(),
        Target::Emergency => "emergency".to_string(),
        Target::Abuse => "abuse".to_string(),
    }
}

/// The built-in selection over the tables, with the health source if there is one.
fn selector<'a>(
    shared: &'a Shared,
    servers: &'a ServerTable,
    acls: &'a AclSet,
    now: u64,
    settings: &Settings,
) -> Selector<'a> {
    let sel = Selector::new(servers, acls, now, Shared::modes(settings))
        .with_rules(settings.states.rules());
    match shared.health.as_deref() {
        Some(h) => sel.with_health(h),
        None => sel,
    }
}

/// Where a new client from `ip` (source `port`) goes: its target and the first choice (where
/// a failover round ends). `None`: drop it (denied without an abuse server, or no server
/// available); the refusal is counted. `what` names the client in debug output.
pub(crate) fn choose(
    shared: &Shared,
    ip: IpAddr,
    port: u16,
    now: u64,
    what: &dyn Display,
) -> Option<(Target, Option<ServerId>)> {
    let (client_acl, untracked, tracking, debug) = {
        let s = shared.settings.read();
        (
            s.client_acl,
            s.roundrobin || s.no_tracking,
            s.tracking_secs,
            s.debug,
        )
    };
    if !shared.acls.read().permits(client_acl, ip) {
        shared.counters.refused_acl.fetch_add(1, Relaxed);
        let abuse = shared
            .servers
            .read()
            .abuse
            .as_ref()
            .is_some_and(|a| a.in_service(now));
        if debug > 0 {
            let to = if abuse {
                "sent to the abuse server"
            } else {
                "dropped"
            };
            log::debug!("{what} denied by ACL {client_acl}: {to}");
        }
        // Denied clients are not tracked and never fail over: no first choice.
        return abuse.then_some((Target::Abuse, None));
    }
    let tracked = if untracked {
        None
    } else {
        shared.clients.lock().lookup(ip, now, tracking)
    };
    let (first, emergency) = {
        let settings = shared.settings.read();
        let servers = shared.servers.read();
        let acls = shared.acls.read();
        let sel = selector(shared, &servers, &acls, now, &settings);
        let ctx = SelectionContext::new(sel, ip, Some(port), tracked, &shared.rr);
        (
            policy::choose(&*shared.policy, &ctx),
            sel.emergency_available(),
        )
    };
    let target = match (first, emergency) {
        (Some(id), _) => Target::Server(id),
        (None, true) => Target::Emergency,
        (None, false) => {
            if debug > 0 {
                log::debug!("{what}: no server available");
            }
            shared.counters.no_server.fetch_add(1, Relaxed);
            return None;
        }
    };
    if debug > 1 {
        log::trace!("{what} -> server {}", target_name(target));
    }
    Some((target, first))
}

/// `lookup ADDR[:PORT]` (issue 14): where a new client from `ip` (source `port`) would go
/// now, ignoring client tracking: the same decision as [`choose`], with nothing counted,
/// logged or remembered (the round-robin cursor is read, not moved).
pub(crate) fn lookup(shared: &Shared, ip: IpAddr, port: u16, now: u64) -> Option<Target> {
    let settings = shared.settings.read();
    let servers = shared.servers.read();
    if !shared.acls.read().permits(settings.client_acl, ip) {
        let abuse = servers.abuse.as_ref().is_some_and(|a| a.in_service(now));
        return abuse.then_some(Target::Abuse);
    }
    let acls = shared.acls.read();
    let sel = selector(shared, &servers, &acls, now, &settings);
    let rr = std::sync::atomic::AtomicUsize::new(shared.rr.load(Relaxed));
    let ctx = SelectionContext::new(sel, ip, Some(port), None, &rr);
    match policy::choose(&*shared.policy, &ctx) {
        Some(id) => Some(Target::Server(id)),
        None => sel.emergency_available().then_some(Target::Emergency),
    }
}

/// `target` failed for a client from `ip` whose round started at `first`: releases the
/// target's count, blacklists it (when `blacklist`: a refused, failed or timed-out connect),
/// and returns the next target, if any: the next available server after it (cyclically, up
/// to the first choice), then the emergency server. No failover away from the emergency or
/// abuse server, nor in stubborn mode.
pub(crate) fn fail_over(
    shared: &Shared,
    target: Target,
    first: Option<ServerId>,
    ip: IpAddr,
    now: u64,
    why: &dyn Display,
    blacklist: bool,
) -> Option<Target> {
    let settings = shared.settings.read();
    let servers = shared.servers.read();
    if let Some(s) = servers.target(target) {
        s.release();
        if blacklist {
            server_failed(shared, &settings, &servers, target, now, why);
        }
    }
    let next = match target {
        Target::Emergency | Target::Abuse => None,
        _ if settings.stubborn => None,
        Target::Server(cur) => {
            let acls = shared.acls.read();
            let sel = selector(shared, &servers, &acls, now, &settings);
            let ctx = SelectionContext::new(sel, ip, None, None, &shared.rr);
            match policy::next_available(&*shared.policy, &ctx, first.unwrap_or(cur), cur) {
                Some(id) => Some(Target::Server(id)),
                None if sel.emergency_available() => Some(Target::Emergency),
                None => None,
            }
        }
    };
    if let Some(to) = next {
        shared.counters.failovers.fetch_add(1, Relaxed);
        shared.events.emit(|| Event::Failover { from: target, to });
    }
    next
}

/// Live traffic showed `target` failing at `now` (a refused, failed or timed-out connect, or an
/// ICMP unreachable for UDP). Without `outlier_failures` (0, the default) this is C pen's rule:
/// the server is blacklisted for `blacklist` seconds. With it, passive detection: the
/// `outlier_failures`-th failure in a row ejects the server with exponential back-off, unless
/// `outlier_max_percent` of the servers are ejected already (one may always be).
pub(crate) fn server_failed(
    shared: &Shared,
    settings: &Settings,
    servers: &ServerTable,
    target: Target,
    now: u64,
    why: &dyn Display,
) {
    let Some(s) = servers.target(target) else {
        return;
    };
    let cfg = &settings.states;
    if cfg.outlier_failures == 0 {
        s.blacklist(now, settings.blacklist_secs);
        shared.counters.blacklistings.fetch_add(1, Relaxed);
        shared.events.emit(|| Event::ServerBlacklisted {
            server: target,
            seconds: settings.blacklist_secs,
            reason: BlacklistReason::ConnectFailed(why.to_string()),
        });
        if settings.debug > 0 {
            log::debug!(
                "server {} failed ({why}): blacklisted for {} s",
                target_name(target),
                settings.blacklist_secs
            );
        }
        return;
    }
    let may_eject = match target {
        Target::Server(_) => {
            let ejected = servers
                .iter()
                .filter(|(_, s)| s.health().is_ejected(now))
                .count();
            ejected == 0
                || (ejected as u64 + 1).saturating_mul(100)
                    <= (servers.len() as u64).saturating_mul(u64::from(cfg.outlier_max_pct))
        }
        // The emergency and abuse servers are alone in their kind.
        _ => true,
    };
    if let Some(ms) = s.health().on_failure(now, cfg, may_eject) {
        let seconds = ms / 1000;
        shared.counters.blacklistings.fetch_add(1, Relaxed);
        shared.events.emit(|| Event::ServerBlacklisted {
            server: target,
            seconds,
            reason: BlacklistReason::Ejected(why.to_string()),
        });
        if settings.debug > 0 {
            log::debug!(
                "server {} failed ({why}) {} times in a row: ejected for {seconds} s",
                target_name(target),
                cfg.outlier_failures
            );
        }
    }
}

/// Live traffic reached `target` at `now` (a connect succeeded): passive detection's count
/// of failures in a row starts again. Two relaxed loads when nothing is to be reset.
pub(crate) fn server_succeeded(shared: &Shared, target: Target, now: u64) {
    let settings = shared.settings.read();
    if settings.states.outlier_failures == 0 {
        return;
    }
    if let Some(s) = shared.servers.read().target(target) {
        s.health().on_success(now, &settings.states);
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;

/// What a connect to a server needs, read once per attempt by both TCP engines (`reactor` and
/// `uring`): the server's address, and the settings that shape the server-side socket.
pub(crate) struct ConnectPlan {
    /// The target's address (`None`: it has none, the connect fails over at once).
    pub(crate) addr: Option<std::net::SocketAddr>,
    /// `source`: the local address to bind.
    pub(crate) source: Option<std::net::IpAddr>,
    /// `tcp_nodelay`.
    pub(crate) nodelay: bool,
    /// The connect timeout in seconds.
    pub(crate) timeout: u64,
    /// `transparent`: the client's address for the server to see (a Unix-socket client has
    /// none: its peer address is unspecified).
    pub(crate) foreign: Option<std::net::IpAddr>,
}

/// Starts a connect attempt to `target` for a client at `peer_ip`: the settings it needs, and
/// the target's connection counted (released by the engine when the attempt ends).
pub(crate) fn connect_plan(
    shared: &Shared,
    target: crate::domain::server::Target,
    peer_ip: std::net::IpAddr,
) -> ConnectPlan {
    let (source, nodelay, timeout, transparent) = {
        let s = shared.settings.read();
        (
            s.source,
            s.tcp_nodelay,
            s.connect_timeout_secs,
            s.transparent,
        )
    };
    let addr = {
        let servers = shared.servers.read();
        let srv = servers.target(target);
        if let Some(s) = srv {
            s.conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        srv.and_then(|s| s.addr)
    };
    let foreign = (transparent && !peer_ip.is_unspecified()).then_some(peer_ip);
    ConnectPlan {
        addr,
        source,
        nodelay,
        timeout,
        foreign,
    }
}
