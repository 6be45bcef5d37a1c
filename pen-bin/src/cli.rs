//! The command line, parsed C-pen style (getopt: bundled short options, `-C8888` or `-C 8888`,
//! options and operands in any order until `--`) into a [`pen_core::Config`].
//!
//! Parsing is a pure function of the arguments (plus `PEN_WORKERS`, passed in) so every option,
//! refusal and error line is unit-tested without starting anything.

use std::fmt;
use std::path::PathBuf;

use pen_core::addr::{self, ListenAddr};
use pen_core::control::limits::{self, EXPECTED_CLIENTS, EXPECTED_WORKERS};
use pen_core::{AddrError, Config};

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

/// The usage text: printed on stdout for `--help` (exit 0), and on stderr when there is no
/// listen address (no arguments at all, or only options; exit 2). It lists C pen's options with
/// C pen's argument forms, then ours.
pub(crate) const USAGE: &str = "\
usage: pen [-C [host:]port|path] [-X] [-b sec] [-c N] [-e host[:port]] [-t sec]
           [-x N] [-w file] [-UHPWadfhrs] [-O option] [-o option] [-E certfile]
           [-K keyfile] [-G cacertfile] [-A cacertdir] [-Z] [-R] [-L protocol]
           [other options below] [host:]port|/path/to/socket
           [h1[:p1[:maxc1[:hard1[:weight1[:prio1]]]]] [h2[:p2[:maxc2...]]] ...]

  listen address: port (all IPv4 addresses), host:port, [v6addr]:port,
                  :::port (all IPv6 addresses), ::1:port, or a Unix socket path
  server:         host[:port[:max[:hard[:weight[:prio]]]]] or [v6addr]:port:...
                  missing port = the listen port; ports may be service names (smtp)
  The servers may be left out: -F, -O or penctl add them later
  ('server N address HOST port PORT').

options:
  -B host:port  abuse server: where clients denied by the client ACL go
  -C [host:]port|path
                control socket for penctl (a bare port: 127.0.0.1 only); as
                root it also needs -u (without -u pen says so and runs without
                it)
  -T sec        client tracking time, 0 = forever [0]
  -H            HTTP mode: add X-Forwarded-For and X-Forwarded-Proto to requests
  -U            UDP: one flow per client address, ended after idle_timeout
                seconds (60 when idle_timeout is 0); -x bounds the flows
  -N            hash without remembering the server (as -h, never tracked)
  -O option     run a penctl command at start (repeatable, in order)
  -P            accepted and ignored (pen picks its own event mechanism)
  -Q            accepted and ignored (the same)
  -W            weight-based selection
  -X            enable the 'exit' control command
  -a            ASCII rather than hex in traffic dumps
  -b sec        blacklist time for a failed server [30]
  -c N          client table slots [2048]
  -d            more debug output (repeat: -dd)
  -e host:port  emergency server, used when no other server is available
  -f            stay in the foreground (else run as a daemon, log to syslog)
  -h            hash the client address for the initial choice
  -j dir        chroot to dir after binding; the -p, -l and -w files and later
                'write' and SIGHUP -F paths are inside it
  -F file       config file (penctl commands, one per line), read after the
                command line and again on SIGHUP
  -l file       access log: a file, or host:port of a remote log collector
  -r            round robin, no client tracking
  -s            stubborn: if the first choice fails, close, do not fail over
  -t sec        connect timeout [3]
  -u user       run as this user after binding
  -p file       write the process id to file (removed at exit)
  -x N          max simultaneous connections [500]
  -w file       HTML status file, written on SIGUSR1 and on 'status'
  -o option     the same as -O
  -E certfile   TLS: terminate TLS with this certificate chain (PEM, leaf first)
  -K keyfile    TLS: private key (PEM) [in the -E file]
  -G cacertfile TLS: CA certificates (PEM) trusted for client certificates
  -A cacertdir  TLS: directory of such CA files
  -Z            accepted and ignored (no OpenSSL workarounds to turn on)
  -R            TLS: require a valid client certificate (needs -G or -A)
  -L protocol   TLS: ssl23 = TLS 1.2 and 1.3 [ssl23], tls1.2, tls1.3 (SSLv2/3
                and TLS 1.0/1.1 are refused: rustls does not speak them)
  -m N          accept up to N connections per readiness event [100]
  -q N          listen backlog [500]
  --metrics addr
                Prometheus /metrics HTTP endpoint on [host:]port (a bare port:
                127.0.0.1 only); scrapers are checked against metrics_acl
  --control-level read|operate|admin
                what -C accepts: read = queries only, operate = runtime
                changes too, admin = everything, including commands that
                name files, sockets or hosts [admin on a Unix socket or a
                loopback address, else operate]
  --control-group group
                a Unix -C socket is mode 0660 for this group (else 0600 for
                the user pen runs as)
  --workers N   worker threads, 0 = one per CPU [0]; also env PEN_WORKERS
  --splice M    zero-copy relay (Linux splice): auto (only towards non-loopback
                servers, where it pays), always, never [auto]
  --engine E    TCP relay engine: epoll, or uring (io_uring, Linux; plain TCP
                only: epoll runs instead with TLS, UDP, -H, dummy,
                connect_on_data or -l) [epoll]
  -V, --version print the version
  -?, --help    print this text

  Also accepted and ignored: -D -n -S N.

signals: SIGHUP re-reads -F, reopens the log and re-reads the TLS certificates
and keys, SIGUSR1 writes the -w file,
SIGTERM and SIGINT exit cleanly (removing the pid file).

exit status: 0 after a clean exit, 1 on a runtime failure (e.g. cannot bind),
2 on a usage or configuration error (bad option, number, address or server
spec, -O command or -F file, no listen address). Without -f, pen exits once the
daemon has started, with the daemon's start-up status.

example: pen -C 127.0.0.1:10080 80 www1:8000:10 www2:80:10 www3
";

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
struct Opts {
    flags: Vec<char>,
    debug: u32,
    values: Vec<(char, String)>,
    workers: Option<String>,
    splice: Option<String>,
    engine: Option<String>,
    metrics: Option<String>,
    control_level: Option<String>,
    control_group: Option<String>,
    operands: Vec<String>,
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

/// Parses an unsigned decimal number (digits only: no sign, no spaces).
fn number<T: std::str::FromStr>(
    opt: &str,
    token: &str,
    expected: &'static str,
) -> Result<T, CliError> {
    let bad = || CliError::BadValue {
        opt: opt.to_string(),
        token: token.to_string(),
        expected,
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    token.parse().map_err(|_| bad())
}

/// The connection-count maximum as the `usize` fields hold it (a u32 always fits).
const CONNS: usize = limits::CONNECTIONS_MAX as usize;

/// `n` (parsed from `token`) if it is at most `max` (see `pen_core::control::limits`: the same
/// maxima as penctl's), else an error whose `expected` names the maximum.
fn at_most<T: PartialOrd>(
    opt: &str,
    n: T,
    token: &str,
    max: T,
    expected: &'static str,
) -> Result<T, CliError> {
    if n > max {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: token.to_string(),
            expected,
        });
    }
    Ok(n)
}

/// A number of seconds `n` (parsed from `token`), at most a year.
fn secs(opt: &str, n: u64, token: &str) -> Result<u64, CliError> {
    at_most(opt, n, token, limits::SECONDS_MAX, limits::EXPECTED_SECONDS)
}

/// Like [`number`], but zero is refused too (a zero table or backlog would stall pen).
fn positive<T: std::str::FromStr + PartialEq + Default>(
    opt: &str,
    token: &str,
    expected: &'static str,
) -> Result<T, CliError> {
    let n: T = number(opt, token, expected)?;
    if n == T::default() {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: token.to_string(),
            expected,
        });
    }
    Ok(n)
}

/// A file or directory name: anything but the empty string.
fn non_empty<'a>(opt: &str, token: &'a str, expected: &'static str) -> Result<&'a str, CliError> {
    if token.is_empty() {
        return Err(CliError::BadValue {
            opt: opt.to_string(),
            token: String::new(),
            expected,
        });
    }
    Ok(token)
}

fn server(
    spec: &str,
    listen: &ListenAddr,
    context: &str,
) -> Result<pen_core::addr::ServerSpec, CliError> {
    let addr_err = |source| CliError::Addr {
        context: context.to_string(),
        source,
    };
    let default_port = match listen {
        ListenAddr::Inet(a) => a.port(),
        ListenAddr::Unix(_) => {
            if addr::split_server_spec(spec)
                .map_err(addr_err)?
                .port
                .is_none()
            {
                return Err(CliError::NoPort(spec.to_string()));
            }
            0
        }
    };
    addr::parse_server(spec, default_port).map_err(addr_err)
}

fn build(o: Opts, env_workers: Option<&str>) -> Result<Cli, CliError> {
    let mut operands = o.operands.iter();
    let listen_text = operands.next().ok_or(CliError::NoListen)?;
    let listen = addr::parse_listen(listen_text).map_err(|source| CliError::Addr {
        context: String::new(),
        source,
    })?;
    // No server is fine, as in C pen: `-F`, `-O` or penctl may add them (`pen -F pen.conf 80`).
    let servers = operands
        .map(|s| server(s, &listen, ""))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = Config::new(listen, servers);
    // Issue 14 (docs/dns.md): a server named here keeps its name, so that it is looked up
    // again while pen runs, as if `-O "server N address NAME"` came before the other `-O`s.
    for (i, spec) in o.operands.iter().skip(1).enumerate() {
        if let Ok(addr::ServerSpecParts {
            host: addr::Host::Name(name),
            ..
        }) = addr::split_server_spec(spec)
        {
            config.commands.push(format!("server {i} address {name}"));
        }
    }
    // The `listen` and `control` queries echo the addresses as written, as C pen does.
    config.settings.listen_text = Some(listen_text.clone());
    let mut user = None;
    let mut chroot = None;
    for (c, v) in &o.values {
        let opt = format!("-{c}");
        let st = &mut config.settings;
        match c {
            'b' => st.blacklist_secs = secs(&opt, number(&opt, v, "a number of seconds")?, v)?,
            'T' => st.tracking_secs = secs(&opt, number(&opt, v, "a number of seconds")?, v)?,
            't' => {
                let t = positive(&opt, v, "a positive number of seconds")?;
                st.connect_timeout_secs = secs(&opt, t, v)?
            }
            'c' => {
                let n = positive(&opt, v, "a positive number (client table slots)")?;
                config.clients_max = at_most(&opt, n, v, limits::CLIENTS_MAX, EXPECTED_CLIENTS)?
            }
            'x' => {
                let n = positive(&opt, v, "a positive number (max connections)")?;
                config.conn_max = at_most(&opt, n, v, CONNS, limits::EXPECTED_CONNECTIONS)?
            }
            'm' => {
                let n = positive(&opt, v, "a positive number (connections per accept)")?;
                config.accept_batch = at_most(&opt, n, v, CONNS, limits::EXPECTED_CONNECTIONS)?
            }
            'q' => config.backlog = positive(&opt, v, "a positive number (listen backlog)")?,
            'C' => {
                config.control = Some(endpoint_addr("option -C", v)?);
                config.settings.control_text = Some(v.clone());
            }
            'e' => config.emergency = Some(server(v, &config.listen, "option -e")?),
            'B' => config.abuse = Some(server(v, &config.listen, "option -B")?),
            'O' | 'o' => config.commands.push(v.clone()),
            'p' => config.pid_file = Some(PathBuf::from(v)),
            'F' => config.config_file = Some(PathBuf::from(non_empty(&opt, v, "a file name")?)),
            'l' => {
                config.settings.log = Some(non_empty(&opt, v, "a file name or host:port")?.into())
            }
            'w' => config.settings.web_stats = Some(non_empty(&opt, v, "a file name")?.into()),
            'j' => chroot = Some(PathBuf::from(non_empty(&opt, v, "a directory")?)),
            'u' => user = Some(v.clone()),
            _ => {}
        }
    }
    let st = &mut config.settings;
    st.debug = o.debug;
    for c in &o.flags {
        match c {
            'h' => st.hash = true,
            // Hash without remembering the server (C pen's usage line; 0.34.1 lists it only).
            'N' => {
                st.hash = true;
                st.no_tracking = true;
            }
            'r' => st.roundrobin = true,
            's' => st.stubborn = true,
            'W' => st.weight = true,
            'a' => st.ascii = true,
            'H' => st.http = true,
            'X' => config.exit_enabled = true,
            'U' => config.udp = true,
            _ => {}
        }
    }
    if let (true, ListenAddr::Unix(p)) = (config.udp, &config.listen) {
        return Err(CliError::BadValue {
            opt: "-U".into(),
            token: p.display().to_string(),
            expected: "[host:]port to listen on (UDP cannot use a Unix socket)",
        });
    }
    // The command line wins over the environment.
    if let Some(w) = &o.workers {
        let n = number("--workers", w, "a number (worker threads, 0 = one per CPU)")?;
        config.workers = at_most("--workers", n, w, limits::WORKERS_MAX, EXPECTED_WORKERS)?;
    } else if let Some(w) = env_workers {
        let n = number(
            "PEN_WORKERS",
            w,
            "a number (worker threads, 0 = one per CPU)",
        )?;
        config.workers = at_most("PEN_WORKERS", n, w, limits::WORKERS_MAX, EXPECTED_WORKERS)?;
    }
    if let Some(v) = &o.splice {
        config.splice = match v.as_str() {
            "auto" => pen_core::Splice::Auto,
            "always" => pen_core::Splice::Always,
            "never" => pen_core::Splice::Never,
            _ => {
                return Err(CliError::BadValue {
                    opt: "--splice".to_string(),
                    token: v.clone(),
                    expected: "auto, always or never",
                })
            }
        };
    }
    if let Some(v) = &o.engine {
        config.engine = match v.as_str() {
            "epoll" => pen_core::EngineKind::Epoll,
            "uring" => pen_core::EngineKind::Uring,
            _ => {
                return Err(CliError::BadValue {
                    opt: "--engine".to_string(),
                    token: v.clone(),
                    expected: "epoll or uring",
                })
            }
        };
    }
    if let Some(m) = &o.metrics {
        config.metrics = Some(endpoint_addr("option --metrics", m)?);
    }
    if let Some(l) = &o.control_level {
        config.control_level = Some(l.parse().map_err(|_| CliError::BadValue {
            opt: "--control-level".into(),
            token: l.clone(),
            expected: "read, operate or admin",
        })?);
    }
    if let Some(g) = &o.control_group {
        let bad = || CliError::BadValue {
            opt: "--control-group".into(),
            token: g.clone(),
            expected: "an existing group name or a group number",
        };
        config.control_group = Some(
            pen_core::os::lookup_group(g)
                .map_err(|_| bad())?
                .ok_or_else(bad)?,
        );
    }
    config.tls = tls_options(&o)?;
    let foreground = o.flags.contains(&'f');
    Ok(Cli::Run(Box::new(Run {
        config,
        user,
        foreground,
        chroot,
    })))
}

/// A control or metrics endpoint: as [`addr::parse_listen`], except that a bare port means
/// 127.0.0.1, not every address (C pen binds all addresses; ours reach only this host unless an
/// address is written, see docs/compatibility.md 8.1).
fn endpoint_addr(context: &str, text: &str) -> Result<ListenAddr, CliError> {
    let err = |source| CliError::Addr {
        context: context.into(),
        source,
    };
    let parsed = addr::parse_listen(text).map_err(err)?;
    let bare = matches!(
        addr::split_listen(text),
        Ok(addr::ListenParts::Inet { host: None, .. })
    );
    Ok(match parsed {
        ListenAddr::Inet(a) if bare => ListenAddr::Inet(std::net::SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            a.port(),
        )),
        other => other,
    })
}

/// `-E -K -G -A -R -L`: TLS termination when `-E` is given; the others need it.
fn tls_options(o: &Opts) -> Result<Option<pen_core::TlsOptions>, CliError> {
    let value = |c: char| o.values.iter().rev().find(|(k, _)| *k == c).map(|(_, v)| v);
    let Some(cert) = value('E') else {
        let other = ['K', 'G', 'A', 'L']
            .into_iter()
            .find(|c| value(*c).is_some())
            .or(o.flags.contains(&'R').then_some('R'));
        return match other {
            Some(c) => Err(CliError::NeedsCert(c)),
            None => Ok(None),
        };
    };
    let path = |c: char, what| -> Result<Option<PathBuf>, CliError> {
        value(c)
            .map(|v| non_empty(&format!("-{c}"), v, what).map(PathBuf::from))
            .transpose()
    };
    let mut t = pen_core::TlsOptions::new(non_empty("-E", cert, "a certificate file")?, None);
    t.key = path('K', "a key file")?;
    t.ca_file = path('G', "a CA file")?;
    t.ca_dir = path('A', "a CA directory")?;
    t.require_client_cert = o.flags.contains(&'R');
    if let Some(l) = value('L') {
        t.versions = pen_core::tls::parse_protocol(l).map_err(|e| CliError::Tls {
            opt: "-L".to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(Some(t))
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
