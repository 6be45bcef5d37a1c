//! Commands that are not configuration changes: queries (`servers`, `mode`, `recent`,
//! `connection N`, ...) and actions (`close N`, `exit`, `ssl_reload`), with C pen's replies
//! (PEN-SPEC 4).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Duration;

use crate::control::command::{Command, Fastclose, SslCommand};
use crate::engine::state::{Shared, WorkerMsg};
use crate::error::{ApplyError, ParseError};

/// How long the control plane waits for a worker to answer about one of its connections.
const WORKER_REPLY: Duration = Duration::from_secs(2);

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

/// Executes a command that changes no configuration and returns its reply.
pub(crate) fn execute(shared: &Shared, cmd: Command) -> Result<String, ApplyError> {
    let settings = shared.settings.read();
    let reply = match cmd {
        Command::Blacklist(None) => nl(settings.blacklist_secs),
        Command::ClientAcl(None) => nl(settings.client_acl),
        Command::ControlAcl(None) => nl(settings.control_acl),
        Command::Debug(None) => nl(settings.debug),
        Command::IdleTimeout(None) => {
            format!("Idle timeout: {} seconds\n", settings.idle_timeout_secs)
        }
        Command::Timeout(None) => nl(settings.connect_timeout_secs),
        Command::Tracking(None) => nl(settings.tracking_secs),
        Command::PendingMax(None) => nl(settings.pending_max),
        Command::ConnPerClient(None) => nl(settings.conn_per_client),
        Command::HandshakeTimeout(None) => nl(settings.handshake_timeout_secs),
        Command::MetricsAcl(None) => nl(settings.metrics_acl),
        Command::RequestTimeout(None) => nl(settings.request_timeout_secs),
        Command::TrustedProxyAcl(None) => nl(settings.trusted_proxy_acl),
        // ---- PROXY protocol (issue 14) ----
        Command::AcceptProxy(None) => nl(settings.accept_proxy_acl),
        Command::DsrIf(None) | Command::NoObsolete(_) => String::new(),
        Command::Idlers(None) => format!("Idlers: 0/{}\n", settings.idlers),
        // C pen's reply has no newline.
        Command::TarpitAcl(None) => format!("tarpit_acl = {}", settings.tarpit_acl),
        Command::Log(None) => settings.log.as_ref().map(nl).unwrap_or_default(),
        Command::WebStats(None) => settings.web_stats.as_ref().map(nl).unwrap_or_default(),
        Command::TcpFastclose(None) => nl(fastclose_name(settings.tcp_fastclose)),
        Command::ClientsMax(None) => nl(shared.clients.lock().capacity()),
        Command::ConnMax(None) => nl(shared.conn_max.load(Relaxed)),
        // As written on the command line or in `listen ADDR` (C pen), else the bound address.
        Command::Listen(None) => match &settings.listen_text {
            Some(text) => nl(text),
            None => nl(&*shared.listen.lock()),
        },
        Command::Close(n) => match locate(shared, n) {
            Located::OutOfRange => format!("Connection {n} out of range\n"),
            Located::At(w, slot) => {
                if let Some(link) = shared.workers.get(w) {
                    link.send(WorkerMsg::Close(slot));
                }
                format!("Forcibly closing connection {n}\n")
            }
        },
        Command::Connection(n) => match locate(shared, n) {
            Located::OutOfRange => format!("Connection {n} out of range\n"),
            Located::At(w, slot) => match describe(shared, w, slot) {
                Some(desc) => format!("Connection {n}:\n{desc}"),
                None if n < conn_max(shared) => format!("Connection {n}:\n{FREE_SLOT}"),
                None => format!("Connection {n} out of range\n"),
            },
        },
        Command::Socket(fd) => {
            let fd32 = i32::try_from(fd).map_err(|_| ApplyError::Invalid {
                token: fd.to_string(),
                reason: "expected a file descriptor number".to_string(),
            })?;
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
        Command::Control => match (&settings.control_text, &*shared.control.lock()) {
            (Some(text), Some(_)) => nl(text),
            (None, Some(bound)) => nl(bound),
            (_, None) => String::new(),
        },
        Command::EventMechanism(_) => String::new(),
        Command::Exit => {
            if !shared.exit_enabled {
                "Exit is not enabled; restart with -X flag\n".to_string()
            } else {
                shared.request_stop();
                String::new()
            }
        }
        Command::ShowMode => {
            let flag = |on: bool, name: &str| {
                if on {
                    name.to_string()
                } else {
                    format!("no {name}")
                }
            };
            // C pen's text, then the policy of issue 14 when one is on.
            let policy = settings
                .balance
                .name()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            format!(
                "{} {} {} {} {}{policy}\n",
                flag(settings.hash, "hash"),
                flag(settings.roundrobin, "roundrobin"),
                flag(settings.stubborn, "stubborn"),
                flag(settings.weight, "weight"),
                flag(settings.prio, "prio"),
            )
        }
        Command::Pid => nl(std::process::id()),
        Command::Recent(secs) => {
            drop(settings);
            let secs = secs.unwrap_or(300);
            // Open connections' bytes count too, as in C pen (which counts them as they pass).
            let rows = crate::admin::stats::open_connections(shared);
            let live = crate::admin::stats::live_client_bytes(&rows);
            let now = shared.now_ms();
            let mut out = String::new();
            // In slot order, as C pen lists its client table (not most recent first).
            for e in shared.clients.lock().in_slot_order() {
                // Whole seconds, as C pen compares time(2) values: `recent 0` lists the
                // clients seen in the current second.
                if (now / 1000).saturating_sub(e.last_ms / 1000) <= secs {
                    let (to, from) = live.get(&e.addr).copied().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{} connects {} sx {} rx {}",
                        e.addr,
                        e.connects,
                        e.sent.saturating_add(to),
                        e.received.saturating_add(from)
                    );
                }
            }
            out
        }
        Command::Servers => {
            let now = shared.now_ms();
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
                health_suffix(&mut out, s, now);
                out.push('\n');
            }
            out
        }
        Command::Metrics => {
            drop(settings);
            crate::admin::metrics::render(shared)
        }
        Command::Status => {
            drop(settings);
            crate::admin::stats::status_html(shared)
        }
        Command::Ssl(SslCommand::Reload, args) => {
            drop(settings);
            if let Some(extra) = args.first() {
                return Err(ParseError::TrailingArgument(extra.clone()).into());
            }
            let tls = shared
                .tls
                .as_ref()
                .ok_or_else(crate::control::model::tls_off)?;
            tls.reload()?;
            String::new()
        }
        // ---- server states (issue 13) ----
        Command::SlowStart(None) => nl(settings.states.slow_start_secs),
        Command::PanicThreshold(None) => {
            let word = settings.states.panic_mode.word();
            format!("{} {word}\n", settings.states.panic_pct)
        }
        Command::OutlierFailures(None) => nl(settings.states.outlier_failures),
        Command::OutlierEjectionTime(None) => nl(settings.states.outlier_ejection_secs),
        Command::OutlierMaxPercent(None) => nl(settings.states.outlier_max_pct),
        Command::CheckInterval(None) => nl(settings.checks.interval_ms),
        Command::CheckTimeout(None) => nl(settings.checks.timeout_ms),
        Command::CheckRise(None) => nl(settings.checks.rise),
        Command::CheckFall(None) => nl(settings.checks.fall),
        Command::ShutdownTimeout(None) => nl(settings.shutdown_timeout_secs),
        // ---- checks on the emergency and abuse servers (issue 13) ----
        Command::EmergencyCheck(None) | Command::AbuseCheck(None) => {
            let t = shared.servers.read();
            let s = match cmd {
                Command::EmergencyCheck(_) => t.emergency.as_ref(),
                _ => t.abuse.as_ref(),
            };
            match s.and_then(|s| s.check.as_ref()) {
                Some(c) => nl(c),
                None => nl("off"),
            }
        }
        // ---- policies (issue 14) ----
        Command::MaglevTable(None) => nl(settings.maglev_table),
        Command::Lookup(ip, port) => {
            drop(settings);
            let now = shared.now_ms();
            match crate::engine::route::lookup(shared, ip, port.unwrap_or(0), now) {
                Some(target) => nl(crate::engine::route::target_name(target)),
                None => "none\n".to_string(),
            }
        }
        // Every configuration command was handled through the model above.
        other => return Err(ApplyError::NotSupported(other.to_string())),
    };
    Ok(reply)
}

/// A free connection slot, in C pen's lines.
const FREE_SLOT: &str = "state = 0\ndownfd = -1, upfd = -1\nclient = 0, server = 0\npend = 0\n";

/// Where a connection number points.
enum Located {
    /// Past every slot there can be.
    OutOfRange,
    /// (worker, slot), free or not.
    At(usize, usize),
}

fn conn_max(shared: &Shared) -> u64 {
    shared.conn_max.load(Relaxed) as u64
}

/// Connection number -> (worker, slot). Numbers interleave workers: `slot * workers + worker`.
/// As in C pen, 0 to `conn_max - 1` are in range; a larger number is in range only while it
/// names a live connection (a busy worker's slots can go past `conn_max / workers`, and
/// `socket FD` may have named it).
fn locate(shared: &Shared, n: u64) -> Located {
    let nw = shared.nworkers() as u64;
    let range = conn_max(shared).saturating_mul(nw);
    if n >= range {
        return Located::OutOfRange;
    }
    let (w, slot) = ((n % nw) as usize, (n / nw) as usize);
    if n < conn_max(shared) || describe(shared, w, slot).is_some() {
        Located::At(w, slot)
    } else {
        Located::OutOfRange
    }
}

/// The worker's description of its connection in `slot`; `None` when the slot is free.
fn describe(shared: &Shared, w: usize, slot: usize) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    shared
        .workers
        .get(w)
        .filter(|l| l.send(WorkerMsg::Describe(slot, tx)))
        .and_then(|_| rx.recv_timeout(WORKER_REPLY).ok())
        .flatten()
}

// ---- server states and health checks (issue 13) ----

/// `servers`' \[ours\] suffix after C pen's fields, empty for a ready server with no check,
/// no agent share and no ejection (so a C-pen-compatible setup prints exactly what C pen
/// does): ` state ready|drain|maint` (when not ready, or when a check is configured), then
/// ` check up|down|unchecked last RESULT Nms` (a check configured), ` agent P%` (an agent set
/// a share) and ` ejected S` (passive detection, seconds left).
fn health_suffix(out: &mut String, s: &crate::domain::server::Server, now: u64) {
    use crate::domain::server_health::{AdminState, CheckVerdict};
    let h = s.health();
    let (admin, verdict, pct) = (h.admin(), h.verdict(), h.agent_pct());
    if admin != AdminState::Ready || s.check.is_some() {
        out.push_str(" state ");
        out.push_str(admin.word());
    }
    if s.check.is_some() {
        let verdict = match verdict {
            CheckVerdict::Unchecked => "unchecked",
            CheckVerdict::Up => "up",
            CheckVerdict::Down => "down",
        };
        let last = s.last_check();
        let _ = write!(
            out,
            " check {verdict} last {} {}ms",
            last.result().word(),
            last.micros() / 1000
        );
    }
    if pct != 100 {
        let _ = write!(out, " agent {pct}%");
    }
    if h.is_ejected(now) {
        let left = h.ejected_until().saturating_sub(now).div_ceil(1000);
        let _ = write!(out, " ejected {left}");
    }
}
