//! Executing a [`Command`] against the running balancer and producing its reply (PEN-SPEC 4).
//! The one path for `-O` options, the control socket and config files.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Duration;

use super::command::{
    Command, EventMechanism, Fastclose, ModeFlag, ServerField, SslCommand, Switch,
};
use crate::clock::now_ms;
use crate::error::ApplyError;
use crate::reactor::WorkerMsg;
use crate::server::ServerId;
use crate::state::Shared;

/// How long the control plane waits for a worker to answer about one of its connections.
const WORKER_REPLY: Duration = Duration::from_secs(2);

/// Deepest `include` nesting (a file including itself must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Parses and applies one line.
pub(crate) fn apply_line(shared: &Shared, line: &str) -> Result<String, ApplyError> {
    apply_line_at(shared, line, 0)
}

fn apply_line_at(shared: &Shared, line: &str, depth: usize) -> Result<String, ApplyError> {
    let cmd = super::parse_line(line)?;
    apply(shared, cmd, depth)
}

fn invalid(token: impl ToString, reason: impl ToString) -> ApplyError {
    ApplyError::Invalid {
        token: token.to_string(),
        reason: reason.to_string(),
    }
}

fn nl(v: impl std::fmt::Display) -> String {
    format!("{v}\n")
}

fn fastclose_name(f: Fastclose) -> &'static str {
    match f {
        Fastclose::Off => "off",
        Fastclose::Up => "up",
        Fastclose::Down => "down",
        Fastclose::Both => "both",
    }
}

/// Applies a parsed command. Every check happens before any change, so an error changes nothing.
fn apply(shared: &Shared, cmd: Command, depth: usize) -> Result<String, ApplyError> {
    let mut settings = shared.settings.write();
    let reply = match cmd {
        Command::Acl { list, entry } => {
            shared.acls.write().push(list, entry);
            String::new()
        }
        Command::NoAcl(list) => {
            shared.acls.write().clear(list);
            String::new()
        }
        Command::Switch(sw, on) => {
            let field = match sw {
                Switch::AbortOnError => &mut settings.abort_on_error,
                Switch::Ascii => &mut settings.ascii,
                Switch::Dummy => &mut settings.dummy,
                Switch::Http => &mut settings.http,
                Switch::TcpNodelay => &mut settings.tcp_nodelay,
                Switch::Transparent => &mut settings.transparent,
            };
            *field = on;
            String::new()
        }
        Command::Mode(flag, on) => {
            let field = match flag {
                ModeFlag::Hash => &mut settings.hash,
                ModeFlag::RoundRobin => &mut settings.roundrobin,
                ModeFlag::Stubborn => &mut settings.stubborn,
                ModeFlag::Weight => &mut settings.weight,
                ModeFlag::Prio => &mut settings.prio,
            };
            *field = on;
            String::new()
        }
        Command::Blacklist(v) => nl(*set(&mut settings.blacklist_secs, v)),
        Command::ClientAcl(v) => nl(*set(&mut settings.client_acl, v)),
        Command::ControlAcl(v) => nl(*set(&mut settings.control_acl, v)),
        Command::Debug(v) => nl(*set(&mut settings.debug, v)),
        Command::IdleTimeout(v) => format!(
            "Idle timeout: {} seconds\n",
            set(&mut settings.idle_timeout_secs, v)
        ),
        Command::Timeout(v) => {
            if v == Some(0) {
                return Err(invalid(
                    "0",
                    "expected a connect timeout of at least 1 second",
                ));
            }
            nl(*set(&mut settings.connect_timeout_secs, v))
        }
        Command::Tracking(v) => nl(*set(&mut settings.tracking_secs, v)),
        Command::PendingMax(v) => nl(*set(&mut settings.pending_max, v)),
        Command::ClientsMax(v) => {
            let mut clients = shared.clients.lock();
            if let Some(n) = v {
                if n == 0 {
                    return Err(invalid(n, "expected at least 1 client slot"));
                }
                clients.grow(n);
            }
            nl(clients.capacity())
        }
        Command::ConnMax(v) => {
            if let Some(n) = v {
                if n == 0 {
                    return Err(invalid(n, "expected at least 1 connection"));
                }
                let old = shared.conn_max.swap(n, Relaxed);
                if n > old {
                    shared.wake_all(); // paused workers may accept again
                }
            }
            nl(shared.conn_max.load(Relaxed))
        }
        Command::Close(n) => match locate(shared, n) {
            None => format!("Connection {n} out of range\n"),
            Some((w, slot)) => {
                if let Some(link) = shared.workers.get(w) {
                    link.send(WorkerMsg::Close(slot));
                }
                format!("Forcibly closing connection {n}\n")
            }
        },
        Command::Connection(n) => match locate(shared, n) {
            None => format!("Connection {n} out of range\n"),
            Some((w, slot)) => {
                let (tx, rx) = mpsc::channel();
                let desc = shared
                    .workers
                    .get(w)
                    .filter(|l| l.send(WorkerMsg::Describe(slot, tx)))
                    .and_then(|_| rx.recv_timeout(WORKER_REPLY).ok())
                    .flatten()
                    .unwrap_or_else(|| "state = free\n".to_string());
                format!("Connection {n}:\n{desc}")
            }
        },
        Command::Socket(fd) => {
            let fd32 =
                i32::try_from(fd).map_err(|_| invalid(fd, "expected a file descriptor number"))?;
            let nw = shared.nworkers();
            let mut owner: i64 = -1;
            for (w, link) in shared.workers.iter().enumerate() {
                let (tx, rx) = mpsc::channel();
                if link.send(WorkerMsg::FindSocket(fd32, tx)) {
                    if let Ok(Some(slot)) = rx.recv_timeout(WORKER_REPLY) {
                        owner = i64::try_from(slot * nw + w).unwrap_or(-1);
                        break;
                    }
                }
            }
            format!("Socket {fd} belongs to connection {owner}\n")
        }
        Command::Control => shared.control.lock().as_ref().map(nl).unwrap_or_default(),
        Command::EventMechanism(EventMechanism::Epoll | EventMechanism::Kqueue)
        | Command::EventMechanism(EventMechanism::Poll | EventMechanism::Select) => String::new(),
        Command::Exit => {
            if !shared.exit_enabled {
                "Exit is not enabled; restart with -X flag\n".to_string()
            } else {
                shared.request_stop();
                String::new()
            }
        }
        Command::Include(file) => {
            drop(settings);
            return include(shared, &file, depth);
        }
        Command::Listen(None) => nl(&*shared.listen.lock()),
        Command::Listen(Some(addr)) => {
            drop(settings);
            let addr = crate::addr::parse_listen(&addr)?;
            crate::balancer::relisten(shared, &addr)?;
            return Ok(nl(addr));
        }
        Command::Log(v) => {
            if let Some(f) = v {
                settings.log = Some(f);
            }
            settings.log.as_ref().map(nl).unwrap_or_default()
        }
        Command::NoLog => {
            settings.log = None;
            String::new()
        }
        Command::WebStats(v) => {
            if let Some(f) = v {
                settings.web_stats = Some(f);
            }
            settings.web_stats.as_ref().map(nl).unwrap_or_default()
        }
        Command::NoWebStats => {
            settings.web_stats = None;
            String::new()
        }
        Command::ShowMode => {
            let flag = |on: bool, name: &str| {
                if on {
                    name.to_string()
                } else {
                    format!("no {name}")
                }
            };
            format!(
                "{} {} {} {} {}\n",
                flag(settings.hash, "hash"),
                flag(settings.roundrobin, "roundrobin"),
                flag(settings.stubborn, "stubborn"),
                flag(settings.weight, "weight"),
                flag(settings.prio, "prio"),
            )
        }
        Command::Pid => nl(std::process::id()),
        Command::Recent(secs) => {
            let secs = secs.unwrap_or(300);
            let now = now_ms();
            let mut out = String::new();
            for e in shared.clients.lock().iter() {
                if now.saturating_sub(e.last_ms) <= secs.saturating_mul(1000) {
                    let _ = writeln!(
                        out,
                        "{} connects {} sx {} rx {}",
                        e.addr, e.connects, e.sent, e.received
                    );
                }
            }
            out
        }
        Command::Server { id, fields } => {
            drop(settings);
            server(shared, id, &fields)?;
            String::new()
        }
        Command::Servers => {
            let now = now_ms();
            let mut out = String::new();
            for (id, s) in shared.servers.read().iter() {
                let (ip, port) = s.shown_addr();
                let _ = write!(
                    out,
                    "{id} addr {ip} port {port} conn {} max {} hard {} weight {} prio {} sx {} rx {}",
                    s.conns.load(Relaxed),
                    s.max,
                    s.hard,
                    s.weight,
                    s.prio,
                    s.sent.load(Relaxed),
                    s.received.load(Relaxed),
                );
                if s.is_blacklisted(now) {
                    let _ = write!(out, " blacklisted {}", s.blacklist_left_secs(now));
                }
                out.push('\n');
            }
            out
        }
        Command::Source(ip) => {
            settings.source = Some(ip);
            String::new()
        }
        Command::Metrics => {
            drop(settings);
            return Ok(crate::metrics::render(shared));
        }
        Command::Status => {
            drop(settings);
            return Ok(crate::stats::status_html(shared));
        }
        Command::TcpFastclose(v) => {
            if let Some(f) = v {
                settings.tcp_fastclose = f;
                String::new()
            } else {
                nl(fastclose_name(settings.tcp_fastclose))
            }
        }
        Command::Write(_) => return Err(ApplyError::NotSupported("write".to_string())),
        Command::Ssl(kind, _) => {
            let name = match kind {
                SslCommand::Ciphers => "ssl_ciphers",
                SslCommand::Option => "ssl_option",
                SslCommand::SniPath => "ssl_sni_path",
                SslCommand::OcspResponse => "ssl_ocsp_response",
                SslCommand::ClientRenegotiationInterval => "ssl_client_renegotiation_interval",
            };
            return Err(ApplyError::NotSupported(name.to_string()));
        }
    };
    Ok(reply)
}

/// Sets `*field` to `v` when given; returns the (new) value.
fn set<T>(field: &mut T, v: Option<T>) -> &T {
    if let Some(v) = v {
        *field = v;
    }
    field
}

/// Connection number -> (worker, slot). Numbers interleave workers: `slot * workers + worker`.
fn locate(shared: &Shared, n: u64) -> Option<(usize, usize)> {
    let nw = shared.nworkers() as u64;
    let range = (shared.conn_max.load(Relaxed) as u64).saturating_mul(nw);
    (n < range).then(|| ((n % nw) as usize, (n / nw) as usize))
}

/// `server N field value ...`: resolve and validate everything first, then change the server.
fn server(shared: &Shared, id: usize, fields: &[ServerField]) -> Result<(), ApplyError> {
    const MAX_SERVERS: usize = 4096;
    if id >= MAX_SERVERS {
        return Err(invalid(
            id,
            format!("expected a server number below {MAX_SERVERS}"),
        ));
    }
    let mut ip = None;
    for f in fields {
        if let ServerField::Address(h) = f {
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            let host = crate::addr::split_host(bare)?;
            ip = Some(crate::addr::resolve_host(&host, 0)?.ip());
        }
    }
    if let Some(a) = fields.iter().find_map(|f| match f {
        ServerField::Acl(a) if usize::from(*a) >= crate::acl::ACL_LISTS => Some(*a),
        _ => None,
    }) {
        return Err(invalid(a, "expected an ACL list number 0-9"));
    }
    let now = now_ms();
    let mut servers = shared.servers.write();
    let s = servers.get_or_create(ServerId(id));
    let old_addr = s.addr;
    for f in fields {
        match f {
            ServerField::Acl(a) => s.acl = Some(*a),
            ServerField::Address(_) => {
                if let Some(ip) = ip {
                    let port = s.addr.map_or(0, |a| a.port());
                    s.addr = Some(std::net::SocketAddr::new(ip, port));
                }
            }
            ServerField::Port(p) => {
                let ip = s
                    .addr
                    .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                s.addr = Some(std::net::SocketAddr::new(ip, *p));
            }
            ServerField::Max(m) => s.max = *m,
            ServerField::Hard(h) => s.hard = *h,
            ServerField::Blacklist(t) => s.blacklist(now, *t),
            ServerField::Weight(w) => s.weight = *w,
            ServerField::Prio(p) => s.prio = *p,
        }
    }
    let moved = s.addr != old_addr;
    drop(servers);
    if moved {
        // Clients tracked to the old address should choose afresh.
        shared.clients.lock().forget_server(ServerId(id));
    }
    Ok(())
}

/// `include FILE`: apply each line; `#` lines and blank lines are skipped. Stops at the first
/// error, naming the file and line.
fn include(shared: &Shared, file: &str, depth: usize) -> Result<String, ApplyError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(invalid(file, "includes nested too deeply"));
    }
    let text = std::fs::read_to_string(file).map_err(|source| ApplyError::Io {
        context: format!("include '{file}'"),
        source,
    })?;
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match apply_line_at(shared, t, depth + 1) {
            Ok(r) => out.push_str(&r),
            Err(e) => return Err(invalid(format!("{file}:{}", n + 1), e)),
        }
    }
    Ok(out)
}
