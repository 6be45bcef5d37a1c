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
