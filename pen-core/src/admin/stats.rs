//! The status page (`status`, `-w`/`web_stats`) and the snapshot it shares with the metrics.
//!
//! Everything is read once into a [`Status`] (each lock taken alone and briefly, never two
//! at a time, so the page cannot deadlock against the relay or the control plane), then
//! rendered from plain data: the renderers are pure and testable without a running balancer.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use crate::domain::server::Server;
use crate::domain::settings::Settings;
use crate::engine::state::Shared;
use crate::error::ApplyError;
use crate::tls::TlsValues;

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

/// The balancer's global counters, as plain numbers (per-server figures are in
/// [`ServerStatus`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterValues {
    /// Client connections accepted.
    pub accepted: u64,
    /// Clients closed at once because the client ACL denied them.
    pub refused_acl: u64,
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
        Status {
            wall_secs: shared.clock.wall_secs(),
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
            },
        }
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline are parse errors in HTML5.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    format!("{} UTC", crate::domain::clock::format_utc(secs))
}

/// `3d 04:05:06` style.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The selection and relay modes, as the `mode` command spells them, plus the other switches.
fn modes(s: &Settings) -> String {
    [
        ("hash", s.hash),
        ("roundrobin", s.roundrobin),
        ("stubborn", s.stubborn),
        ("weight", s.weight),
        ("prio", s.prio),
        ("http", s.http),
        ("tcp_nodelay", s.tcp_nodelay),
        ("transparent", s.transparent),
    ]
    .iter()
    .map(|(name, on)| {
        if *on {
            (*name).to_string()
        } else {
            format!("no {name}")
        }
    })
    .collect::<Vec<_>>()
    .join(" ")
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f0f0f0}td.l,th.l{text-align:left}\
table.kv th{text-align:left}table.kv td{text-align:left}\
tr.up td.state{color:#060}tr.bl td.state{color:#a00;font-weight:bold}tr.na td.state{color:#777}\
caption{text-align:left;font-weight:bold;padding:.3em 0}p.note{color:#555}";

const SERVER_HEAD: &str = "<thead><tr><th>#</th><th class=\"l\">address</th><th>port</th><th class=\"l\">state</th><th>connections</th><th>max soft</th><th>max hard</th><th>total connections</th><th>bytes sent</th><th>bytes received</th><th>weight</th><th>prio</th><th>acl</th></tr></thead>\n";

fn server_row(h: &mut String, id: &str, r: &ServerStatus) {
    let (class, state) = match (r.has_address, r.blacklist_left) {
        (false, _) => ("na", "no address".to_string()),
        (true, Some(left)) => ("bl", format!("blacklisted, {left} s left")),
        (true, None) => ("up", "up".to_string()),
    };
    let (ip, port) = match r.addr {
        Some(a) => (a.ip().to_string(), a.port().to_string()),
        None => (String::new(), String::new()),
    };
    let acl = r.acl.map_or_else(|| "-".to_string(), |a| a.to_string());
    let _ = writeln!(
        h,
        "<tr class=\"{class}\"><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l state\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(id),
        esc(&ip),
        esc(&port),
        esc(&state),
        r.conns,
        r.max,
        r.hard,
        r.total,
        r.sent,
        r.received,
        r.weight,
        r.prio,
        esc(&acl),
    );
}

fn kv(h: &mut String, key: &str, value: &str) {
    let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(key), esc(value));
}

/// Renders the page (valid HTML5, self-contained: inline style, no scripts, no external
/// resources). Every value from the tables is escaped.
pub(crate) fn render_page(s: &Status) -> String {
    let mut h = String::with_capacity(4096 + 160 * (s.servers.len() + s.clients.len()));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pen status: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>pen status: {}</h1>\n",
        esc(&s.listen),
        esc(&s.listen)
    );
    h.push_str("<table class=\"kv\">\n");
    kv(&mut h, "time", &utc(s.wall_secs));
    kv(&mut h, "uptime", &duration(s.uptime_ms));
    kv(
        &mut h,
        "version",
        concat!("pen ", env!("CARGO_PKG_VERSION")),
    );
    kv(&mut h, "listening on", &s.listen);
    kv(
        &mut h,
        "control socket",
        s.control.as_deref().unwrap_or("none"),
    );
    kv(&mut h, "modes", &modes(&s.settings));
    kv(
        &mut h,
        "connections open / limit",
        &format!("{} / {}", s.active, s.conn_max),
    );
    kv(&mut h, "workers", &s.workers.to_string());
    kv(
        &mut h,
        "connections accepted",
        &s.counters.accepted.to_string(),
    );
    kv(
        &mut h,
        "refused (client acl / no server)",
        &format!("{} / {}", s.counters.refused_acl, s.counters.no_server),
    );
    kv(
        &mut h,
        "failovers / blacklistings / connect timeouts",
        &format!(
            "{} / {} / {}",
            s.counters.failovers, s.counters.blacklistings, s.counters.connect_timeouts
        ),
    );
    kv(
        &mut h,
        "blacklist / tracking / connect timeout",
        &format!(
            "{} s / {} / {} s",
            s.settings.blacklist_secs,
            if s.settings.tracking_secs == 0 {
                "forever".to_string()
            } else {
                format!("{} s", s.settings.tracking_secs)
            },
            s.settings.connect_timeout_secs
        ),
    );
    h.push_str("</table>\n");

    let _ = write!(
        h,
        "<h2>Servers</h2>\n<table id=\"servers\">\n<caption>{} server{}</caption>\n{SERVER_HEAD}<tbody>\n",
        s.servers.len(),
        if s.servers.len() == 1 { "" } else { "s" }
    );
    for (i, r) in s.servers.iter().enumerate() {
        server_row(&mut h, &i.to_string(), r);
    }
    h.push_str("</tbody>\n</table>\n");
    if let Some(e) = &s.emergency {
        let _ = write!(
            h,
            "<h2>Emergency server</h2>\n<table id=\"emergency\">\n{SERVER_HEAD}<tbody>\n"
        );
        server_row(&mut h, "emergency", e);
        h.push_str("</tbody>\n</table>\n");
    }

    let _ = write!(
        h,
        "<h2>Clients</h2>\n<table id=\"clients\">\n<caption>{} tracked, {} slots</caption>\n\
         <thead><tr><th class=\"l\">address</th><th>age (s)</th><th>last server</th><th>connects</th><th>bytes sent to client</th><th>bytes received from client</th></tr></thead>\n<tbody>\n",
        s.clients_tracked, s.clients_capacity
    );
    for c in &s.clients {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.addr.to_string()),
            c.age_secs,
            c.server,
            c.connects,
            c.sent,
            c.received
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if s.clients_tracked > s.clients.len() {
        let _ = writeln!(
            h,
            "<p class=\"note\">Showing the {} most recently seen of {} clients.</p>",
            s.clients.len(),
            s.clients_tracked
        );
    }

    let _ = write!(
        h,
        "<h2>Open connections</h2>\n<p>{} open (limit {}) across {} worker{}.</p>\n</body>\n</html>\n",
        s.active,
        s.conn_max,
        s.workers,
        if s.workers == 1 { "" } else { "s" }
    );
    h
}

/// The HTML status page (the `status` command); also writes it to the `web_stats` file when
/// one is set (PEN-SPEC 1: the file is written on `status`). A failed write does not fail the
/// command: the page is still returned and the reason is logged.
pub(crate) fn status_html(shared: &Shared) -> String {
    let page = render_page(&Status::take(shared, MAX_CLIENT_ROWS));
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
    let page = render_page(&Status::take(shared, MAX_CLIENT_ROWS));
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
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    pub(crate) fn sample() -> Status {
        let addr = |p| Some(SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
        Status {
            wall_secs: 1_700_000_000,
            uptime_ms: 90_061_000,
            listen: "127.0.0.1:8080".into(),
            control: Some("127.0.0.1:10080".into()),
            settings: Settings::default(),
            active: 3,
            conn_max: 500,
            workers: 2,
            servers: vec![
                ServerStatus {
                    addr: addr(81),
                    has_address: true,
                    conns: 2,
                    total: 10,
                    sent: 100,
                    received: 2000,
                    ..ServerStatus::default()
                },
                ServerStatus {
                    addr: addr(82),
                    has_address: true,
                    blacklist_left: Some(17),
                    acl: Some(3),
                    ..ServerStatus::default()
                },
                ServerStatus::default(),
            ],
            emergency: Some(ServerStatus {
                addr: addr(99),
                has_address: true,
                ..ServerStatus::default()
            }),
            clients: vec![ClientStatus {
                addr: IpAddr::from(Ipv4Addr::new(127, 0, 0, 2)),
                age_secs: 5,
                server: 0,
                connects: 4,
                sent: 7,
                received: 8,
            }],
            clients_tracked: 1,
            clients_capacity: 2048,
            counters: CounterValues::default(),
            tls: None,
        }
    }

    #[test]
    fn time_and_duration_formats() {
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(duration(90_061_000), "1d 01:01:01");
        assert_eq!(duration(59_999), "00:00:59");
    }

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }

    #[test]
    fn page_shows_servers_states_and_emergency() {
        let page = render_page(&sample());
        assert!(page.starts_with("<!DOCTYPE html>\n"));
        assert!(
            page.contains("<td class=\"l\">127.0.0.1</td><td>81</td><td class=\"l state\">up</td>")
        );
        assert!(page.contains("blacklisted, 17 s left"));
        assert!(page.contains("no address"));
        assert!(page.contains("<td>emergency</td><td class=\"l\">127.0.0.1</td><td>99</td>"));
        assert!(page.contains("1d 01:01:01"));
        assert!(page.contains("3 / 500"));
        assert!(page.contains("no hash no roundrobin"));
        assert!(!page.contains("most recently seen"));
    }

    #[test]
    fn long_client_list_is_capped_with_a_note() {
        let mut s = sample();
        s.clients = vec![s.clients[0].clone(); MAX_CLIENT_ROWS];
        s.clients_tracked = 5000;
        let page = render_page(&s);
        assert!(page.contains("Showing the 1000 most recently seen of 5000 clients."));
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("pen-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("status.html");
        write_atomically(&p, "one").unwrap();
        write_atomically(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
        let err = write_atomically(&dir.join("missing/x.html"), "x").unwrap_err();
        assert!(err.to_string().contains("missing/x.html"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
