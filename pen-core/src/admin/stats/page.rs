//! The status page's HTML: C pen's page (its markup, tables, columns and order), then ours.
//! Pure: it renders a [`Status`] taken beforehand.

use std::fmt::Write as _;

use super::{ServerStatus, Status};
use crate::domain::server::Target;
use crate::domain::settings::Settings;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
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
pub(super) fn utc(secs: u64) -> String {
    format!("{} UTC", crate::domain::clock::format_utc(secs))
}

/// `3d 04:05:06` style.
pub(super) fn duration(ms: u64) -> String {
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

/// A table's header row in C pen's style: one green cell per column, one per line.
fn head_row(h: &mut String, columns: &[&str]) {
    h.push_str("<tr>\n");
    for c in columns {
        let _ = writeln!(h, "<td bgcolor=\"#80f080\">{c}</td>");
    }
    h.push_str("</tr>\n");
}

/// A data row in C pen's style: one cell per line, every value escaped.
fn data_row(h: &mut String, cells: &[String]) {
    h.push_str("<tr>\n");
    for c in cells {
        let _ = writeln!(h, "<td>{}</td>", esc(c));
    }
    h.push_str("</tr>\n");
}

/// C pen's server `status` column: 0, or for a blacklisted server the time its blacklisting
/// counts from (its end less the `blacklist` setting, as C pen keeps it).
fn blacklist_status(s: &Status, r: &ServerStatus) -> u64 {
    r.blacklist_left.map_or(0, |left| {
        (s.wall_secs.saturating_add(left)).saturating_sub(s.settings.blacklist_secs)
    })
}

/// The columns of C pen's server table, in its order.
const SERVER_COLUMNS: [&str; 11] = [
    "server",
    "address",
    "status",
    "port",
    "connections",
    "max soft",
    "max hard",
    "sent",
    "received",
    "weight",
    "prio",
];

fn server_cells(s: &Status, id: String, r: &ServerStatus) -> Vec<String> {
    let (ip, port) = match r.addr {
        Some(a) => (a.ip().to_string(), a.port().to_string()),
        None => (String::new(), "0".to_string()),
    };
    vec![
        id,
        ip,
        blacklist_status(s, r).to_string(),
        port,
        r.conns.to_string(),
        r.max.to_string(),
        r.hard.to_string(),
        r.sent.to_string(),
        r.received.to_string(),
        r.weight.to_string(),
        r.prio.to_string(),
    ]
}

fn kv(h: &mut String, key: &str, value: &str) {
    let _ = writeln!(
        h,
        "<tr>\n<td bgcolor=\"#80f080\">{}</td>\n<td>{}</td>\n</tr>",
        esc(key),
        esc(value)
    );
}

/// C pen's page: the title, the time line, the servers, the active clients and the active
/// connections, with C pen's markup, columns and order.
fn render_c_part(h: &mut String, s: &Status) {
    h.push_str(
        "<html>\n<head>\n<title>Pen status page</title>\n</head>\n\
         <body bgcolor=\"#ffffff\"><h1>Pen status page</h1>\n",
    );
    let _ = writeln!(
        h,
        "Time {}, {} servers, {} current<p>",
        crate::domain::clock::format_utc(s.wall_secs.saturating_add_signed(s.utc_offset_secs)),
        s.servers.len(),
        s.current
    );
    h.push_str("<table bgcolor=\"#c0c0c0\">\n");
    head_row(h, &SERVER_COLUMNS);
    for (i, r) in s.servers.iter().enumerate() {
        data_row(h, &server_cells(s, i.to_string(), r));
    }
    h.push_str("</table>\n");

    let _ = writeln!(
        h,
        "<h2>Active clients</h2>Max number of clients: {}<p><table bgcolor=\"#c0c0c0\">",
        s.clients_capacity
    );
    head_row(
        h,
        &[
            "client",
            "address",
            "age(secs)",
            "last server",
            "connects",
            "sent",
            "received",
        ],
    );
    for (i, c) in s.clients.iter().enumerate() {
        data_row(
            h,
            &[
                i.to_string(),
                c.addr.to_string(),
                c.age_secs.to_string(),
                c.server.to_string(),
                c.connects.to_string(),
                c.sent.to_string(),
                c.received.to_string(),
            ],
        );
    }
    h.push_str("</table>\n");

    let last = s.connections.iter().map(|c| c.number).max().unwrap_or(0);
    let _ = writeln!(
        h,
        "<h2>Active connections</h2>Number of connections: {} max, {} used, {} last<p><table bgcolor=\"#c0c0c0\">",
        s.conn_max, s.active, last
    );
    head_row(
        h,
        &[
            "connection",
            "downfd",
            "upfd",
            "pending data down",
            "pending data up",
            "client",
            "server",
        ],
    );
    for c in &s.connections {
        // The client's row in the table above (-1: not listed there).
        let client = s
            .clients
            .iter()
            .position(|t| t.addr == c.client)
            .map_or(-1, |i| i64::try_from(i).unwrap_or(-1));
        let server = match c.target {
            Target::Server(id) => id.to_string(),
            Target::Emergency => "emergency".to_string(),
            Target::Abuse => "abuse".to_string(),
        };
        data_row(
            h,
            &[
                c.number.to_string(),
                c.downfd.to_string(),
                c.upfd.to_string(),
                c.pending_down.to_string(),
                c.pending_up.to_string(),
                client.to_string(),
                server,
            ],
        );
    }
    h.push_str("</table>\n");
}

/// Renders the page: C pen's page (its markup, tables, columns and order), then ours: the
/// emergency server, a note when the client list is cut, and a table of further facts (uptime,
/// version, modes, counters). Every value from the tables is escaped.
pub(super) fn render_page(s: &Status) -> String {
    let rows = s.servers.len() + s.clients.len() + s.connections.len();
    let mut h = String::with_capacity(4096 + 200 * rows);
    render_c_part(&mut h, s);

    // Ours, after C pen's content.
    if let Some(e) = &s.emergency {
        h.push_str("<h2>Emergency server</h2><table bgcolor=\"#c0c0c0\">\n");
        head_row(&mut h, &SERVER_COLUMNS);
        data_row(&mut h, &server_cells(s, "emergency".to_string(), e));
        h.push_str("</table>\n");
    }
    if s.clients_tracked > s.clients.len() {
        let _ = writeln!(
            h,
            "<p>Showing the {} most recently seen of {} clients.</p>",
            s.clients.len(),
            s.clients_tracked
        );
    }
    h.push_str("<h2>Details</h2><table bgcolor=\"#c0c0c0\">\n");
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
    kv(&mut h, "workers", &s.workers.to_string());
    kv(
        &mut h,
        "clients tracked",
        &format!("{} of {}", s.clients_tracked, s.clients_capacity),
    );
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
    if s.settings.states.panic_pct > 0 {
        let on = if s.panic { "on" } else { "off" };
        let threshold = format!(
            "{on} (below {} % available: {})",
            s.settings.states.panic_pct,
            s.settings.states.panic_mode.word()
        );
        kv(&mut h, "panic mode", &threshold);
    }
    for (i, r) in s.servers.iter().enumerate() {
        let state = match (r.has_address, r.blacklist_left) {
            (false, _) => "no address".to_string(),
            (true, Some(left)) => format!("blacklisted, {left} s left"),
            (true, None) => "up".to_string(),
        };
        let state = if r.state == "ready" {
            state
        } else {
            format!("{state}, {}", r.state)
        };
        let acl = r.acl.map_or_else(|| "-".to_string(), |a| a.to_string());
        // Ours: the active check's verdict and last result (docs/health-checks.md).
        let check = r.check.map_or_else(String::new, |c| format!("; {c}"));
        kv(
            &mut h,
            &format!("server {i}"),
            &format!(
                "{state}; {} connections in total; acl {acl}{check}",
                r.total
            ),
        );
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}
