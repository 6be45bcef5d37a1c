//! The typed embedding API: `execute`, `snapshot`, events, custom policies and health sources,
//! against an in-process `Balancer` and loopback backends.

// Test code: a panic is a failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::{config, echo_backend};

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pen_core::control::command::ServerField;
use pen_core::event::{BlacklistReason, ConfigSource, RestoreReason};
use pen_core::health::HealthSource;
use pen_core::policy::{Policy, SelectionContext};
use pen_core::server::{ServerId, Target};
use pen_core::{Balancer, Command, Event};

#[test]
fn execute_changes_the_configuration_and_answers_like_apply() {
    let (a, b) = (echo_backend(), echo_backend());
    let bal = Balancer::start(config(&[a])).unwrap();
    let reply = bal
        .execute(Command::Server {
            id: 1,
            fields: vec![
                ServerField::Address(b.ip().to_string()),
                ServerField::Port(b.port()),
                ServerField::Weight(3),
            ],
        })
        .unwrap();
    assert!(reply.is_empty(), "a change answers nothing: {reply:?}");
    let servers = bal.execute(Command::Servers).unwrap();
    assert_eq!(servers.text(), bal.apply("servers").unwrap());
    assert_eq!(servers.lines().count(), 2, "{servers}");
    assert!(
        servers.text().contains(&format!("{} ", b.port())),
        "{servers}"
    );
    let err = bal
        .execute(Command::Server {
            id: 0,
            fields: vec![ServerField::Address("no such host.invalid".into())],
        })
        .unwrap_err();
    assert!(err.to_string().contains("no such host.invalid"), "{err}");
    assert_eq!(
        bal.execute(Command::Servers).unwrap(),
        servers,
        "nothing changed"
    );
    bal.stop();
}

/// Sends `msg` through the balancer and reads the echo back.
fn echo_through(bal: &Balancer, msg: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(common::addr_of(bal)).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    back
}

#[test]
fn snapshot_shows_servers_clients_counters_and_settings() {
    let (a, b) = (echo_backend(), echo_backend());
    let bal = Balancer::start(config(&[a, b])).unwrap();
    bal.apply("server 1 weight 4 prio 2 max 9").unwrap();
    bal.apply("server 0 blacklist 60").unwrap();
    assert_eq!(echo_through(&bal, b"hello"), b"hello");
    common::wait_until("the connection's bytes are counted", || {
        bal.snapshot().servers[1].received == 5 && bal.active_connections() == 0
    });
    let s = bal.snapshot();
    assert_eq!(s.listen, bal.listen_addr().to_string());
    assert_eq!((s.active, s.conn_max, s.workers), (0, 500, 2));
    assert!(s.uptime_ms < 60_000, "{}", s.uptime_ms);
    assert_eq!(s.servers.len(), 2);
    let (s0, s1) = (&s.servers[0], &s.servers[1]);
    assert_eq!(s0.addr, Some(a));
    assert!(matches!(s0.blacklist_left, Some(55..=60)), "{s0:?}");
    assert_eq!((s1.addr, s1.weight, s1.prio, s1.max), (Some(b), 4, 2, 9));
    assert_eq!(
        (s1.blacklist_left, s1.total, s1.sent, s1.conns),
        (None, 1, 5, 0)
    );
    assert_eq!(s.clients.len(), 1);
    assert_eq!(s.clients_tracked, 1);
    assert_eq!(s.clients[0].server, 1);
    assert_eq!(s.clients[0].addr.to_string(), "127.0.0.1");
    assert_eq!(s.counters.accepted, 1);
    assert_eq!(s.settings.blacklist_secs, 30);
    assert!(s.emergency.is_none() && s.tls.is_none());
    bal.stop();
}

/// Reads events until one for which `want` holds (at most 5 s); panics with those seen.
fn expect_event(rx: &Receiver<Event>, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if want(&e) => return e,
            Ok(e) => seen.push(e.to_string()),
            Err(_) => panic!("no event {what}; saw {seen:#?}"),
        }
    }
}

/// An address nothing listens on (connections are refused).
fn dead_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn events_report_blacklisting_failover_restoring_and_configuration() {
    let dir = std::env::temp_dir().join(format!("pen-api-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pen.cfg");
    std::fs::write(&file, "tracking 5\n").unwrap();
    let mut cfg = config(&[dead_port(), echo_backend()]);
    cfg.commands.push("blacklist 7".into());
    cfg.config_file = Some(file.clone());
    cfg.control = Some(pen_core::addr::parse_listen("127.0.0.1:0").unwrap());
    let rx = cfg.subscribe();
    let bal = Balancer::start(cfg).unwrap();
    let s0 = Target::Server(ServerId(0));
    let s1 = Target::Server(ServerId(1));
    assert_eq!(
        rx.try_recv().unwrap(),
        Event::ConfigApplied {
            source: ConfigSource::CommandLine,
            what: "blacklist 7".into()
        }
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        Event::ConfigApplied {
            source: ConfigSource::ConfigFile,
            what: file.display().to_string()
        }
    );

    // The first choice (server 0) refuses: blacklisted, failover to server 1.
    assert_eq!(echo_through(&bal, b"x"), b"x");
    let e = expect_event(&rx, "blacklisting", |e| {
        matches!(e, Event::ServerBlacklisted { .. })
    });
    assert!(
        matches!(&e, Event::ServerBlacklisted { server, seconds: 7, reason: BlacklistReason::ConnectFailed(_) } if *server == s0),
        "{e:?}"
    );
    assert_eq!(
        expect_event(&rx, "failover", |e| matches!(e, Event::Failover { .. })),
        Event::Failover { from: s0, to: s1 }
    );

    // Restored by command; a refused change; the control socket.
    bal.apply("server 0 blacklist 0").unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Event::ServerRestored {
            server: s0,
            reason: RestoreReason::Command
        }
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Event::ConfigApplied {
            source: ConfigSource::Api,
            what: "server 0 blacklist 0".into()
        }
    );
    assert!(bal.apply("server 0 weight heavy").is_err());
    let e = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(&e, Event::ConfigRefused { source: ConfigSource::Api, what, error } if what == "server 0 weight heavy" && error.contains("'heavy'")),
        "{e:?}"
    );
    let control = match bal.control_addr().unwrap() {
        pen_core::addr::ListenAddr::Inet(a) => a,
        other => panic!("{other}"),
    };
    let mut c = std::net::TcpStream::connect(control).unwrap();
    c.write_all(b"weight\n").unwrap();
    c.read_to_end(&mut Vec::new()).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Event::ConfigApplied {
            source: ConfigSource::ControlSocket,
            what: "weight".into()
        }
    );

    // A blacklisting that runs out is noticed within about a second.
    bal.apply("server 1 blacklist 1").unwrap();
    let e = expect_event(&rx, "expiry", |e| {
        matches!(
            e,
            Event::ServerRestored {
                reason: RestoreReason::Expired,
                ..
            }
        )
    });
    assert_eq!(
        e,
        Event::ServerRestored {
            server: s1,
            reason: RestoreReason::Expired
        }
    );

    // Reload, refused then applied.
    std::fs::write(&file, "tracking x\n").unwrap();
    assert!(bal.reload().is_err());
    let e = expect_event(&rx, "refused reload", |e| {
        matches!(e, Event::ConfigRefused { .. })
    });
    assert!(
        matches!(&e, Event::ConfigRefused { source: ConfigSource::Reload, error, .. } if error.contains(":1: ")),
        "{e:?}"
    );
    std::fs::write(&file, "tracking 6\n").unwrap();
    bal.reload().unwrap();
    expect_event(&rx, "reload", |e| {
        matches!(
            e,
            Event::ConfigApplied {
                source: ConfigSource::Reload,
                ..
            }
        )
    });
    assert_eq!(bal.snapshot().counters.events_dropped, 0);
    bal.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Always server 1 (whatever its state), counting the questions.
#[derive(Debug, Default)]
struct AlwaysOne(AtomicUsize);

impl Policy for AlwaysOne {
    fn first_choice(&self, _ctx: &SelectionContext<'_>) -> Option<ServerId> {
        self.0.fetch_add(1, Relaxed);
        Some(ServerId(1))
    }
}

/// Per-server up flags, as a probe would set them.
#[derive(Debug)]
struct Flags(Vec<AtomicBool>);

impl HealthSource for Flags {
    fn is_up(&self, id: ServerId, _now: u64) -> bool {
        self.0.get(id.0).is_none_or(|f| f.load(Relaxed))
    }
}

/// Connections each server has taken so far.
fn totals(bal: &Balancer) -> Vec<u64> {
    bal.snapshot().servers.iter().map(|s| s.total).collect()
}

#[test]
fn a_custom_policy_is_consulted_and_an_unavailable_choice_is_not_used() {
    let policy = Arc::new(AlwaysOne::default());
    let cfg = config(&[echo_backend(), echo_backend()]).with_policy(policy.clone());
    let bal = Balancer::start(cfg).unwrap();
    for _ in 0..3 {
        assert_eq!(echo_through(&bal, b"x"), b"x");
    }
    assert_eq!(totals(&bal), [0, 3]);
    assert_eq!(policy.0.load(Relaxed), 3);
    bal.apply("server 1 blacklist 60").unwrap();
    assert_eq!(echo_through(&bal, b"y"), b"y");
    assert_eq!(
        totals(&bal),
        [1, 3],
        "the blacklisted choice is passed over"
    );
    assert_eq!(policy.0.load(Relaxed), 4);
    bal.stop();
}

#[test]
fn a_health_source_keeps_clients_off_a_server_it_reports_down() {
    let flags = Arc::new(Flags(vec![AtomicBool::new(false), AtomicBool::new(true)]));
    let mut cfg = config(&[echo_backend(), echo_backend()]).with_health(flags.clone());
    cfg.settings.roundrobin = true;
    let bal = Balancer::start(cfg).unwrap();
    for _ in 0..4 {
        assert_eq!(echo_through(&bal, b"x"), b"x");
    }
    assert_eq!(totals(&bal), [0, 4]);
    flags.0[0].store(true, Relaxed);
    for _ in 0..4 {
        assert_eq!(echo_through(&bal, b"x"), b"x");
    }
    assert_eq!(
        totals(&bal),
        [2, 6],
        "round robin over both once server 0 is up"
    );
    bal.stop();
}
