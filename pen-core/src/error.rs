//! Error types, one enum per layer. Only the binaries turn them into messages and exit codes.

use std::io;

/// A bad listen address, server spec, host or port.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// The token is not of the expected form.
    #[error("'{token}': expected {expected}")]
    Invalid {
        /// The offending text.
        token: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// One field of a longer spec is not of the expected form.
    #[error("'{token}' in '{spec}': expected {expected}")]
    Field {
        /// The offending field.
        token: String,
        /// The whole spec it appeared in.
        spec: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A host name that does not resolve.
    #[error("'{host}': cannot resolve host name ({reason})")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
}

/// A control command line that does not parse (PEN-SPEC 4).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// An empty line.
    #[error("empty command")]
    Empty,
    /// The first word is not a command.
    #[error("unknown command '{0}'")]
    UnknownCommand(String),
    /// A required argument is missing.
    #[error("'{command}' needs {expected}")]
    MissingArgument {
        /// The command.
        command: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An argument is malformed.
    #[error("'{token}': expected {expected}")]
    BadArgument {
        /// The offending token.
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A number too large for its field.
    #[error("'{token}': out of range, expected {expected}")]
    OutOfRange {
        /// The offending token.
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `acl N permit|deny country CC`: GeoIP entries are not supported.
    #[error("'country {0}': GeoIP country ACL entries are not supported")]
    CountryAcl(String),
    /// Extra words after a complete command.
    #[error("unexpected '{0}' after the command")]
    TrailingArgument(String),
    /// A recognised command this build does not support (yet).
    #[error("'{0}' is not supported yet")]
    NotSupported(String),
}

/// Why a command could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The line did not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An address in the command is bad.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// A value is out of the allowed range.
    #[error("'{token}': {reason}")]
    Invalid {
        /// The offending token.
        token: String,
        /// Why.
        reason: String,
    },
    /// The command is recognised but not enabled or not supported.
    #[error("'{0}' is not supported yet")]
    NotSupported(String),
    /// An error in a config file line.
    #[error("{file}:{line}: {source}")]
    At {
        /// The file.
        file: String,
        /// The line number (from 1).
        line: usize,
        /// What was wrong with the line.
        source: Box<ApplyError>,
    },
    /// What was wrong with a config file's line, told without the line's text: the file may
    /// be one pen was pointed at (`include /etc/shadow`) by someone who may not read it.
    #[error("{0}")]
    Line(String),
    /// A TLS setting, certificate or key that cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// An I/O error while carrying it out (e.g. binding a new listener, reading an include).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A balancer that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or configuring a socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A start-up command (`-O`) failed.
    #[error("command '{command}': {source}")]
    Command {
        /// The command line.
        command: String,
        /// Why it failed.
        #[source]
        source: ApplyError,
    },
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
    /// The `-F` config file could not be applied: usually an [`ApplyError::At`] naming the file
    /// and line (`FILE:LINE: reason`), or the file could not be read.
    #[error("{0}")]
    ConfigFile(#[source] ApplyError),
    /// A TLS option, certificate or key that cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}
