//! Routing and failover over an in-memory balancer state driven by a manual clock: connect
//! failures blacklist and fail over, blacklisting and tracking expire with time, stubborn and
//! emergency behave as in C pen. No socket, no sleep.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{choose, fail_over};
use crate::domain::addr::{parse_server, ServerSpec};
use crate::domain::clock::{Clock, ManualClock};
use crate::domain::server::{ServerId, Target};
use crate::domain::settings::Settings;
use crate::engine::lifecycle::{Expiry, Lifecycle, Timer};
use crate::engine::state::Shared;

fn specs(n: u16) -> Vec<ServerSpec> {
    (0..n)
        .map(|i| parse_server(&format!("127.0.0.1:{}", 9000 + i), 80).unwrap())
        .collect()
}

fn state(n: u16, settings: Settings) -> (Shared, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000, 1_800_000_000));
    let shared = Shared::for_tests(&specs(n), None, settings, clock.clone());
    (shared, clock)
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn blacklisted(sh: &Shared, id: usize, now: u64) -> bool {
    sh.servers
        .read()
        .get(ServerId(id))
        .is_some_and(|s| s.is_blacklisted(now))
}

/// A connect that times out (the lifecycle says when) blacklists the server for `-b` seconds
/// and moves the client to the next server; after `-b` seconds the server is back.
#[test]
fn connect_timeout_blacklists_and_fails_over_until_the_blacklist_expires() {
    let settings = Settings {
        blacklist_secs: 30,
        roundrobin: true,
        ..Settings::default()
    };
    let (sh, clock) = state(2, settings);
    let now = clock.now_ms();
    let (target, first) = choose(&sh, CLIENT, 4000, now, &"t").unwrap();
    assert_eq!(target, Target::Server(ServerId(0)));
    let mut life = Lifecycle::connecting(now);
    let deadline = life.connect_started(now, 3);
    clock.advance_ms(2_999);
    assert!(clock.now_ms() < deadline, "not yet");
    clock.advance_ms(1);
    assert_eq!(
        life.expire(Timer::Connect, deadline),
        Some(Expiry::ConnectTimedOut)
    );
    let now = clock.now_ms();
    let next = fail_over(&sh, target, first, CLIENT, now, &"connect timed out", true);
    assert_eq!(next, Some(Target::Server(ServerId(1))));
    assert!(blacklisted(&sh, 0, now));
    assert_eq!(sh.counters.blacklistings.load(Relaxed), 1);
    assert_eq!(sh.counters.failovers.load(Relaxed), 1);
    // New clients avoid the blacklisted server...
    for _ in 0..4 {
        let (t, _) = choose(&sh, CLIENT, 4001, clock.now_ms(), &"t").unwrap();
        assert_eq!(t, Target::Server(ServerId(1)));
    }
    // ... until the blacklisting expires, to the millisecond.
    clock.advance_ms(29_999);
    assert!(blacklisted(&sh, 0, clock.now_ms()));
    clock.advance_ms(1);
    assert!(!blacklisted(&sh, 0, clock.now_ms()));
    let picks: Vec<Target> = (0..2)
        .map(|_| choose(&sh, CLIENT, 4002, clock.now_ms(), &"t").unwrap().0)
        .collect();
    assert!(picks.contains(&Target::Server(ServerId(0))), "{picks:?}");
}

#[test]
fn stubborn_clients_do_not_fail_over() {
    let settings = Settings {
        stubborn: true,
        ..Settings::default()
    };
    let (sh, clock) = state(2, settings);
    let (target, first) = choose(&sh, CLIENT, 1, clock.now_ms(), &"t").unwrap();
    let next = fail_over(&sh, target, first, CLIENT, clock.now_ms(), &"refused", true);
    assert_eq!(next, None);
    assert_eq!(sh.counters.failovers.load(Relaxed), 0);
}

#[test]
fn the_emergency_server_only_when_every_server_failed() {
    let emergency = parse_server("127.0.0.1:9999", 80).unwrap();
    let clock = Arc::new(ManualClock::new(1, 0));
    let settings = Settings {
        roundrobin: true,
        ..Settings::default()
    };
    let sh = Shared::for_tests(&specs(2), Some(&emergency), settings, clock.clone());
    let now = clock.now_ms();
    let (t0, first) = choose(&sh, CLIENT, 1, now, &"t").unwrap();
    let t1 = fail_over(&sh, t0, first, CLIENT, now, &"refused", true).unwrap();
    assert!(
        matches!(t1, Target::Server(_)),
        "another regular server first"
    );
    let t2 = fail_over(&sh, t1, first, CLIENT, now, &"refused", true);
    assert_eq!(t2, Some(Target::Emergency));
    assert_eq!(
        choose(&sh, CLIENT, 2, now, &"t").unwrap().0,
        Target::Emergency
    );
    // No failover away from the emergency server.
    assert_eq!(
        fail_over(&sh, Target::Emergency, first, CLIENT, now, &"x", true),
        None
    );
}

#[test]
fn no_server_available_drops_the_client_and_counts_it() {
    let (sh, clock) = state(1, Settings::default());
    let now = clock.now_ms();
    let (t, first) = choose(&sh, CLIENT, 1, now, &"t").unwrap();
    assert_eq!(
        fail_over(&sh, t, first, CLIENT, now, &"refused", true),
        None
    );
    assert!(choose(&sh, CLIENT, 2, now, &"t").is_none());
    assert_eq!(sh.counters.no_server.load(Relaxed), 1);
}

/// A tracked client returns to its server until `tracking` seconds have passed (`-T`).
#[test]
fn tracking_expires_with_the_clock() {
    let settings = Settings {
        tracking_secs: 10,
        ..Settings::default()
    };
    let (sh, clock) = state(4, settings);
    // Record the client on server 2, as a worker does once connected.
    sh.clients
        .lock()
        .record(CLIENT, ServerId(2), clock.now_ms());
    clock.advance_ms(9_000);
    let (t, _) = choose(&sh, CLIENT, 5, clock.now_ms(), &"t").unwrap();
    assert_eq!(t, Target::Server(ServerId(2)));
    clock.advance_ms(11_000);
    let tracked = sh.clients.lock().lookup(CLIENT, clock.now_ms(), 10);
    assert_eq!(tracked, None, "forgotten after -T seconds");
}
