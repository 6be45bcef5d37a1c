//! The blacklist watcher: reports [`Event::ServerRestored`] when a blacklisting runs out.
//!
//! Nothing happens when a blacklisting ends (the deadline simply passes), so a thread looks at
//! the table once a second while anyone is subscribed to the events, from the first
//! subscription until the balancer stops. Restorations by command are reported by the
//! controller, which makes them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::event::{Event, RestoreReason};
use crate::domain::server::{ServerTable, Target};
use crate::engine::state::Shared;

/// How often the table is looked at.
const TICK: Duration = Duration::from_secs(1);

/// Starts the watcher if there are subscribers and none runs yet.
pub(crate) fn start(shared: &Arc<Shared>) {
    if !shared.events.claim_watcher() {
        return;
    }
    let sh = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("pen-events".into())
        .spawn(move || watch(&sh));
    if let Err(e) = spawned {
        shared.events.release_watcher();
        log::warn!("cannot watch blacklistings for the events: {e}");
    }
}

/// Looks once a second until the balancer stops.
fn watch(shared: &Shared) {
    let mut watched = Vec::new();
    while !shared.stopping.load(Relaxed) {
        let expired = look(&shared.servers.read(), &mut watched, shared.now_ms());
        for server in expired {
            shared.events.emit(|| Event::ServerRestored {
                server,
                reason: RestoreReason::Expired,
            });
        }
        std::thread::sleep(TICK);
    }
    shared.events.release_watcher();
}

/// Every server (regular, emergency, abuse) of the table.
fn targets(t: &ServerTable) -> impl Iterator<Item = Target> + '_ {
    t.iter()
        .map(|(id, _)| Target::Server(id))
        .chain(t.emergency.is_some().then_some(Target::Emergency))
        .chain(t.abuse.is_some().then_some(Target::Abuse))
}

/// One look at the table at `now`: returns the servers of `watched` (those blacklisted at the
/// last look) whose blacklisting has run out, and makes `watched` the servers blacklisted now.
/// A blacklisting cleared (by command) or a server removed since is forgotten silently.
fn look(table: &ServerTable, watched: &mut Vec<Target>, now: u64) -> Vec<Target> {
    let mut expired = Vec::new();
    watched.retain(|&t| {
        let until = table
            .target(t)
            .map_or(0, |s| s.blacklisted_until.load(Relaxed));
        if until != 0 && until <= now {
            expired.push(t);
        }
        until > now
    });
    for t in targets(table) {
        let blacklisted = table.target(t).is_some_and(|s| s.is_blacklisted(now));
        if blacklisted && !watched.contains(&t) {
            watched.push(t);
        }
    }
    expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::addr::ServerSpec;
    use crate::domain::server::ServerId;

    fn table(n: u16) -> ServerTable {
        let spec = |port| ServerSpec {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            max: 0,
            hard: 0,
            weight: 0,
            prio: 0,
        };
        let specs: Vec<ServerSpec> = (1..=n).map(spec).collect();
        ServerTable::new(&specs, Some(&spec(99)))
    }

    #[test]
    fn reports_each_expiry_once_and_not_a_cleared_blacklisting() {
        let t = table(3);
        let s = |i| t.get(ServerId(i)).unwrap();
        let mut watched = Vec::new();
        s(0).blacklist(1_000, 2); // until 3000
        s(1).blacklist(1_000, 5); // until 6000
        t.emergency.as_ref().unwrap().blacklist(1_000, 1); // until 2000
        assert_eq!(look(&t, &mut watched, 1_500), []);
        assert_eq!(watched.len(), 3);
        assert_eq!(look(&t, &mut watched, 2_500), [Target::Emergency]);
        s(1).blacklist(2_600, 0); // cleared by command: reported by the controller
        assert_eq!(look(&t, &mut watched, 3_000), [Target::Server(ServerId(0))]);
        assert_eq!(look(&t, &mut watched, 9_000), []);
        assert!(watched.is_empty());
        // Blacklisted again, then expired between two looks.
        s(2).blacklist(9_000, 1);
        assert_eq!(look(&t, &mut watched, 9_500), []);
        s(2).blacklist(9_600, 1); // renewed: still one expiry
        assert_eq!(
            look(&t, &mut watched, 20_000),
            [Target::Server(ServerId(2))]
        );
    }
}
