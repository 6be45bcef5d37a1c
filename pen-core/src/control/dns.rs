//! Server names in the configuration model (issue 14): `server N address NAME` keeps the
//! name beside the address, `all MAX` makes the name own the slots N..N+MAX-1 (the *group*:
//! the head N and its followers), and a new answer from the resolver is applied to a model
//! ([`apply_resolved`]) inside the same configuration transaction as any penctl change.
//!
//! The followers take the head's port, limits, weight, priority, ACL and check; their
//! addresses come from the answer only, so `server F address ...` on a follower is refused and
//! `write` leaves followers out (the head's line recreates them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::domain::addr::Host as HostName;
use crate::domain::dns::{assign, DnsName};
use crate::domain::server::ServerConf;
use crate::error::ApplyError;

fn invalid(token: impl ToString, reason: impl ToString) -> ApplyError {
    ApplyError::Invalid {
        token: token.to_string(),
        reason: reason.to_string(),
    }
}

/// `address H` on server `c`: the address `ip` that `H` resolved to, and the name kept when
/// `H` is one. A group's head given its own name again (a reload) keeps the address the
/// resolver gave its slot; the resolver owns the group's addresses.
pub(crate) fn set_address(
    c: &mut ServerConf,
    host: &HostName,
    ip: IpAddr,
    before: Option<&DnsName>,
) {
    let port = c.addr.map_or(0, |a| a.port());
    let fresh = SocketAddr::new(ip, port);
    match host {
        HostName::Ip(_) => {
            c.dns = None;
            c.addr = Some(fresh);
        }
        HostName::Name(n) => {
            let same = before.filter(|b| b.name == *n);
            let group = same.is_some_and(|b| b.all > 1);
            let placed = c.addr.is_some_and(|a| !a.ip().is_unspecified());
            if !(group && placed) {
                c.addr = Some(fresh);
            }
            c.dns = Some(DnsName {
                name: n.clone(),
                all: same.map_or(0, |b| b.all),
            });
        }
    }
}

/// `all MAX` on server `c`: needs a name (given on the same line or before).
pub(crate) fn set_all(c: &mut ServerConf, n: u16) -> Result<(), ApplyError> {
    match c.dns.as_mut() {
        Some(d) => {
            d.all = n;
            Ok(())
        }
        None => Err(invalid(
            format!("all {n}"),
            "expected a host name first: server N address NAME all MAX",
        )),
    }
}

/// The head of the group that `id` follows, if it is a follower.
pub(crate) fn group_of(servers: &[ServerConf], id: usize) -> Option<usize> {
    servers.iter().enumerate().take(id).find_map(|(h, c)| {
        let slots = c.dns.as_ref().map_or(1, DnsName::slots);
        (id < h.saturating_add(slots)).then_some(h)
    })
}

/// After `server id ...` changed `servers[id]` (which had the name `before`): checks the
/// group it heads or follows and brings its followers in line (slots joining the group are
/// created, slots leaving it lose their address, the head's settings are copied).
pub(crate) fn settle(
    servers: &mut Vec<ServerConf>,
    id: usize,
    before: Option<&DnsName>,
    addressed: bool,
) -> Result<(), ApplyError> {
    if let Some(head) = group_of(servers, id) {
        if addressed {
            return Err(invalid(
                id,
                format!(
                    "server {id} takes its address from the name of server {head} \
                     (address NAME all MAX); change server {head}"
                ),
            ));
        }
    }
    let Some(c) = servers.get(id).cloned() else {
        return Ok(());
    };
    let old_slots = before.map_or(1, DnsName::slots);
    let new_slots = c.dns.as_ref().map_or(1, DnsName::slots);
    if old_slots <= 1 && new_slots <= 1 {
        return Ok(());
    }
    let end = id.saturating_add(new_slots);
    if end > super::model::MAX_SERVERS {
        let most = super::model::MAX_SERVERS;
        return Err(invalid(
            new_slots,
            format!("expected slots {id}..{end} to stay below the server limit {most}"),
        ));
    }
    for j in id.saturating_add(1)..end.min(servers.len()) {
        let taken = servers.get(j).is_some_and(|s| s.dns.is_some());
        let other = group_of(servers, j).is_some_and(|h| h != id);
        if taken || other {
            return Err(invalid(
                new_slots,
                format!("server {j} has a name of its own: expected free slots {id}..{end}"),
            ));
        }
    }
    // Slots that leave the group: no address until someone gives them one.
    let left = id.saturating_add(old_slots).min(servers.len());
    for s in servers.iter_mut().take(left).skip(end) {
        s.addr = None;
    }
    if servers.len() < end {
        servers.resize_with(end, ServerConf::default);
    }
    let renamed = before.map(|b| &b.name) != c.dns.as_ref().map(|d| &d.name);
    let port = c.addr.map_or(0, |a| a.port());
    for f in servers.iter_mut().take(end).skip(id.saturating_add(1)) {
        let ip = f
            .addr
            .map(|a| a.ip())
            .filter(|_| !renamed)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        f.addr = Some(SocketAddr::new(ip, port));
        f.max = c.max;
        f.hard = c.hard;
        f.weight = c.weight;
        f.prio = c.prio;
        f.acl = c.acl;
        f.check.clone_from(&c.check);
        f.dns = None;
    }
    Ok(())
}

/// Applies a new answer for `name` to every server that has the name (and its followers):
/// addresses still in the answer stay where they are ([`assign`]). Returns whether anything
/// changed.
pub(crate) fn apply_resolved(servers: &mut [ServerConf], name: &str, answer: &[IpAddr]) -> bool {
    let heads: Vec<(usize, usize)> = servers
        .iter()
        .enumerate()
        .filter_map(|(h, c)| {
            let d = c.dns.as_ref().filter(|d| d.name == name)?;
            Some((h, d.slots()))
        })
        .collect();
    let mut changed = false;
    for (h, slots) in heads {
        let end = h.saturating_add(slots).min(servers.len());
        let Some(group) = servers.get_mut(h..end) else {
            continue;
        };
        let port = group.first().and_then(|c| c.addr).map_or(0, |a| a.port());
        let current: Vec<Option<IpAddr>> = group.iter().map(|c| c.addr.map(|a| a.ip())).collect();
        for (c, ip) in group.iter_mut().zip(assign(&current, answer)) {
            let want = SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port);
            if c.addr != Some(want) {
                c.addr = Some(want);
                changed = true;
            }
        }
    }
    changed
}

/// The distinct names the servers were given.
pub(crate) fn names(servers: &[ServerConf]) -> Vec<String> {
    let mut out: Vec<String> = servers
        .iter()
        .filter_map(|c| c.dns.as_ref().map(|d| d.name.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
