//! The `metrics` command: the counters in the Prometheus text exposition format 0.0.4.
//!
//! Written by hand rather than with `prometheus-client` or `prometheus`: our counters already
//! live in atomics (the server table, `state::Counters`), and those crates want to own them in
//! a registry of their own metric types (or, for `prometheus-client`, also emit OpenMetrics
//! rather than 0.0.4). The format is a few lines per family; what needs care is escaping,
//! done in [`label_value`] and [`help_text`].
//!
//! The HTTP listener for `/metrics` is in `metrics_http`.

use std::fmt::Write as _;

use crate::admin::stats::{ServerStatus, Status};
use crate::engine::state::Shared;

/// The content type of [`render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline (format 0.0.4).
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a HELP text: backslash and newline.
fn help_text(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Writes one metric family: HELP, TYPE, then its samples (each a label set and a value).
fn family<'a>(
    out: &mut String,
    name: &str,
    kind: Kind,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, u64)>,
) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {name} {}", help_text(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", label_value(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// A family with one unlabelled sample.
fn single(out: &mut String, name: &str, kind: Kind, help: &str, value: u64) {
    family(out, name, kind, help, [(Vec::new(), value)]);
}

/// Renders every counter in the Prometheus text format (version 0.0.4).
pub(crate) fn render(shared: &Shared) -> String {
    render_snapshot(&Status::take(shared, 0))
}

/// Renders a snapshot (pure, for tests).
pub(crate) fn render_snapshot(s: &Status) -> String {
    let mut out = String::with_capacity(2048 + 600 * s.servers.len());
    let c = &s.counters;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    single(
        &mut out,
        "pen_connections_accepted_total",
        Kind::Counter,
        "Client connections accepted.",
        c.accepted,
    );
    single(
        &mut out,
        "pen_connections_active",
        Kind::Gauge,
        "Client connections open now.",
        count(s.active),
    );
    family(
        &mut out,
        "pen_connections_refused_total",
        Kind::Counter,
        "Client connections closed at once: denied by the client ACL, no server available, or \
         over conn_per_client.",
        [
            (vec![("reason", "acl".to_string())], c.refused_acl),
            (vec![("reason", "no_server".to_string())], c.no_server),
            (
                vec![("reason", "conn_per_client".to_string())],
                c.refused_per_client,
            ),
        ],
    );
    single(
        &mut out,
        "pen_request_timeouts_total",
        Kind::Counter,
        "Clients closed for not sending their first bytes (connect_on_data) or, under -H, a \
         request head within request_timeout.",
        c.request_timeouts,
    );
    // ---- PROXY protocol (issue 14) ----
    single(
        &mut out,
        "pen_proxy_headers_accepted_total",
        Kind::Counter,
        "PROXY protocol headers read from clients accept_proxy names.",
        c.proxy_accepted,
    );
    family(
        &mut out,
        "pen_proxy_headers_refused_total",
        Kind::Counter,
        "Clients closed by the PROXY protocol checks: no header from a source accept_proxy \
         names (missing), an invalid one (malformed), one from a source it does not name \
         (not_allowed), none within handshake_timeout (timeout).",
        [
            (vec![("reason", "missing".to_string())], c.proxy_missing),
            (vec![("reason", "malformed".to_string())], c.proxy_malformed),
            (
                vec![("reason", "not_allowed".to_string())],
                c.proxy_not_allowed,
            ),
            (vec![("reason", "timeout".to_string())], c.proxy_timeout),
        ],
    );
    single(
        &mut out,
        "pen_connection_limit",
        Kind::Gauge,
        "Maximum simultaneous client connections (-x).",
        count(s.conn_max),
    );

    // Per server: the regular ones by number, then the emergency server.
    let rows: Vec<(String, &ServerStatus)> = s
        .servers
        .iter()
        .enumerate()
        .map(|(i, r)| (i.to_string(), r))
        .chain(s.emergency.iter().map(|r| ("emergency".to_string(), r)))
        .collect();
    let per_server = |out: &mut String, name, kind, help, f: &dyn Fn(&ServerStatus) -> u64| {
        family(
            out,
            name,
            kind,
            help,
            rows.iter()
                .map(|(id, r)| (vec![("server", id.clone()), ("address", r.address())], f(r))),
        );
    };
    per_server(
        &mut out,
        "pen_server_connections",
        Kind::Gauge,
        "Connections open (or opening) to the server now.",
        &|r| u64::from(r.conns),
    );
    per_server(
        &mut out,
        "pen_server_connections_total",
        Kind::Counter,
        "Connections established to the server.",
        &|r| r.total,
    );
    per_server(
        &mut out,
        "pen_server_bytes_sent_total",
        Kind::Counter,
        "Bytes sent to the server.",
        &|r| r.sent,
    );
    per_server(
        &mut out,
        "pen_server_bytes_received_total",
        Kind::Counter,
        "Bytes received from the server.",
        &|r| r.received,
    );
    per_server(
        &mut out,
        "pen_server_blacklisted",
        Kind::Gauge,
        "1 while the server is blacklisted after a failure, else 0.",
        &|r| u64::from(r.blacklist_left.is_some()),
    );
    checks(&mut out, &rows);
    let (to_servers, to_clients) = rows.iter().fold((0u64, 0u64), |(a, b), (_, r)| {
        (a.saturating_add(r.sent), b.saturating_add(r.received))
    });
    family(
        &mut out,
        "pen_bytes_total",
        Kind::Counter,
        "Bytes relayed, all servers together.",
        [
            (vec![("direction", "to_servers".to_string())], to_servers),
            (vec![("direction", "to_clients".to_string())], to_clients),
        ],
    );

    single(
        &mut out,
        "pen_failovers_total",
        Kind::Counter,
        "Connections moved to another server after a failed connect.",
        c.failovers,
    );
    single(
        &mut out,
        "pen_blacklistings_total",
        Kind::Counter,
        "Servers blacklisted after a failed connect.",
        c.blacklistings,
    );
    single(
        &mut out,
        "pen_connect_timeouts_total",
        Kind::Counter,
        "Connects to servers that timed out.",
        c.connect_timeouts,
    );
    single(
        &mut out,
        "pen_idle_timeouts_total",
        Kind::Counter,
        "Connections closed by idle_timeout.",
        c.idle_timeouts,
    );
    single(
        &mut out,
        "pen_http_oversized_heads_total",
        Kind::Counter,
        "HTTP-mode requests refused with 431: a head over the size or header-count limit.",
        c.http_oversized,
    );
    single(
        &mut out,
        "pen_accept_pauses_total",
        Kind::Counter,
        "Times a worker stopped accepting at the connection limit (UDP: new-flow datagrams dropped at the limit).",
        c.accept_pauses,
    );
    single(
        &mut out,
        "pen_control_commands_total",
        Kind::Counter,
        "Commands served on the control socket.",
        c.control_commands,
    );
    single(
        &mut out,
        "pen_control_errors_total",
        Kind::Counter,
        "Control-socket commands answered with an error.",
        c.control_errors,
    );
    single(
        &mut out,
        "pen_clients_tracked",
        Kind::Gauge,
        "Clients in the tracking table now.",
        count(s.clients_tracked),
    );
    // ---- server states (issue 13) ----
    family(
        &mut out,
        "pen_server_state",
        Kind::Gauge,
        "1 for the server's state (ready, drain, maint, or ejected by passive detection).",
        rows.iter().flat_map(|(id, r)| {
            ["ready", "drain", "maint", "ejected"].map(|st| {
                (
                    vec![("server", id.clone()), ("state", st.to_string())],
                    u64::from(r.state == st),
                )
            })
        }),
    );
    single(
        &mut out,
        "pen_panic",
        Kind::Gauge,
        "1 while fewer servers are available than panic_threshold asks, else 0.",
        u64::from(s.panic),
    );
    if let Some(t) = &s.tls {
        tls(&mut out, t);
    }
    out
}

/// The TLS families (only when TLS is on).
fn tls(out: &mut String, t: &crate::tls::stats::TlsValues) {
    family(
        out,
        "pen_tls_handshakes_total",
        Kind::Counter,
        "Completed TLS handshakes, by protocol version and kind (full or resumed).",
        t.handshakes.iter().map(|(version, kind, n)| {
            (
                vec![("version", version.to_string()), ("kind", kind.to_string())],
                *n,
            )
        }),
    );
    family(
        out,
        "pen_tls_handshake_failures_total",
        Kind::Counter,
        "Failed TLS handshakes, by reason.",
        t.failures
            .iter()
            .map(|(reason, n)| (vec![("reason", reason.to_string())], *n)),
    );
    single(
        out,
        "pen_tls_reloads_total",
        Kind::Counter,
        "Certificate and key reloads (SIGHUP, ssl_reload, ssl_* commands).",
        t.reloads,
    );
}

/// The active checks' families (docs/health-checks.md), for the servers that have a check.
fn checks(out: &mut String, rows: &[(String, &ServerStatus)]) {
    use crate::domain::check::CHECK_BUCKETS_MS;
    let checked: Vec<(&String, crate::domain::check::CheckSnapshot)> = rows
        .iter()
        .filter_map(|(id, r)| r.check.map(|c| (id, c)))
        .collect();
    if checked.is_empty() {
        return;
    }
    let label = |id: &String| vec![("server", id.clone())];
    family(
        out,
        "pen_server_up",
        Kind::Gauge,
        "1 while the server's active check finds it up, else 0 (down or not decided yet).",
        checked
            .iter()
            .map(|(id, c)| (label(id), u64::from(c.up == Some(true)))),
    );
    family(
        out,
        "pen_server_state_transitions_total",
        Kind::Counter,
        "Changes of the active check's verdict (up to down and back).",
        checked.iter().map(|(id, c)| (label(id), c.transitions)),
    );
    let name = "pen_server_check_duration_seconds";
    let _ = writeln!(out, "# HELP {name} How long the active checks took.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (id, c) in &checked {
        let id = label_value(id);
        let mut cumulative = 0u64;
        for (ms, n) in CHECK_BUCKETS_MS.iter().zip(c.buckets) {
            cumulative = cumulative.saturating_add(n);
            let le = *ms as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name}_bucket{{server=\"{id}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let total: u64 = c.buckets.iter().fold(0, |a, b| a.saturating_add(*b));
        let _ = writeln!(out, "{name}_bucket{{server=\"{id}\",le=\"+Inf\"}} {total}");
        let sum = c.sum_micros as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{server=\"{id}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{server=\"{id}\"}} {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(help_text("x\\y\nz\"q"), "x\\\\y\\nz\"q");
        let mut out = String::new();
        family(
            &mut out,
            "m",
            Kind::Gauge,
            "h",
            [(vec![("l", "\"[::1]:80\"\n".to_string())], 1)],
        );
        assert_eq!(
            out,
            "# HELP m h\n# TYPE m gauge\nm{l=\"\\\"[::1]:80\\\"\\n\"} 1\n"
        );
    }

    #[test]
    fn renders_every_family_with_server_labels() {
        let mut s = crate::admin::stats::tests::sample();
        s.counters.accepted = 12;
        s.counters.refused_acl = 2;
        s.counters.refused_per_client = 4;
        s.counters.request_timeouts = 5;
        s.counters.proxy_accepted = 6;
        s.counters.proxy_not_allowed = 7;
        let text = render_snapshot(&s);
        for line in [
            "pen_connections_accepted_total 12",
            "pen_connections_active 3",
            "pen_connections_refused_total{reason=\"acl\"} 2",
            "pen_connections_refused_total{reason=\"no_server\"} 0",
            "pen_connections_refused_total{reason=\"conn_per_client\"} 4",
            "pen_request_timeouts_total 5",
            "pen_proxy_headers_accepted_total 6",
            "pen_proxy_headers_refused_total{reason=\"not_allowed\"} 7",
            "pen_proxy_headers_refused_total{reason=\"timeout\"} 0",
            "pen_connection_limit 500",
            "pen_server_connections{server=\"0\",address=\"127.0.0.1:81\"} 2",
            "pen_server_connections_total{server=\"0\",address=\"127.0.0.1:81\"} 10",
            "pen_server_bytes_sent_total{server=\"0\",address=\"127.0.0.1:81\"} 100",
            "pen_server_bytes_received_total{server=\"0\",address=\"127.0.0.1:81\"} 2000",
            "pen_server_blacklisted{server=\"1\",address=\"127.0.0.1:82\"} 1",
            "pen_server_blacklisted{server=\"0\",address=\"127.0.0.1:81\"} 0",
            "pen_server_connections{server=\"2\",address=\"\"} 0",
            "pen_server_connections{server=\"emergency\",address=\"127.0.0.1:99\"} 0",
            "pen_bytes_total{direction=\"to_servers\"} 100",
            "pen_bytes_total{direction=\"to_clients\"} 2000",
            "pen_failovers_total 0",
            "pen_blacklistings_total 0",
            "pen_connect_timeouts_total 0",
            "pen_idle_timeouts_total 0",
            "pen_http_oversized_heads_total 0",
            "pen_accept_pauses_total 0",
            "pen_control_commands_total 0",
            "pen_control_errors_total 0",
            "pen_clients_tracked 1",
            "pen_server_state{server=\"1\",state=\"drain\"} 1",
            "pen_server_state{server=\"1\",state=\"ready\"} 0",
            "pen_panic 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every family has exactly one HELP and one TYPE, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, 24);
        assert_eq!(helps, types);
        assert!(text.ends_with('\n'));
    }
}
