//! Config files (`-F`, `include`): penctl commands one per line, `#` comment lines. A file is
//! applied to a [`Model`] line by line and committed only if every line succeeded, so a file is
//! applied as a whole or not at all.
//!
//! Errors name `FILE:LINE` and what was expected there, never the line's text, for a file
//! named over the control socket: an `include` may name any file pen can read (`/etc/shadow`),
//! and its content must not come back in the reply. The `-F` file (the operator's own, named on
//! the command line) and what it includes keep the offending token in their errors. Nesting is bounded in depth and a transaction in files and bytes, so a file that
//! includes itself or another many times cannot make pen read without end.
//!
//! The files and host names a change needs are fetched by [`prefetch`] before the runtime
//! takes its configuration lock (reading and resolving may be slow); the transaction then finds
//! them in the host's [`Fetched`] and does no slow I/O of its own.

use super::command::{Command, ServerField, SslCommand};
use super::host::{Fetched, Host};
use super::model::{Model, Pending};
use crate::error::{AddrError, ApplyError, ParseError};

/// Deepest `include` nesting (a file including itself must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files one change may read (includes counted each time), however they nest.
pub(crate) const MAX_INCLUDE_FILES: usize = 64;
/// Most bytes of config files one change may read (each file is also capped at
/// [`crate::files::MAX_CONFIG_BYTES`]).
pub(crate) const MAX_INCLUDE_BYTES: usize = 4 << 20;

/// What one change has read so far, against [`MAX_INCLUDE_FILES`] and [`MAX_INCLUDE_BYTES`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Budget {
    files: usize,
    bytes: usize,
}

impl Budget {
    /// Counts one more file of `bytes`; an error once the change has read too much.
    fn take(&mut self, file: &str, bytes: usize) -> Result<(), ApplyError> {
        self.files = self.files.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.files > MAX_INCLUDE_FILES || self.bytes > MAX_INCLUDE_BYTES {
            return Err(ApplyError::Invalid {
                token: file.to_string(),
                reason: format!(
                    "one change may read at most {MAX_INCLUDE_FILES} config files and \
                     {MAX_INCLUDE_BYTES} bytes in all (includes counted each time)"
                ),
            });
        }
        Ok(())
    }
}

fn too_deep(file: &str) -> ApplyError {
    ApplyError::Invalid {
        token: file.to_string(),
        reason: format!("includes nested more than {MAX_INCLUDE_DEPTH} deep"),
    }
}

/// The command lines of a config file: (line number from 1, trimmed text), blank and `#`
/// lines left out.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, raw)| (i.saturating_add(1), raw.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Applies the commands of `file` to `model` (the `include` command, and whole config files).
pub(crate) fn include<H: Host>(
    host: &H,
    model: &mut Model,
    pending: &mut Pending<H>,
    file: &str,
    depth: usize,
) -> Result<String, ApplyError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(too_deep(file));
    }
    let text = host.read_config(file)?;
    pending.read.take(file, text.len())?;
    let mut out = String::new();
    let quote = pending.quote_lines;
    for (n, line) in lines(&text) {
        let at = |e: ApplyError| {
            if quote {
                ApplyError::At {
                    file: file.to_string(),
                    line: n,
                    source: Box::new(e),
                }
            } else {
                at(file, n, &e)
            }
        };
        let cmd = super::parse_line(line).map_err(|e| at(e.into()))?;
        match cmd {
            // Actions make no sense while loading a configuration.
            Command::Close(_)
            | Command::Exit
            | Command::ReloadReset
            | Command::Write(_)
            | Command::Ssl(SslCommand::Reload, _)
            | Command::Shutdown(_)
            | Command::Upgrade => {
                return Err(at(ApplyError::Line(
                    "an action (close, exit, reload_reset, write, ssl_reload) cannot be used \
                     in a config file"
                        .to_string(),
                )))
            }
            c if Model::is_config(&c) => {
                let reply = model.apply(host, c, pending, depth + 1).map_err(at)?;
                out.push_str(&reply);
            }
            _ => {} // queries (`servers`, `mode`, ...) have nothing to do here
        }
    }
    Ok(out)
}

/// The error of line `line` of `file`: `FILE:LINE:` and what was expected, told without the
/// line's text. An error of a nested include already is such an error and is kept.
fn at(file: &str, line: usize, e: &ApplyError) -> ApplyError {
    let what = match e {
        ApplyError::At { .. } => return rewrap(file, line, e),
        e => describe(e),
    };
    ApplyError::At {
        file: file.to_string(),
        line,
        source: Box::new(ApplyError::Line(what)),
    }
}

/// A nested include's error (already without text), under the including line.
fn rewrap(file: &str, line: usize, e: &ApplyError) -> ApplyError {
    ApplyError::At {
        file: file.to_string(),
        line,
        source: Box::new(ApplyError::Line(format!("in the included file: {e}"))),
    }
}

/// What is wrong, in words that hold none of the line's text.
fn describe(e: &ApplyError) -> String {
    match e {
        ApplyError::Parse(p) => match p {
            ParseError::Empty => "empty command".to_string(),
            ParseError::UnknownCommand(_) => {
                "unknown command (expected a penctl command, one per line)".to_string()
            }
            // The command name is one pen knows, not the file's own text.
            ParseError::MissingArgument { command, expected } => {
                format!("'{command}' needs {expected}")
            }
            ParseError::BadArgument { expected, .. } => {
                format!("bad argument: expected {expected}")
            }
            ParseError::OutOfRange { expected, .. } => {
                format!("argument out of range: expected {expected}")
            }
            ParseError::CountryAcl(_) => "GeoIP country ACL entries are not supported".to_string(),
            ParseError::TrailingArgument(_) => "unexpected words after the command".to_string(),
            ParseError::NotSupported(_) => "a command that is not supported".to_string(),
        },
        ApplyError::Addr(a) => match a {
            AddrError::Invalid { expected, .. } | AddrError::Field { expected, .. } => {
                format!("bad address: expected {expected}")
            }
            AddrError::Resolve { .. } => "a host name that does not resolve".to_string(),
        },
        ApplyError::Invalid { reason, .. } => format!("bad value: {reason}"),
        ApplyError::NotSupported(_) => "a command that cannot be used here".to_string(),
        ApplyError::Line(what) => what.clone(),
        ApplyError::Tls(_) => "a TLS setting that cannot be used".to_string(),
        ApplyError::Io { source, .. } => format!("cannot be carried out: {source}"),
        ApplyError::At { .. } => "an error in an included file".to_string(),
    }
}

/// Reads the files and resolves the names that `cmd` needs, without any lock: the files it
/// includes (recursively, within the same bounds as [`include`]) and the addresses of its
/// `server N address NAME` fields. Results, errors included, go to `fetched`, where the
/// transaction finds them. A line that does not parse ends the walk (the transaction stops
/// there too).
///
/// Names are looked up with the DNS server in effect where they appear: `dns` (the running
/// one) until a `dns_server` line of the walk changes it (issue 14).
pub(crate) fn prefetch<H: Host>(
    host: &H,
    cmd: &Command,
    fetched: &mut Fetched,
    mut dns: Option<std::net::SocketAddr>,
) {
    let mut budget = Budget::default();
    prefetch_in(host, cmd, fetched, &mut budget, 0, &mut dns);
}

fn prefetch_in<H: Host>(
    host: &H,
    cmd: &Command,
    fetched: &mut Fetched,
    budget: &mut Budget,
    depth: usize,
    dns: &mut Option<std::net::SocketAddr>,
) {
    match cmd {
        Command::Include(file) => {
            if depth >= MAX_INCLUDE_DEPTH || fetched.has_file(file) {
                return;
            }
            let text = host.read_config(file);
            let Ok(body) = &text else {
                fetched.put_file(file, text);
                return;
            };
            let body = body.clone();
            fetched.put_file(file, text);
            if budget.take(file, body.len()).is_err() {
                return;
            }
            for (_, line) in lines(&body) {
                let Ok(c) = super::parse_line(line) else {
                    return;
                };
                prefetch_in(host, &c, fetched, budget, depth + 1, dns);
            }
        }
        Command::Server { fields, .. } => {
            for f in fields {
                if let ServerField::Address(h) = f {
                    let bare = h.trim_start_matches('[').trim_end_matches(']');
                    if let Ok(name) = crate::domain::addr::split_host(bare) {
                        if !fetched.has_name(&name) {
                            let r = host.resolve(&name, *dns);
                            fetched.put_name(&name, r);
                        }
                    }
                }
            }
        }
        Command::DnsServer(Some(a)) => *dns = Some(*a),
        Command::NoDnsServer => *dns = None,
        _ => {}
    }
}
