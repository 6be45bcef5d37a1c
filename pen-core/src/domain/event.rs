//! Events: what happened in a running balancer, as data. An embedding program receives them
//! from [`Balancer::subscribe`](crate::Balancer::subscribe) (or
//! [`Config::subscribe`](crate::Config::subscribe), which also sees the start-up commands and
//! config file); the `pen` binary logs them while `debug` is on.
//!
//! ```
//! use pen_core::event::{BlacklistReason, Event};
//! use pen_core::server::{ServerId, Target};
//!
//! let e = Event::ServerBlacklisted {
//!     server: Target::Server(ServerId(0)),
//!     seconds: 30,
//!     reason: BlacklistReason::ConnectFailed("connection refused".into()),
//! };
//! assert_eq!(e.to_string(), "server 0 blacklisted for 30 s: connect failed (connection refused)");
//! ```

use std::fmt;

use crate::domain::server::Target;

/// Something that happened in a running balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A server was blacklisted: no new client goes to it for `seconds` (0: the blacklist time
    /// is 0, so it is not kept out at all).
    ServerBlacklisted {
        /// The server (a regular one, or the emergency or abuse server).
        server: Target,
        /// For how long.
        seconds: u64,
        /// Why.
        reason: BlacklistReason,
    },
    /// A blacklisted server may take new clients again.
    ServerRestored {
        /// The server.
        server: Target,
        /// Why.
        reason: RestoreReason,
    },
    /// A connection whose server failed moves on to another one.
    Failover {
        /// The server that failed.
        from: Target,
        /// The server tried next.
        to: Target,
    },
    /// A configuration change was applied (in full).
    ConfigApplied {
        /// Where it came from.
        source: ConfigSource,
        /// The command (as penctl would send it) or the config file's name.
        what: String,
    },
    /// A configuration change was refused: nothing changed.
    ConfigRefused {
        /// Where it came from.
        source: ConfigSource,
        /// The command line (as given, or as penctl would send it) or the config file's name.
        what: String,
        /// The error, as the control socket would report it.
        error: String,
    },
    /// The operator changed a server's state (`server N drain|maint|ready`) \[ours\].
    ServerState {
        /// The server.
        server: Target,
        /// Its new state.
        state: crate::domain::server_health::AdminState,
    },
    /// A thread of the balancer hit an error (it goes on if it can; see the error).
    WorkerError {
        /// Which thread.
        worker: Worker,
        /// What went wrong.
        error: String,
    },
    /// A server's active check changed its verdict (after `check_rise` or `check_fall`
    /// results in a row; the first result decides at once).
    ServerCheck {
        /// The server.
        server: Target,
        /// Whether it is now up.
        up: bool,
        /// The last result (`ok`, `timeout`, `refused`, `bad answer`, ...).
        last: String,
    },
}

/// Why a server was blacklisted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlacklistReason {
    /// A connect to it was refused, failed or timed out (the reason as the OS or the timer
    /// gave it).
    ConnectFailed(String),
    /// The `server N blacklist T` command.
    Command,
    /// Passive detection (`outlier_failures`): connects failed that many times in a row (the
    /// last reason); the server is ejected for the time given, with back-off.
    Ejected(String),
}

/// Why a blacklisted server was restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreReason {
    /// The `server N blacklist 0` command.
    Command,
    /// Its blacklisting ran out. Noticed by a once-a-second check that runs while anyone is
    /// subscribed, so reported up to a second late (and not at all for a blacklisting that a
    /// new one replaced in the meantime).
    Expired,
}

/// Where a configuration change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigSource {
    /// A penctl command on the control socket (`-C`).
    ControlSocket,
    /// A start-up command (`-O`).
    CommandLine,
    /// The config file at start (`-F`).
    ConfigFile,
    /// The config file re-read ([`Balancer::reload`](crate::Balancer::reload), SIGHUP).
    Reload,
    /// The embedding program ([`Balancer::apply`](crate::Balancer::apply),
    /// [`Balancer::execute`](crate::Balancer::execute)).
    Api,
    /// The resolver: a server name's answer changed (issue 14).
    Resolver,
}

/// A thread of the balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Worker {
    /// Relay worker `N` (TCP or UDP), numbered from 0.
    Relay(usize),
    /// The control socket's thread.
    ControlSocket,
    /// The metrics listener's thread.
    Metrics,
}

/// `server 3`, `the emergency server`, `the abuse server`.
struct Name(Target);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Target::Server(id) => write!(f, "server {id}"),
            Target::Emergency => f.write_str("the emergency server"),
            Target::Abuse => f.write_str("the abuse server"),
        }
    }
}

impl fmt::Display for Event {
    /// One line, without a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ServerBlacklisted {
                server,
                seconds,
                reason,
            } => write!(f, "{} blacklisted for {seconds} s: {reason}", Name(*server)),
            Event::ServerRestored { server, reason } => {
                write!(f, "{} restored: {reason}", Name(*server))
            }
            Event::Failover { from, to } => {
                write!(f, "failover from {} to {}", Name(*from), Name(*to))
            }
            Event::ConfigApplied { source, what } => {
                write!(f, "config applied ({source}): {what}")
            }
            Event::ConfigRefused {
                source,
                what,
                error,
            } => write!(f, "config refused ({source}): {what}: {error}"),
            Event::WorkerError { worker, error } => write!(f, "{worker}: {error}"),
            Event::ServerState { server, state } => {
                write!(f, "{} state {}", Name(*server), state.word())
            }
            Event::ServerCheck { server, up, last } => {
                let state = if *up { "up" } else { "down" };
                write!(f, "{} is {state} by its check: {last}", Name(*server))
            }
        }
    }
}

impl fmt::Display for BlacklistReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlacklistReason::ConnectFailed(why) => write!(f, "connect failed ({why})"),
            BlacklistReason::Command => f.write_str("by command"),
            BlacklistReason::Ejected(why) => write!(f, "ejected by passive detection ({why})"),
        }
    }
}

impl fmt::Display for RestoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoreReason::Command => "by command",
            RestoreReason::Expired => "blacklisting expired",
        })
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigSource::ControlSocket => "control socket",
            ConfigSource::CommandLine => "-O",
            ConfigSource::ConfigFile => "-F",
            ConfigSource::Reload => "reload",
            ConfigSource::Api => "api",
            ConfigSource::Resolver => "resolver",
        })
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Worker::Relay(n) => write!(f, "worker {n}"),
            Worker::ControlSocket => f.write_str("control socket"),
            Worker::Metrics => f.write_str("metrics listener"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::server::ServerId;

    #[test]
    fn each_event_is_one_line() {
        let s0 = Target::Server(ServerId(0));
        let lines = [
            (
                Event::ServerBlacklisted {
                    server: s0,
                    seconds: 5,
                    reason: BlacklistReason::Command,
                },
                "server 0 blacklisted for 5 s: by command",
            ),
            (
                Event::ServerRestored {
                    server: s0,
                    reason: RestoreReason::Expired,
                },
                "server 0 restored: blacklisting expired",
            ),
            (
                Event::Failover {
                    from: s0,
                    to: Target::Emergency,
                },
                "failover from server 0 to the emergency server",
            ),
            (
                Event::ConfigApplied {
                    source: ConfigSource::ControlSocket,
                    what: "weight".into(),
                },
                "config applied (control socket): weight",
            ),
            (
                Event::ConfigRefused {
                    source: ConfigSource::Reload,
                    what: "pen.cfg".into(),
                    error: "pen.cfg:3: 'x': bad".into(),
                },
                "config refused (reload): pen.cfg: pen.cfg:3: 'x': bad",
            ),
            (
                Event::WorkerError {
                    worker: Worker::Relay(1),
                    error: "poll failed".into(),
                },
                "worker 1: poll failed",
            ),
        ];
        for (e, line) in lines {
            assert_eq!(e.to_string(), line);
        }
    }
}
