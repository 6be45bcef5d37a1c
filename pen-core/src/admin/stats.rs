//! The status page (`status`, `-w`/`web_stats`) and the snapshot it shares with the metrics.
//!
//! Everything is read once into a [`Status`] (each lock taken alone and briefly, never two
//! at a time, so the page cannot deadlock against the relay or the control plane), then
//! rendered from plain data: the renderers are pure and testable without a running balancer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Duration;

use crate::domain::server::{Server, Target};
use crate::domain::settings::Settings;
use crate::engine::reactor::proxy::Refusal;
use crate::engine::state::{ConnRow, Shared, WorkerMsg};
use crate::error::ApplyError;
use crate::tls::TlsValues;

mod page;
use page::render_page;

/// The status page lists at most this many clients (most recently seen first): the table may
/// hold millions, and a page that size helps nobody.
pub(crate) const MAX_CLIENT_ROWS: usize = 1000;

/// One server (or the emergency server) as seen at one moment: a row of the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Address, `None` for a slot created beyond the table and never given one.
    pub addr: Option<SocketAddr>,
    /// Has a usable address and port.
    pub has_address: bool,
    /// Seconds of blacklisting left (rounded up), `None` when not blacklisted.
    pub blacklist_left: Option<u64>,
    /// Open (or opening) connections.
    pub conns: u32,
    /// Soft limit on connections (0 = unlimited).
    pub max: u32,
    /// Hard limit, still admitting clients tracked to it (0 = unlimited).
    pub hard: u32,
    /// Connections established to it in total.
    pub total: u64,
    /// Bytes sent to the server.
    pub sent: u64,
    /// Bytes received from the server.
    pub received: u64,
    /// Weight (weight mode).
    pub weight: u32,
    /// Priority (prio mode; lower first).
    pub prio: u32,
    /// The ACL list a client must pass to use it (`server N acl A`).
    pub acl: Option<u8>,
    /// Its state (issue 13): `ready`, `drain`, `maint`, or `ejected` by passive detection.
    pub state: &'static str,
    /// Its active check, when one is configured.
    pub check: Option<crate::domain::check::CheckSnapshot>,
}

impl ServerStatus {
    fn of(s: &Server, now: u64) -> Self {
        ServerStatus {
            addr: s.addr,
            has_address: s.has_address(),
            blacklist_left: s.is_blacklisted(now).then(|| s.blacklist_left_secs(now)),
            conns: s.conns.load(Relaxed),
            max: s.max,
            hard: s.hard,
            total: s.total.load(Relaxed),
            sent: s.sent.load(Relaxed),
            received: s.received.load(Relaxed),
            weight: s.weight,
            prio: s.prio,
            acl: s.acl,
            state: s.state_word(now),
            check: s
                .check
                .as_ref()
                .map(|_| s.last_check().snapshot(s.health().verdict())),
        }
    }

    /// `ip:port` (`[v6]:port`), or empty when unset.
    pub(crate) fn address(&self) -> String {
        self.addr.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// One tracked client: a row of the status page's client table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStatus {
    /// The client's address.
    pub addr: IpAddr,
    /// Seconds since it was last seen.
    pub age_secs: u64,
    /// The server it last used (its index in [`Status::servers`]).
    pub server: usize,
    /// Connections it made.
    pub connects: u64,
    /// Bytes sent to the client.
    pub sent: u64,
    /// Bytes received from the client.
    pub received: u64,
}

/// One open connection (or UDP flow): a row of the status page's connection table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStatus {
    /// Its number, as `connection N` and `close N` take it.
    pub number: usize,
    /// The client side's descriptor.
    pub downfd: i32,
    /// The server side's descriptor (-1 before there is one).
    pub upfd: i32,
    /// Bytes waiting to be written to the client.
    pub pending_down: usize,
    /// Bytes waiting to be written to the server.
    pub pending_up: usize,
    /// The client's address.
    pub client: IpAddr,
    /// Where it goes.
    pub target: Target,
}

/// The balancer's global counters, as plain numbers (per-server figures are in
/// [`ServerStatus`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterValues {
    /// Client connections accepted.
    pub accepted: u64,
    /// Clients closed at once because the client ACL denied them.
    pub refused_acl: u64,
    /// Clients closed at accept because their address had `conn_per_client` connections open.
    pub refused_per_client: u64,
    /// Clients closed for not sending their first bytes (`connect_on_data`) or, under `-H`, a
    /// request head within `request_timeout`.
    pub request_timeouts: u64,
    /// Clients closed because no server (nor the emergency server) was available.
    pub no_server: u64,
    /// Connections moved to another server after a failed connect.
    pub failovers: u64,
    /// Servers blacklisted after a failed connect.
    pub blacklistings: u64,
    /// Connects that timed out.
    pub connect_timeouts: u64,
    /// Connections closed by `idle_timeout`.
    pub idle_timeouts: u64,
    /// HTTP-mode connections that went pass-through on an oversized request head.
    pub http_oversized: u64,
    /// Times a worker stopped accepting at the `-x` limit.
    pub accept_pauses: u64,
    /// Control-socket commands served.
    pub control_commands: u64,
    /// Control-socket commands answered with an error.
    pub control_errors: u64,
    /// Events not delivered because a subscriber's queue was full
    /// ([`Balancer::subscribe`](crate::Balancer::subscribe)).
    pub events_dropped: u64,
    // ---- PROXY protocol (issue 14) ----
    /// PROXY headers read from clients `accept_proxy` names.
    pub proxy_accepted: u64,
    /// Clients `accept_proxy` names closed for starting without a PROXY header.
    pub proxy_missing: u64,
    /// Clients closed for an invalid PROXY header.
    pub proxy_malformed: u64,
    /// Clients `accept_proxy` does not name closed for sending a PROXY header.
    pub proxy_not_allowed: u64,
    /// Clients closed for not completing their PROXY header within `handshake_timeout`.
    pub proxy_timeout: u64,
}

/// The state of a running balancer at one moment: what the status page and the metrics show,
/// as plain data ([`Balancer::snapshot`](crate::Balancer::snapshot)).
///
/// Each table is read alone and briefly, so the parts are each consistent but not taken at
/// exactly the same instant.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Status {
    /// Wall-clock time of the snapshot (seconds since the Unix epoch).
    pub wall_secs: u64,
    /// The local time zone's offset from UTC then, in seconds east (the page shows local
    /// time, as C pen's does).
    pub utc_offset_secs: i64,
    /// Milliseconds since this balancer was bound.
    pub uptime_ms: u64,
    /// The address clients connect to, as `listen` shows it.
    pub listen: String,
    /// The control socket's address, if there is one.
    pub control: Option<String>,
    /// The live settings.
    pub settings: Settings,
    /// Open client connections (all workers).
    pub active: usize,
    /// The connection limit (`-x`, `conn_max`).
    pub conn_max: usize,
    /// Worker threads.
    pub workers: usize,
    /// The servers: `servers[i]` is server `i`.
    pub servers: Vec<ServerStatus>,
    /// The emergency server (`-e`), if any.
    pub emergency: Option<ServerStatus>,
    /// Tracked clients, most recently seen first (all of them from
    /// [`Balancer::snapshot`](crate::Balancer::snapshot); the status page shows the first 1000).
    pub clients: Vec<ClientStatus>,
    /// Clients tracked in all.
    pub clients_tracked: usize,
    /// Client table slots (`-c`, `clients_max`).
    pub clients_capacity: usize,
    /// The global counters.
    pub counters: CounterValues,
    /// TLS handshake counters, when TLS is on.
    pub tls: Option<TlsValues>,
    /// The server chosen last (the round-robin cursor: C pen's "current").
    pub current: usize,
    /// Whether fewer servers are available than the panic threshold asks (issue 13).
    pub panic: bool,
    /// The open connections, by number: filled for the status page only (empty in
    /// [`Balancer::snapshot`](crate::Balancer::snapshot) and the metrics, which do not wait
    /// for the workers).
    pub connections: Vec<ConnectionStatus>,
}

impl Status {
    /// Reads the tables, copying at most `client_rows` clients.
    pub(crate) fn take(shared: &Shared, client_rows: usize) -> Self {
        let now = shared.now_ms();
        // One lock at a time, each released before the next is taken.
        let settings = shared.settings.read().clone();
        let listen = shared.listen.lock().to_string();
        let control = shared.control.lock().as_ref().map(ToString::to_string);
        let (servers, emergency) = {
            let t = shared.servers.read();
            let rows: Vec<ServerStatus> = t.iter().map(|(_, s)| ServerStatus::of(s, now)).collect();
            (rows, t.emergency.as_ref().map(|s| ServerStatus::of(s, now)))
        };
        let (clients, clients_tracked, clients_capacity) = {
            let t = shared.clients.lock();
            let rows = t
                .iter()
                .take(client_rows)
                .map(|e| ClientStatus {
                    addr: e.addr,
                    age_secs: now.saturating_sub(e.last_ms) / 1000,
                    server: e.server.0,
                    connects: e.connects,
                    sent: e.sent,
                    received: e.received,
                })
                .collect();
            (rows, t.len(), t.capacity())
        };
        let c = &shared.counters;
        let wall_secs = shared.clock.wall_secs();
        let panic = {
            let t = shared.servers.read();
            settings.states.rules().panicking(&t, now)
        };
        Status {
            panic,
            // C pen's `current` is 0 until a server is chosen; the cursor's "none yet" is MAX.
            current: match shared.rr.load(Relaxed) {
                usize::MAX => 0,
                n => n,
            },
            connections: Vec::new(),
            wall_secs,
            utc_offset_secs: crate::sys::process::utc_offset_secs(wall_secs),
            uptime_ms: now.saturating_sub(shared.started_ms),
            listen,
            control,
            settings,
            active: shared.active.load(Relaxed),
            conn_max: shared.conn_max.load(Relaxed),
            workers: shared.nworkers(),
            servers,
            emergency,
            clients,
            clients_tracked,
            clients_capacity,
            tls: shared.tls.as_ref().map(|t| t.stats.values()),
            counters: CounterValues {
                accepted: c.accepted.load(Relaxed),
                refused_acl: c.refused_acl.load(Relaxed),
                refused_per_client: c.refused_per_client.load(Relaxed),
                request_timeouts: c.request_timeouts.load(Relaxed),
                no_server: c.no_server.load(Relaxed),
                failovers: c.failovers.load(Relaxed),
                blacklistings: c.blacklistings.load(Relaxed),
                connect_timeouts: c.connect_timeouts.load(Relaxed),
                idle_timeouts: c.idle_timeouts.load(Relaxed),
                http_oversized: c.http_oversized.load(Relaxed),
                accept_pauses: c.accept_pauses.load(Relaxed),
                control_commands: c.control_commands.load(Relaxed),
                control_errors: c.control_errors.load(Relaxed),
                events_dropped: shared.events.dropped(),
                proxy_accepted: c.proxy.accepted.load(Relaxed),
                proxy_missing: c.proxy.refused(Refusal::Missing),
                proxy_malformed: c.proxy.refused(Refusal::Malformed),
                proxy_not_allowed: c.proxy.refused(Refusal::NotAllowed),
                proxy_timeout: c.proxy.refused(Refusal::Timeout),
            },
        }
    }
}

/// The open connections of every running worker, each with its number (each worker answers
/// within [`WORKER_REPLY`] or is left out), sorted by number.
pub(crate) fn open_connections(shared: &Shared) -> Vec<(usize, ConnRow)> {
    if !shared.running.load(Relaxed) {
        return Vec::new();
    }
    let nw = shared.nworkers();
    let mut rows = Vec::new();
    for (w, link) in shared.workers.iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        if !link.send(WorkerMsg::List(tx)) {
            continue;
        }
        let Ok(list) = rx.recv_timeout(WORKER_REPLY) else {
            continue;
        };
        rows.extend(
            list.into_iter()
                .map(|r| (r.slot.saturating_mul(nw).saturating_add(w), r)),
        );
    }
    rows.sort_by_key(|(n, _)| *n);
    rows
}

/// Each client's bytes (to it, from it) in open connections, not yet in the client table.
pub(crate) fn live_client_bytes(rows: &[(usize, ConnRow)]) -> HashMap<IpAddr, (u64, u64)> {
    let mut live: HashMap<IpAddr, (u64, u64)> = HashMap::new();
    for (_, r) in rows {
        let e = live.entry(r.client).or_default();
        e.0 = e.0.saturating_add(r.to_client);
        e.1 = e.1.saturating_add(r.from_client);
    }
    live
}

impl Status {
    /// Adds the open connections, and their bytes to their clients' (C pen counts a client's
    /// bytes as they pass; ours adds a connection's when it closes).
    pub(crate) fn with_connections(mut self, shared: &Shared) -> Self {
        let rows = open_connections(shared);
        let live = live_client_bytes(&rows);
        for c in &mut self.clients {
            if let Some((to, from)) = live.get(&c.addr) {
                c.sent = c.sent.saturating_add(*to);
                c.received = c.received.saturating_add(*from);
            }
        }
        self.connections = (rows.into_iter())
            .map(|(number, r)| ConnectionStatus {
                number,
                downfd: r.downfd,
                upfd: r.upfd,
                pending_down: r.pending_down,
                pending_up: r.pending_up,
                client: r.client,
                target: r.target,
            })
            .collect();
        self
    }
}

/// How long the status page waits for a worker's list of connections.
const WORKER_REPLY: Duration = Duration::from_secs(2);

/// The HTML status page (the `status` command); also writes it to the `web_stats` file when
/// one is set (PEN-SPEC 1: the file is written on `status`). A failed write does not fail the
/// command: the page is still returned and the reason is logged.
pub(crate) fn status_html(shared: &Shared) -> String {
    let page = render_page(&Status::take(shared, MAX_CLIENT_ROWS).with_connections(shared));
    let file = shared.settings.read().web_stats.clone();
    if let Some(path) = file {
        if let Err(e) = write_atomically(Path::new(&path), &page) {
            log::warn!("{e}");
        }
    }
    page
}

/// Writes the status page to the `web_stats` file, if one is set (SIGUSR1).
///
/// # Errors
/// [`ApplyError::Io`] naming the file if it cannot be written; the old file is then untouched.
pub(crate) fn write_web_stats(shared: &Shared) -> Result<(), ApplyError> {
    let Some(path) = shared.settings.read().web_stats.clone() else {
        return Ok(());
    };
    let page = render_page(&Status::take(shared, MAX_CLIENT_ROWS).with_connections(shared));
    write_atomically(Path::new(&path), &page)
}

/// Writes `text` atomically to the `web_stats` file `path`, naming it in the error.
fn write_atomically(path: &Path, text: &str) -> Result<(), ApplyError> {
    crate::files::write_atomically(path, text.as_bytes()).map_err(|source| ApplyError::Io {
        context: format!("cannot write web_stats file '{}'", path.display()),
        source,
    })
}

#[cfg(test)]
#[path = "stats_tests.rs"]
pub(crate) mod tests;
