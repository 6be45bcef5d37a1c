//! Turning the collected options and operands into the [`Run`]: the listen address and
//! servers, each option's setting, the control and metrics endpoints, and TLS.

use std::path::PathBuf;

use pen_core::addr::{self, ListenAddr};
use pen_core::control::limits::{self, EXPECTED_CLIENTS, EXPECTED_WORKERS};
use pen_core::Config;

use super::getopt::Opts;
use super::values::{at_most, non_empty, number, positive, secs, server, CONNS};
use super::{Cli, CliError, Run};

pub(super) fn build(o: Opts, env_workers: Option<&str>) -> Result<Cli, CliError> {
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
