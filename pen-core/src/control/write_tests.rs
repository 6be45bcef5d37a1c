//! `write` then `-F`: any configuration reachable by commands, written out and loaded again
//! as a config file on top of the start-up configuration, is the same configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

use super::{render, StartLine};
use crate::control::command::{
    AclAction, AclEntry, AclPattern, Command, Fastclose, ModeFlag, ServerField, Switch,
};
use crate::control::limits::{CONNECTIONS_MAX, DEBUG_MAX, SECONDS_MAX, WEIGHT_MAX};
use crate::control::model::{Model, Pending};
use crate::domain::addr::ListenAddr;
use crate::engine::state::Shared;
use crate::runtime::balancer::Balancer;
use crate::runtime::config::Config;
use crate::runtime::controller::{commit, snapshot, Controller};
use crate::runtime::host::RealHost;

/// A connection count within [`CONNECTIONS_MAX`], as a `usize` field holds it.
const CONNS: usize = CONNECTIONS_MAX as usize;

/// A scratch directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let p = std::env::temp_dir().join(format!("pen-write-props-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn acl_entry() -> impl Strategy<Value = AclEntry> {
    let action = prop_oneof![Just(AclAction::Permit), Just(AclAction::Deny)];
    let pattern = prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(a, m)| AclPattern::V4 {
            addr: Ipv4Addr::from(a),
            mask: Ipv4Addr::from(m),
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| AclPattern::V6 {
            addr: Ipv6Addr::from(a),
            len,
        }),
    ];
    (action, pattern).prop_map(|(action, pattern)| AclEntry { action, pattern })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn server_field() -> impl Strategy<Value = ServerField> {
    prop_oneof![
        (0u8..10).prop_map(ServerField::Acl),
        ip().prop_map(|a| ServerField::Address(a.to_string())),
        ip().prop_map(|a| ServerField::Address(format!("[{a}]"))),
        any::<u16>().prop_map(ServerField::Port),
        (0..=CONNECTIONS_MAX).prop_map(ServerField::Max),
        (0..=CONNECTIONS_MAX).prop_map(ServerField::Hard),
        (0..=WEIGHT_MAX).prop_map(ServerField::Weight),
        (0..=WEIGHT_MAX).prop_map(ServerField::Prio),
        (0u64..100).prop_map(ServerField::Blacklist),
    ]
}

/// Every command that changes a model, with arguments that need no name resolution, no
/// listener and no TLS. File names (`log`) are relative to the scratch directory.
fn config_command() -> impl Strategy<Value = Command> {
    let switch = prop_oneof![
        Just(Switch::AbortOnError),
        Just(Switch::Ascii),
        Just(Switch::Dummy),
        Just(Switch::Http),
        Just(Switch::TcpNodelay),
        Just(Switch::Transparent),
        Just(Switch::ConnectOnData),
    ];
    let mode = prop_oneof![
        Just(ModeFlag::Hash),
        Just(ModeFlag::RoundRobin),
        Just(ModeFlag::Stubborn),
        Just(ModeFlag::Weight),
        Just(ModeFlag::Prio),
        // ---- policies (issue 14) ----
        Just(ModeFlag::Maglev),
        Just(ModeFlag::LeastConn),
        Just(ModeFlag::P2c),
        Just(ModeFlag::Random),
    ];
    let fastclose = prop_oneof![
        Just(Fastclose::Off),
        Just(Fastclose::Up),
        Just(Fastclose::Down),
        Just(Fastclose::Both),
    ];
    let word = "[a-z][a-z0-9._-]{0,8}";
    prop_oneof![
        4 => (0u8..10, acl_entry()).prop_map(|(list, entry)| Command::Acl { list, entry }),
        1 => (0u8..10).prop_map(Command::NoAcl),
        2 => (switch, any::<bool>()).prop_map(|(s, on)| Command::Switch(s, on)),
        2 => (mode, any::<bool>()).prop_map(|(m, on)| Command::Mode(m, on)),
        1 => (0..=SECONDS_MAX).prop_map(|n| Command::Blacklist(Some(n))),
        1 => (0u8..10).prop_map(|n| Command::ClientAcl(Some(n))),
        1 => (0u8..10).prop_map(|n| Command::ControlAcl(Some(n))),
        1 => (1usize..100_000).prop_map(|n| Command::ClientsMax(Some(n))),
        1 => (1usize..100_000).prop_map(|n| Command::ConnMax(Some(n))),
        1 => (0..=DEBUG_MAX).prop_map(|n| Command::Debug(Some(n))),
        1 => (0..=SECONDS_MAX).prop_map(|n| Command::IdleTimeout(Some(n))),
        1 => (1u64..1_000_000).prop_map(|n| Command::Timeout(Some(n))),
        1 => (0..=SECONDS_MAX).prop_map(|n| Command::Tracking(Some(n))),
        1 => (0..=CONNS).prop_map(|n| Command::PendingMax(Some(n))),
        1 => fastclose.prop_map(|f| Command::TcpFastclose(Some(f))),
        1 => ip().prop_map(Command::Source),
        1 => word.prop_map(|w| Command::Log(Some(w))),
        1 => Just(Command::NoLog),
        1 => word.prop_map(|w| Command::WebStats(Some(w))),
        1 => Just(Command::NoWebStats),
        1 => (0..=CONNECTIONS_MAX).prop_map(|n| Command::Idlers(Some(n))),
        1 => (-1i8..10).prop_map(|n| Command::TarpitAcl(Some(n))),
        1 => word.prop_map(|w| Command::DsrIf(Some(w))),
        1 => (0..=CONNS).prop_map(|n| Command::ConnPerClient(Some(n))),
        1 => (1u64..1_000_000).prop_map(|n| Command::HandshakeTimeout(Some(n))),
        1 => (0u8..10).prop_map(|n| Command::MetricsAcl(Some(n))),
        1 => (1u64..1_000_000).prop_map(|n| Command::RequestTimeout(Some(n))),
        1 => (-1i8..10).prop_map(|n| Command::TrustedProxyAcl(Some(n))),
        6 => (0usize..12, prop::collection::vec(server_field(), 0..6))
            .prop_map(|(id, fields)| Command::Server { id, fields }),
        // ---- DNS-driven servers (issue 14; names: control/dns_tests.rs) ----
        1 => (0..=SECONDS_MAX).prop_map(|n| Command::DnsInterval(Some(n))),
        1 => (ip(), any::<u16>()).prop_map(|(a, p)| Command::DnsServer(Some(SocketAddr::new(a, p)))),
        1 => Just(Command::NoDnsServer),
        // ---- policies (issue 14) ----
        1 => prop_oneof![Just(2u32), Just(101), Just(65_537), Just(1_048_573)]
            .prop_map(|m| Command::MaglevTable(Some(m))),
    ]
}

/// `log NAME` opens NAME: point it into `dir`.
fn in_dir(cmd: Command, dir: &Path) -> Command {
    match cmd {
        Command::Log(Some(w)) => Command::Log(Some(dir.join(w).display().to_string())),
        other => other,
    }
}

/// Loads `file` on top of `base` as `-F` does.
fn load(shared: &Shared, base: &Model, file: &Path) -> Result<Model, TestCaseError> {
    let mut model = base.clone();
    let host = RealHost::new(shared);
    let mut pending = Pending::default();
    let name = file.display().to_string();
    super::super::file::include(&host, &mut model, &mut pending, &name, 0)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    Ok(model)
}

#[test]
fn write_then_load_is_the_identity() {
    let dir = Dir::new();
    let listen = ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut config = Config::new(listen, Vec::new());
    config.workers = 1;
    let bound = Balancer::bind(config).unwrap();
    let shared: &Shared = bound.shared();
    let ctl = Controller::new(std::sync::Arc::clone(bound.shared()), None);
    let host = RealHost::new(shared);
    let base = snapshot(shared);
    let mut runner = TestRunner::new(RunnerConfig::with_cases(128));
    let strategy = prop::collection::vec(config_command(), 0..40);
    runner
        .run(&strategy, |cmds| {
            // The commands one by one, as the control socket applies them (none may fail).
            let mut model = base.clone();
            for cmd in cmds {
                let cmd = in_dir(cmd, &dir.0);
                let shown = cmd.to_string();
                model
                    .apply(&host, cmd, &mut Pending::default(), 0)
                    .map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
            }
            // The renderer alone: text, file, load.
            let file = dir.0.join("rendered.cfg");
            let text = render(&model, &StartLine::default(), &file, "now".to_string());
            std::fs::write(&file, &text).unwrap();
            let again = load(shared, &base, &file)?;
            prop_assert_eq!(&again, &model, "{}", text);
            prop_assert_eq!(
                render(&again, &StartLine::default(), &file, "now".to_string()),
                text
            );
            // The real `write` command on the running balancer once the model is installed.
            commit(shared, model.clone(), Pending::default());
            let written = dir.0.join("written.cfg");
            ctl.execute(Command::Write(Some(written.display().to_string())))
                .map_err(|e| TestCaseError::fail(format!("write: {e}")))?;
            let again = load(shared, &base, &written)?;
            prop_assert_eq!(&again, &model);
            commit(shared, base.clone(), Pending::default());
            *shared.clients.lock() = crate::domain::clients::ClientTable::new(base.clients_max);
            Ok(())
        })
        .unwrap();
}
