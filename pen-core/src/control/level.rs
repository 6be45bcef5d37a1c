//! Access levels of a control endpoint, as HAProxy's stats socket has them: which commands an
//! endpoint at a given [`Level`] may run. The decision is pure: [`required_level`] looks at the
//! parsed [`Command`] only.
//!
//! - [`Level::Read`]: queries that only show a value (`servers`, `mode`, `status`, `metrics`,
//!   `recent`, `connection N`, `control`, `listen`, `timeout`, ... any setting without argument).
//! - [`Level::Operate`]: runtime changes that name no file, socket or host (server limits,
//!   weights and blacklisting, modes, limits, timeouts, ACLs, `close N`).
//! - [`Level::Admin`]: everything, including what names a file, a socket or a host (`write`,
//!   `log`, `no log`, `web_stats`, `no web_stats`, `include`, the `ssl_*` changes,
//!   `ssl_reload`, `listen ADDR`, `source IP`, `server N address HOST`), `reload_reset` and
//!   `exit`.

use std::fmt;
use std::str::FromStr;

use super::command::{Command, ServerField, SslCommand};

/// What a control endpoint may do; ordered: `Read < Operate < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Queries only.
    Read,
    /// Queries and runtime changes that name no file, socket or host.
    Operate,
    /// Everything.
    Admin,
}

impl Level {
    /// The level's name as the command line and the replies spell it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Operate => "operate",
            Level::Admin => "admin",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A word that is not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}': expected read, operate or admin")]
pub struct BadLevel(pub String);

impl FromStr for Level {
    type Err = BadLevel;

    fn from_str(s: &str) -> Result<Level, BadLevel> {
        match s {
            "read" => Ok(Level::Read),
            "operate" => Ok(Level::Operate),
            "admin" => Ok(Level::Admin),
            _ => Err(BadLevel(s.to_string())),
        }
    }
}

/// The level an endpoint needs to run `cmd`.
pub fn required_level(cmd: &Command) -> Level {
    use Command as C;
    use Level::{Admin, Operate, Read};
    match cmd {
        // Queries with nothing to change.
        C::ShowMode
        | C::Pid
        | C::Recent(_)
        | C::Servers
        | C::Socket(_)
        | C::Connection(_)
        | C::Status
        | C::Metrics
        | C::Control => Read,
        // Names a file, a socket or a host, or replaces the whole configuration or the process.
        C::Include(_)
        | C::Write(_)
        | C::Log(Some(_))
        | C::NoLog
        | C::WebStats(Some(_))
        | C::NoWebStats
        | C::Listen(Some(_))
        | C::Source(_)
        | C::ReloadReset
        | C::Exit => Admin,
        // `ssl_ciphers` alone shows the list; every other `ssl_*` names files or changes TLS.
        C::Ssl(SslCommand::Ciphers, args) if args.is_empty() => Read,
        C::Ssl(_, _) => Admin,
        C::Server { fields, .. } => {
            if fields.iter().any(names_socket) {
                Admin
            } else {
                Operate
            }
        }
        // A setting without its argument only shows the value.
        C::Blacklist(None)
        | C::ClientAcl(None)
        | C::ControlAcl(None)
        | C::ClientsMax(None)
        | C::ConnMax(None)
        | C::Debug(None)
        | C::ConnPerClient(None)
        | C::HandshakeTimeout(None)
        | C::MetricsAcl(None)
        | C::RequestTimeout(None)
        | C::TrustedProxyAcl(None)
        | C::DsrIf(None)
        | C::IdleTimeout(None)
        | C::Idlers(None)
        | C::Listen(None)
        | C::Log(None)
        | C::PendingMax(None)
        | C::TarpitAcl(None)
        | C::TcpFastclose(None)
        | C::Timeout(None)
        | C::Tracking(None)
        | C::WebStats(None) => Read,
        // Runtime changes naming no file, socket or host.
        C::Acl { .. }
        | C::NoAcl(_)
        | C::Switch(_, _)
        | C::Mode(_, _)
        | C::Blacklist(Some(_))
        | C::ClientAcl(Some(_))
        | C::ControlAcl(Some(_))
        | C::ClientsMax(Some(_))
        | C::Close(_)
        | C::ConnMax(Some(_))
        | C::Debug(Some(_))
        | C::ConnPerClient(Some(_))
        | C::HandshakeTimeout(Some(_))
        | C::MetricsAcl(Some(_))
        | C::RequestTimeout(Some(_))
        | C::TrustedProxyAcl(Some(_))
        | C::DsrIf(Some(_))
        | C::EventMechanism(_)
        | C::IdleTimeout(Some(_))
        | C::Idlers(Some(_))
        | C::NoObsolete(_)
        | C::PendingMax(Some(_))
        | C::TarpitAcl(Some(_))
        | C::TcpFastclose(Some(_))
        | C::Timeout(Some(_))
        | C::Tracking(Some(_)) => Operate,
        // ---- server states (issue 13) ----
        C::SlowStart(None)
        | C::PanicThreshold(None)
        | C::OutlierFailures(None)
        | C::OutlierEjectionTime(None)
        | C::OutlierMaxPercent(None) => Read,
        C::SlowStart(Some(_))
        | C::PanicThreshold(Some(_))
        | C::OutlierFailures(Some(_))
        | C::OutlierEjectionTime(Some(_))
        | C::OutlierMaxPercent(Some(_)) => Operate,
        C::CheckInterval(None)
        | C::CheckTimeout(None)
        | C::CheckRise(None)
        | C::CheckFall(None) => Read,
        C::CheckInterval(Some(_))
        | C::CheckTimeout(Some(_))
        | C::CheckRise(Some(_))
        | C::CheckFall(Some(_)) => Operate,
        // Issue 13: stopping or replacing the process is admin's; the timeout is a setting.
        C::Shutdown(_) | C::Upgrade => Admin,
        C::ShutdownTimeout(None) => Read,
        C::ShutdownTimeout(Some(_)) => Operate,
        // ---- checks on the emergency and abuse servers (issue 13): as `server N check` ----
        C::EmergencyCheck(None) | C::AbuseCheck(None) => Read,
        C::EmergencyCheck(Some(c)) | C::AbuseCheck(Some(c)) => {
            if names_socket(&ServerField::Check(c.clone())) {
                Admin
            } else {
                Operate
            }
        }
        // ---- PROXY protocol (issue 14) ----
        C::AcceptProxy(None) => Read,
        C::AcceptProxy(Some(_)) | C::NoAcceptProxy => Operate,
        // ---- DNS-driven servers (issue 14) ----
        C::DnsInterval(None) | C::DnsServer(None) | C::Dns => Read,
        C::DnsInterval(Some(_)) => Operate,
        // Names a socket, or changes which server is asked.
        C::DnsServer(Some(_)) | C::NoDnsServer => Admin,
        // ---- policies (issue 14) ----
        C::MaglevTable(None) | C::Lookup(_, _) => Read,
        C::MaglevTable(Some(_)) => Operate,
    }
}

/// A server field that names a host or a socket: `address`, and `check agent PORT` (a port of
/// the server's host other than the one pen relays to).
fn names_socket(f: &ServerField) -> bool {
    matches!(
        f,
        ServerField::Address(_)
            | ServerField::Check(Some(crate::domain::check::ServerCheck {
                spec: crate::domain::check::CheckSpec::Agent { .. },
                ..
            }))
    )
}

/// Whether `cmd` names a file, a socket or a host (what an [`Level::Admin`] endpoint alone
/// may run). The fuzz target and the tests check [`required_level`] against it.
pub fn names_file_socket_or_host(cmd: &Command) -> bool {
    match cmd {
        Command::Include(_)
        | Command::Write(Some(_))
        | Command::Log(Some(_))
        | Command::WebStats(Some(_))
        | Command::Listen(Some(_))
        | Command::Source(_) => true,
        Command::Ssl(which, args) => *which != SslCommand::Ciphers && !args.is_empty(),
        Command::Server { fields, .. } => fields.iter().any(names_socket),
        Command::DnsServer(Some(_)) => true,
        _ => false,
    }
}

/// The reply to a command refused for its level (one line, as every pen error reply).
pub fn refusal(cmd_name: &str, needed: Level, endpoint: Level) -> String {
    format!(
        "Command '{cmd_name}' needs level {needed}; this control socket is at level {endpoint}\n"
    )
}

#[cfg(test)]
#[path = "level_tests.rs"]
mod tests;
