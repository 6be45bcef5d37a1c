//! The command line, parsed C-pen style (getopt: bundled short options, `-C8888` or `-C 8888`,
//! options and operands in any order until `--`) into a [`pen_core::Config`].
//!
//! Parsing is a pure function of the arguments (plus `PEN_WORKERS`, passed in) so every option,
//! refusal and error line is unit-tested without starting anything.

use std::fmt;
use std::path::PathBuf;

use pen_core::{AddrError, Config};

mod build;
mod getopt;
mod usage;
mod values;

#[cfg(test)]
pub(crate) use getopt::parse_args;
pub(crate) use getopt::parse_args_env;
pub(crate) use usage::USAGE;

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Cli {
    /// Print the usage text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Run the balancer.
    Run(Box<Run>),
}

/// A balancer to run, plus what only the binary handles.
#[derive(Debug)]
pub(crate) struct Run {
    /// Everything the library needs.
    pub(crate) config: Config,
    /// `-u USER`: drop to this user after binding.
    pub(crate) user: Option<String>,
    /// `-f`: stay in the foreground; otherwise detach (fork, new session, log to syslog).
    pub(crate) foreground: bool,
    /// `-j DIR`: chroot to this directory after binding, before dropping privileges.
    pub(crate) chroot: Option<PathBuf>,
}

/// A usage error: printed as one line, exit status 2.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CliError {
    /// An option pen does not know.
    UnknownOption(String),
    /// An option that needs an argument came last.
    MissingArgument {
        /// The option letter or name.
        opt: String,
        /// What the argument is.
        what: &'static str,
    },
    /// An option argument is malformed.
    BadValue {
        /// The option letter or name.
        opt: String,
        /// The bad text.
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A bad address or server spec; `context` names where it appeared (may be empty).
    Addr {
        /// E.g. `option -C`; empty for the operands, whose error already names the token.
        context: String,
        /// The address error.
        source: AddrError,
    },
    /// A C pen option we recognise but do not implement yet.

    /// No listen address operand: the caller prints [`USAGE`] (as C pen does).
    NoListen,
    /// A server without a port behind a Unix-socket listener (there is no port to default to).
    NoPort(String),
    /// A TLS option without `-E`.
    NeedsCert(char),
    /// A TLS option value that cannot be honoured.
    Tls {
        /// The option.
        opt: String,
        /// Why (the [`pen_core::TlsError`]'s message).
        reason: String,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownOption(o) => {
                write!(f, "unknown option '{o}': expected one listed by 'pen --help'")
            }
            CliError::MissingArgument { opt, what } => {
                write!(f, "option {opt}: expected an argument ({what})")
            }
            CliError::BadValue { opt, token, expected } => {
                write!(f, "option {opt}: '{token}': expected {expected}")
            }
            CliError::Addr { context, source } if context.is_empty() => write!(f, "{source}"),
            CliError::Addr { context, source } => write!(f, "{context}: {source}"),
            CliError::NoListen => {
                write!(f, "no listen address: expected [host:]port|/path server [server ...]")
            }
            CliError::NoPort(s) => write!(
                f,
                "'{s}': expected host:port (the listen address is a Unix socket, so no default port)"
            ),
            CliError::NeedsCert(c) => write!(
                f,
                "option -{c}: TLS options need the certificate: expected -E certfile"
            ),
            CliError::Tls { opt, reason } => write!(f, "option {opt}: {reason}"),
        }
    }
}

/// What C pen logs when it drops `-C` as root without `-u` (see [`drop_root_control`]).
pub(crate) const ROOT_CONTROL_WARNING: &str =
    "Won't open control port running as root; use -u to run as different user";

/// C pen's rule: as root, open a control socket only if `-u` names a user (even `root`).
/// Otherwise the control socket is dropped and pen keeps balancing without it; returns true
/// when it was dropped (the caller logs [`ROOT_CONTROL_WARNING`]).
pub(crate) fn drop_root_control(run: &mut Run, euid: u32) -> bool {
    if euid == 0 && run.config.control.is_some() && run.user.is_none() {
        run.config.control = None;
        return true;
    }
    false
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
