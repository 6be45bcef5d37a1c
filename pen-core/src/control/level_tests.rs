use proptest::prelude::*;

use super::*;
use crate::control::parse_line;

fn level(line: &str) -> Level {
    match parse_line(line) {
        Ok(cmd) => required_level(&cmd),
        Err(e) => panic!("{line}: {e}"),
    }
}

#[test]
fn levels_are_ordered() {
    assert!(Level::Read < Level::Operate && Level::Operate < Level::Admin);
    assert_eq!("operate".parse(), Ok(Level::Operate));
    assert_eq!(
        "root".parse::<Level>().map_err(|e| e.to_string()),
        Err("'root': expected read, operate or admin".to_string())
    );
    assert_eq!(Level::Admin.to_string(), "admin");
}

#[test]
fn queries_are_read() {
    for line in [
        "servers",
        "mode",
        "status",
        "metrics",
        "recent",
        "recent 60",
        "connection 3",
        "socket 2",
        "pid",
        "control",
        "listen",
        "timeout",
        "blacklist",
        "log",
        "web_stats",
        "conn_max",
        "metrics_acl",
        "ssl_ciphers",
        "debug",
        "tcp_fastclose",
    ] {
        assert_eq!(level(line), Level::Read, "{line}");
    }
}

#[test]
fn runtime_changes_are_operate() {
    for line in [
        "server 1 max 10 weight 2",
        "server 0 blacklist 30",
        "hash",
        "no roundrobin",
        "conn_max 100",
        "blacklist 20",
        "acl 1 permit 10.0.0.1",
        "no acl 1",
        "close 3",
        "timeout 5",
        "tracking 0",
        "http",
        "metrics_acl 2",
        "control_acl 1",
        "debug 1",
    ] {
        assert_eq!(level(line), Level::Operate, "{line}");
    }
}

#[test]
fn files_hosts_and_sockets_are_admin() {
    for line in [
        "write",
        "write /tmp/pen.cfg",
        "log /tmp/x",
        "log 127.0.0.1:514",
        "no log",
        "web_stats /tmp/s.html",
        "no web_stats",
        "include /etc/passwd",
        "listen 8080",
        "listen /tmp/pen.sock",
        "source 127.0.0.1",
        "server 0 address example.org port 80",
        "server 0 port 80 address 127.0.0.1",
        "ssl_ocsp_response /tmp/ocsp.der",
        "ssl_sni_path /tmp/sni",
        "ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256",
        "ssl_reload",
        "reload_reset",
        "exit",
    ] {
        assert_eq!(level(line), Level::Admin, "{line}");
    }
}

#[test]
fn refusal_names_both_levels() {
    assert_eq!(
        refusal("write", Level::Admin, Level::Operate),
        "Command 'write' needs level admin; this control socket is at level operate\n"
    );
}

/// Command names, each with argument shapes that make some of its lines parse.
const NAMES: &[&str] = &[
    "acl",
    "no",
    "ascii",
    "blacklist",
    "client_acl",
    "control_acl",
    "clients_max",
    "close",
    "connection",
    "conn_max",
    "control",
    "debug",
    "conn_per_client",
    "handshake_timeout",
    "metrics_acl",
    "request_timeout",
    "trusted_proxy_acl",
    "dsr_if",
    "epoll",
    "exit",
    "idle_timeout",
    "idlers",
    "include",
    "listen",
    "log",
    "mode",
    "pending_max",
    "pid",
    "reload_reset",
    "recent",
    "server",
    "servers",
    "socket",
    "source",
    "status",
    "metrics",
    "tarpit_acl",
    "tcp_fastclose",
    "timeout",
    "tracking",
    "web_stats",
    "write",
    "ssl_ciphers",
    "ssl_option",
    "ssl_sni_path",
    "ssl_ocsp_response",
    "ssl_client_renegotiation_interval",
    "ssl_reload",
    "hash",
    "roundrobin",
    "stubborn",
    "weight",
    "prio",
    "http",
    "dummy",
];

const WORDS: &[&str] = &[
    "0",
    "1",
    "3",
    "60",
    "-1",
    "address",
    "port",
    "max",
    "weight",
    "blacklist",
    "permit",
    "deny",
    "127.0.0.1",
    "::1",
    "/tmp/f",
    "host.example",
    "8080",
    "log",
    "acl",
    "both",
];

fn line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(NAMES),
        prop::collection::vec(prop::sample::select(WORDS), 0..5),
    )
        .prop_map(|(name, words)| {
            let mut l = name.to_string();
            for w in words {
                l.push(' ');
                l.push_str(w);
            }
            l
        })
}

proptest! {
    #[test]
    fn every_parsed_command_gets_a_level_and_names_need_admin(l in line()) {
        if let Ok(cmd) = parse_line(&l) {
            let needed = required_level(&cmd);
            if names_file_socket_or_host(&cmd) {
                prop_assert_eq!(needed, Level::Admin, "{}", l);
            }
            // The canonical line needs the same level (the decision depends on the command,
            // not on its spelling).
            if let Ok(again) = parse_line(&cmd.to_string()) {
                prop_assert_eq!(required_level(&again), needed);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(l in "\\PC{0,64}") {
        if let Ok(cmd) = parse_line(&l) {
            let _ = required_level(&cmd);
        }
    }
}
