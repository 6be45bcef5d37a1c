//! The blacklist watcher: reports [`Event::ServerRestored`] when a blacklisting runs out.
//!
//! Nothing happens when a blacklisting ends (its deadline simply passes), so a thread looks at
//! the table once a second while anyone is subscribed to the events, from the first
//! subscription until the balancer stops, and reports every deadline that passed since the
//! last look (even of a blacklisting that began after it). Restorations by command are
//! reported by the controller, which makes them.

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
    let mut since = shared.now_ms();
    while !shared.stopping.load(Relaxed) {
        std::thread::sleep(TICK);
        let now = shared.now_ms();
        let expired = look(&shared.servers.read(), since, now);
        since = now;
        for server in expired {
            shared.events.emit(|| Event::ServerRestored {
                server,
                reason: RestoreReason::Expired,
            });
        }
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

/// The servers whose blacklisting ran out after `since` and by `now` (a blacklisting's end is
/// its deadline; a cleared one has none, a renewed one a later one).
fn look(table: &ServerTable, since: u64, now: u64) -> Vec<Target> {
    targets(table)
        .filter(|&t| {
            table.target(t).is_some_and(|s| {
                let until = s.blacklisted_until.load(Relaxed);
                since < until && until <= now
            })
        })
        .collect()
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
    fn reports_each_expiry_once_and_not_a_cleared_or_renewed_blacklisting() {
        let t = table(3);
        let s = |i| t.get(ServerId(i)).unwrap();
        s(0).blacklist(1_000, 2); // until 3000
        s(1).blacklist(1_000, 5); // until 6000
        t.emergency.as_ref().unwrap().blacklist(1_000, 1); // until 2000
        assert_eq!(look(&t, 1_000, 1_500), []);
        assert_eq!(look(&t, 1_500, 2_500), [Target::Emergency]);
        s(1).blacklist(2_600, 0); // cleared by command: reported by the controller
        assert_eq!(look(&t, 2_500, 3_000), [Target::Server(ServerId(0))]);
        assert_eq!(look(&t, 3_000, 9_000), []);
        // Blacklisted and run out between two looks.
        s(2).blacklist(9_100, 1); // until 10100
        s(0).blacklist(9_100, 1);
        s(0).blacklist(9_900, 1); // renewed: until 10900
        assert_eq!(look(&t, 9_000, 10_500), [Target::Server(ServerId(2))]);
        assert_eq!(look(&t, 10_500, 11_500), [Target::Server(ServerId(0))]);
    }
}
