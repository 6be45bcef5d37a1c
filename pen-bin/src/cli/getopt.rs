//! Reading the arguments getopt-style: bundled short options, `-C8888` or `-C 8888`, the long
//! options, and operands anywhere until `--`; the options are collected in [`Opts`] for
//! [`build`] to turn into a run.

use pen_core::control::limits;

use super::build::build;
use super::{Cli, CliError};

/// What a short option does, and whether it takes an argument.
#[derive(Clone, Copy)]
enum Kind {
    /// A flag we act on.
    Flag,
    /// An option with an argument we act on; the text names the argument for errors.
    Value(&'static str),
    /// Accepted for compatibility and ignored (`true` if it takes an argument).
    Ignored(bool),
}

fn kind(c: char) -> Option<Kind> {
    use Kind::*;
    Some(match c {
        'f' | 'h' | 'r' | 's' | 'W' | 'X' | 'a' | 'd' | 'V' | '?' | 'U' | 'H' | 'N' => Flag,
        'b' => Value("blacklist seconds"),
        'c' => Value("client table slots"),
        'C' => Value("control address"),
        'e' => Value("emergency server"),
        'B' => Value("abuse server"),
        'F' => Value("config file"),
        'j' => Value("chroot directory"),
        'l' => Value("log file or host:port"),
        'w' => Value("status file"),
        'm' => Value("connections per accept"),
        'O' | 'o' => Value("penctl command"),
        'p' => Value("pid file"),
        'q' => Value("listen backlog"),
        't' => Value("connect timeout seconds"),
        'T' => Value("tracking seconds"),
        'u' => Value("user name"),
        'x' => Value("max connections"),
        'P' | 'Q' | 'D' | 'n' => Ignored(false),
        'S' => Ignored(true),
        'E' => Value("certificate file (PEM)"),
        'K' => Value("private key file (PEM)"),
        'G' => Value("CA certificate file (PEM)"),
        'A' => Value("CA certificate directory"),
        'L' => Value("TLS protocol"),
        'R' => Flag,
        // C pen's "SSL compatibility mode" (OpenSSL bug workarounds): nothing to do in rustls.
        'Z' => Ignored(false),
        _ => return None,
    })
}

/// Settings collected from the options before the operands are known.
#[derive(Default)]
pub(super) struct Opts {
    pub(super) flags: Vec<char>,
    pub(super) debug: u32,
    pub(super) values: Vec<(char, String)>,
    pub(super) workers: Option<String>,
    pub(super) splice: Option<String>,
    pub(super) engine: Option<String>,
    pub(super) metrics: Option<String>,
    pub(super) control_level: Option<String>,
    pub(super) control_group: Option<String>,
    pub(super) operands: Vec<String>,
}

/// Parses the arguments after the program name, with no `PEN_WORKERS` in the environment.
///
/// # Errors
/// [`CliError`] for the first problem found.
#[cfg(test)]
pub(crate) fn parse_args(args: &[String]) -> Result<Cli, CliError> {
    parse_args_env(args, None)
}

/// Parses the arguments after the program name; `env_workers` is `PEN_WORKERS` if set.
///
/// # Errors
/// [`CliError`] for the first problem found.
pub(crate) fn parse_args_env(args: &[String], env_workers: Option<&str>) -> Result<Cli, CliError> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.operands.extend(it.by_ref().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "help" => return Ok(Cli::Help),
                "version" => return Ok(Cli::Version),
                "workers" => {
                    let v = inline.or_else(|| it.next().cloned()).ok_or_else(|| {
                        CliError::MissingArgument {
                            opt: arg.clone(),
                            what: "worker threads",
                        }
                    })?;
                    o.workers = Some(v);
                }
                "splice" => {
                    let v = inline.or_else(|| it.next().cloned()).ok_or_else(|| {
                        CliError::MissingArgument {
                            opt: arg.clone(),
                            what: "auto, always or never",
                        }
                    })?;
                    o.splice = Some(v);
                }
                "engine" => {
                    let v = inline.or_else(|| it.next().cloned()).ok_or_else(|| {
                        CliError::MissingArgument {
                            opt: arg.clone(),
                            what: "epoll or uring",
                        }
                    })?;
                    o.engine = Some(v);
                }
                "metrics" | "control-level" | "control-group" => {
                    let what = match name {
                        "metrics" => "metrics listen address",
                        "control-level" => "read, operate or admin",
                        _ => "group name or number",
                    };
                    let v = inline.or_else(|| it.next().cloned()).ok_or_else(|| {
                        CliError::MissingArgument {
                            opt: arg.clone(),
                            what,
                        }
                    })?;
                    match name {
                        "metrics" => o.metrics = Some(v),
                        "control-level" => o.control_level = Some(v),
                        _ => o.control_group = Some(v),
                    }
                }
                _ => return Err(CliError::UnknownOption(format!("--{name}"))),
            }
            continue;
        }
        let Some(bundle) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // GNU getopt (which C pen uses) permutes: operands may come between options.
            o.operands.push(arg.clone());
            continue;
        };
        for (i, c) in bundle.char_indices() {
            let Some(k) = kind(c) else {
                return Err(CliError::UnknownOption(format!("-{c}")));
            };
            let takes_arg = matches!(k, Kind::Value(_) | Kind::Ignored(true));
            let value = if takes_arg {
                // `i` is where `c` starts, so this is a character boundary.
                let rest = bundle.get(i + c.len_utf8()..).unwrap_or_default();
                let what = match k {
                    Kind::Value(w) => w,
                    _ => "ignored value",
                };
                let v = if rest.is_empty() {
                    it.next().cloned()
                } else {
                    Some(rest.to_string())
                };
                Some(v.ok_or(CliError::MissingArgument {
                    opt: format!("-{c}"),
                    what,
                })?)
            } else {
                None
            };
            match (k, value) {
                (Kind::Ignored(_), _) => {}
                (Kind::Flag, _) if c == '?' => return Ok(Cli::Help),
                (Kind::Flag, _) if c == 'V' => return Ok(Cli::Version),
                (Kind::Flag, _) if c == 'd' => {
                    o.debug = o.debug.saturating_add(1).min(limits::DEBUG_MAX)
                }
                (Kind::Flag, _) => o.flags.push(c),
                (Kind::Value(_), Some(v)) => o.values.push((c, v)),
                (Kind::Value(_), None) => {}
            }
            if takes_arg {
                break; // the rest of the bundle was the argument
            }
        }
    }
    build(o, env_workers)
}
