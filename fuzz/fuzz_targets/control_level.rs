//! Fuzzes the control-level decision: an arbitrary line goes through `parse_line` and
//! `required_level`. Invariants, each checked against an oracle that does not use
//! `control::level`'s own tables:
//! - no panic;
//! - a command that names a file, a socket or a host (recognised from its canonical line:
//!   `include`, `write FILE`, `log X`, `web_stats X`, `listen X`, `source IP`, an `ssl_*`
//!   change with arguments, `server N ... address H`, `server N check agent P`,
//!   `dns_server ADDR`) needs `admin`;
//! - a pure query (it changes no configuration, as the configuration model decides, and is
//!   not an action such as `exit`, `write`, `close N`, `reload_reset`, `ssl_reload`,
//!   `shutdown`, `upgrade`) needs
//!   only `read`;
//! - a configuration change never passes at `read`.
//!
//! Issue 14's commands need nothing of their own here: `maglev`, `leastconn`, `p2c`,
//! `random` (and their `no` forms) and `maglev_table M` change the configuration, while
//! `maglev_table` and `lookup ADDR[:PORT]` are pure queries (`lookup` names an address to
//! look up, never one to connect to or bind).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pen_core::control::command::SslCommand;
use pen_core::control::{parse_line, required_level, Command, Level};
use pen_core::fuzzing::control_level::changes_configuration;

/// From the canonical line alone: does the command name a file, a socket or a host?
fn names_file_socket_or_host(line: &str) -> bool {
    let words: Vec<&str> = line.split(' ').collect();
    let with_arg = words.len() > 1;
    match words.first().copied().unwrap_or_default() {
        "include" | "source" => true,
        "write" | "log" | "web_stats" | "listen" => with_arg,
        // The DNS server asked for server names (issue 14).
        "dns_server" => with_arg,
        // `check agent PORT` names a port of the server's host (issue 13).
        "server" => words.contains(&"address") || words.windows(2).any(|w| w == ["check", "agent"]),
        "emergency_check" | "abuse_check" => words.get(1) == Some(&"agent"),
        w if w.starts_with("ssl_") => with_arg && w != "ssl_ciphers",
        _ => false,
    }
}

fn is_action(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Exit
            | Command::ReloadReset
            | Command::Write(_)
            | Command::Close(_)
            | Command::Ssl(SslCommand::Reload, _)
            // Stopping or replacing the process (issue 13).
            | Command::Shutdown(_)
            | Command::Upgrade
            // Accepted and without effect: C pen's event mechanisms and obsolete `no X`.
            | Command::EventMechanism(_)
            | Command::NoObsolete(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cmd) = parse_line(line) else {
        return;
    };
    let level = required_level(&cmd);
    let canonical = cmd.to_string();
    if names_file_socket_or_host(&canonical) {
        assert_eq!(
            level,
            Level::Admin,
            "{line:?} ({canonical:?}) names a file, socket or host"
        );
    }
    // `ssl_ciphers` without a list is a query that the model answers.
    let ssl_query = matches!(&cmd, Command::Ssl(SslCommand::Ciphers, a) if a.is_empty());
    if changes_configuration(&cmd) && !ssl_query {
        assert!(
            level > Level::Read,
            "{line:?} ({canonical:?}) changes the configuration"
        );
    } else if !is_action(&cmd) {
        assert_eq!(
            level,
            Level::Read,
            "{line:?} ({canonical:?}) is a pure query"
        );
    }
});
