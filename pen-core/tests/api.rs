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

use pen_core::control::command::ServerField;
use pen_core::{Balancer, Command};

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
    use std::io::{Read, Write};
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
