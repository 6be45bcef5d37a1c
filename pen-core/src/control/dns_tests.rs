//! Server names in the model: the name is kept, `all` builds a group, answers fill it.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::control::command::{Command, ServerField};
use crate::control::host::mem::MemHost;
use crate::control::model::{Model, Pending};

fn model() -> Model {
    Model {
        settings: crate::domain::settings::Settings::default(),
        acls: crate::domain::acl::AclSet::default(),
        servers: Vec::new(),
        conn_max: 500,
        clients_max: 2048,
        listen: crate::domain::addr::ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 80))),
        tls: None,
        target_checks: Default::default(),
    }
}

fn host() -> MemHost {
    let mut h = MemHost::default();
    h.names
        .insert("svc.test".into(), IpAddr::from([10, 0, 0, 1]));
    h.names
        .insert("other.test".into(), IpAddr::from([10, 9, 9, 9]));
    h
}

fn apply(m: &mut Model, line: &str) -> Result<String, crate::error::ApplyError> {
    let cmd = crate::control::parse_line(line).unwrap();
    m.apply(&host(), cmd, &mut Pending::default(), 0)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn addrs(m: &Model) -> Vec<Option<SocketAddr>> {
    m.servers.iter().map(|c| c.addr).collect()
}

/// A name is kept beside the address; an address literal drops it.
#[test]
fn a_name_is_kept_and_an_address_drops_it() {
    let mut m = model();
    apply(&mut m, "server 0 address svc.test port 81").unwrap();
    assert_eq!(m.servers[0].dns.as_ref().unwrap().name, "svc.test");
    assert_eq!(
        m.servers[0].addr,
        Some(SocketAddr::from(([10, 0, 0, 1], 81)))
    );
    apply(&mut m, "server 0 address 10.1.1.1").unwrap();
    assert_eq!(m.servers[0].dns, None);
    assert!(apply(&mut m, "server 0 all 4").is_err(), "all needs a name");
}

/// `all 3` makes slots 1 and 2 followers with the head's port and settings; an answer fills
/// them, keeps addresses where they are, and empties slots beyond it; a follower's address
/// cannot be set; a smaller group lets slots go.
#[test]
fn a_group_follows_the_answer() {
    let mut m = model();
    apply(
        &mut m,
        "server 0 address svc.test all 3 port 81 max 5 weight 2",
    )
    .unwrap();
    assert_eq!(m.servers.len(), 3);
    assert_eq!(group_of(&m.servers, 2), Some(0));
    assert_eq!(group_of(&m.servers, 0), None);
    assert!(m.servers[1..].iter().all(|c| c.max == 5 && c.weight == 2));
    assert_eq!(
        m.servers[2].addr,
        Some(SocketAddr::from(([0, 0, 0, 0], 81)))
    );
    let sa = |last| Some(SocketAddr::new(ip(last), 81));
    assert!(apply_resolved(
        &mut m.servers,
        "svc.test",
        &[ip(1), ip(2), ip(3), ip(4)]
    ));
    assert_eq!(addrs(&m), [sa(1), sa(2), sa(3)]);
    assert!(!apply_resolved(
        &mut m.servers,
        "svc.test",
        &[ip(3), ip(2), ip(1)]
    ));
    assert!(apply_resolved(&mut m.servers, "svc.test", &[ip(3), ip(5)]));
    let none = Some(SocketAddr::from(([0, 0, 0, 0], 81)));
    assert_eq!(addrs(&m), [sa(5), none, sa(3)]);
    // (A refused change is dropped whole by the transaction: try it on a copy.)
    let e = apply(&mut m.clone(), "server 1 address 10.2.2.2").unwrap_err();
    assert!(e.to_string().contains("server 0"), "{e}");
    apply(&mut m, "server 1 weight 7").unwrap(); // not an address: allowed
                                                 // The same line again (a reload) keeps the group's addresses.
    apply(
        &mut m,
        "server 0 address svc.test all 3 port 81 max 5 weight 2",
    )
    .unwrap();
    assert_eq!(addrs(&m), [sa(5), none, sa(3)]);
    assert_eq!(m.servers[1].weight, 2);
    // Smaller: slot 2 leaves the group and loses its address.
    apply(&mut m, "server 0 all 2").unwrap();
    assert_eq!(m.servers[2].addr, None);
    apply(&mut m, "server 2 address 10.3.3.3").unwrap();
}

/// A group may not take a slot that has a name of its own, nor reach the server limit.
#[test]
fn a_group_needs_free_slots() {
    let mut m = model();
    apply(&mut m, "server 2 address other.test").unwrap();
    assert!(apply(&mut m, "server 0 address svc.test all 4").is_err());
    let mut m = model();
    let last = super::super::model::MAX_SERVERS - 1;
    let e = apply(&mut m, &format!("server {last} address svc.test all 2")).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
}

/// `dns_interval` and `dns_server` are settings with penctl replies; `write` renders the
/// name, `all`, and the settings before the servers, and leaves followers out.
#[test]
fn settings_and_write() {
    let mut m = model();
    assert_eq!(apply(&mut m, "dns_interval 5").unwrap(), "5\n");
    assert_eq!(
        apply(&mut m, "dns_server 127.0.0.1:5353").unwrap(),
        "127.0.0.1:5353\n"
    );
    apply(&mut m, "server 0 address svc.test all 2 port 81").unwrap();
    apply(&mut m, "server 2 address 10.0.0.7 port 82").unwrap();
    let text = crate::control::write::render(
        &m,
        &crate::control::write::StartLine::default(),
        std::path::Path::new("x.cfg"),
        "now".into(),
    );
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.starts_with(needle)).unwrap();
    assert!(at("dns_interval 5") < at("server 0 "));
    assert!(at("dns_server 127.0.0.1:5353") < at("server 0 "));
    assert!(
        text.contains("server 0 address svc.test all 2 port 81 max 0 hard 0\n"),
        "{text}"
    );
    assert!(!text.contains("server 1 "), "{text}");
    assert!(text.contains("server 2 address 10.0.0.7 port 82"), "{text}");
    assert_eq!(apply(&mut m, "no dns_server").unwrap(), "");
    assert_eq!(m.settings.dns.server, None);
}

/// The commands' text forms: `all` with or without its number, `dns_server` with or without
/// a port, and the errors naming the token.
#[test]
fn commands_parse() {
    use crate::control::parse_line;
    let server = |line: &str| match parse_line(line) {
        Ok(Command::Server { fields, .. }) => fields,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        server("server 0 address svc.test all port 80"),
        [
            ServerField::Address("svc.test".into()),
            ServerField::All(crate::domain::dns::ALL_DEFAULT),
            ServerField::Port(80)
        ]
    );
    assert_eq!(server("server 0 all 0"), [ServerField::All(0)]);
    let e = parse_line("server 0 address a all 257")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'257'") && e.contains("up to 256"), "{e}");
    let dns = |line: &str| parse_line(line).unwrap();
    let v6: SocketAddr = "[::1]:53".parse().unwrap();
    assert_eq!(dns("dns_server ::1"), Command::DnsServer(Some(v6)));
    assert_eq!(dns("dns_server [::1]:53"), Command::DnsServer(Some(v6)));
    let v4: SocketAddr = "10.0.0.53:5353".parse().unwrap();
    assert_eq!(
        dns("dns_server 10.0.0.53:5353"),
        Command::DnsServer(Some(v4))
    );
    assert_eq!(dns("dns_server"), Command::DnsServer(None));
    assert_eq!(dns("no dns_server"), Command::NoDnsServer);
    assert_eq!(dns("dns_interval 0"), Command::DnsInterval(Some(0)));
    assert_eq!(dns("dns"), Command::Dns);
    let e = parse_line("dns_server ns1.example")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'ns1.example'") && e.contains("IP:PORT"), "{e}");
    assert!(parse_line("dns_interval 31536001").is_err());
}

/// Levels: naming the DNS server is admin's, the interval operate's, the queries read's.
#[test]
fn levels() {
    use crate::control::{parse_line, required_level, Level};
    let level = |line: &str| required_level(&parse_line(line).unwrap());
    assert_eq!(level("dns_server 127.0.0.1:53"), Level::Admin);
    assert_eq!(level("no dns_server"), Level::Admin);
    assert_eq!(level("dns_interval 5"), Level::Operate);
    assert_eq!(level("server 0 all 4"), Level::Operate);
    assert_eq!(level("server 0 address svc.test all 4"), Level::Admin);
    for q in ["dns", "dns_server", "dns_interval"] {
        assert_eq!(level(q), Level::Read, "{q}");
    }
}
