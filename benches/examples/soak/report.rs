//! The Markdown report on stdout: the verdict, the parameters, the clients' TCP and UDP
//! tables, pen's processes and counters, the chaos, the samples and the notes.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::backends::INJECTED;
use crate::pen::metric;
use crate::procfs::{clk, ProcSample};
use crate::runner::Runner;
use crate::sampling::Sample;
use crate::stats::{KindStats, ERR_NAMES, KINDS};
use crate::verdict::Verdict;

/// Appends one line to the report.
fn l(o: &mut String, s: String) {
    o.push_str(&s);
    o.push('\n');
}

/// `kib` KiB in MiB, e.g. "12.3 MiB".
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A byte count in B, KiB, MiB or GiB (from ten of each unit on).
fn bytes(n: u64) -> String {
    if n >= 10 << 30 {
        format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30))
    } else if n >= 10 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 10 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// What the end of the run measured.
pub(crate) struct End {
    pub(crate) tcp: Option<ProcSample>,
    pub(crate) udp: Option<ProcSample>,
    pub(crate) metrics_tcp: String,
    pub(crate) metrics_udp: String,
    pub(crate) exit_tcp: String,
    pub(crate) exit_udp: String,
    pub(crate) drain: String,
    pub(crate) pen_died: bool,
    pub(crate) elapsed: Duration,
    pub(crate) warmup: Duration,
}

impl Runner {
    /// The Markdown report, and whether the run passed.
    pub(crate) fn report(&self, end: &End) -> (String, bool) {
        let v = self.verdict(end);
        let pass = v.fails.is_empty();
        let mut o = String::new();
        o.push_str(&self.verdict_section(&v));
        o.push_str(&self.parameters(end));
        o.push_str(&self.tcp_traffic());
        o.push_str(&self.udp_traffic());
        o.push_str(&self.pen_processes(end, &v));
        o.push_str(&self.chaos());
        o.push_str(&self.samples_table());
        o.push_str(&self.notes());
        (o, pass)
    }

    /// The "Verdict" section: PASS or FAIL, and why.
    fn verdict_section(&self, v: &Verdict) -> String {
        let a = &self.args;
        let (fails, warns) = (&v.fails, &v.warns);
        let pass = fails.is_empty();
        let mut o = String::new();
        l(&mut o, "## Verdict".into());
        l(&mut o, String::new());
        l(
            &mut o,
            format!("**{}**", if pass { "PASS" } else { "FAIL" }),
        );
        l(&mut o, String::new());
        for f in fails {
            l(&mut o, format!("- FAIL: {f}"));
        }
        for w in warns {
            l(&mut o, format!("- note: {w}"));
        }
        if pass {
            l(&mut o, format!(
                "- no corruption, no unexplained client-seen TCP error, every reload and control check passed, both pens exited cleanly; RSS end ≤ after-warm-up + {} MiB and descriptors within ±{} of the start, for both pens",
                a.rss_tol_mib, a.fd_tol
            ));
        }
        l(&mut o, String::new());
        o
    }

    /// The "Parameters" section: the run's options and the machine's load.
    fn parameters(&self, end: &End) -> String {
        let a = &self.args;
        let mut o = String::new();
        l(&mut o, "## Parameters".into());
        l(&mut o, String::new());
        l(&mut o, format!(
            "- duration {:.0} s (asked {:.0} s), warm-up {:.0} s (RSS baseline: the first sample after it, at {:.0} s)",
            end.elapsed.as_secs_f64(),
            a.duration.as_secs_f64(),
            end.warmup.as_secs_f64(),
            self.warm.map_or(0.0, |w| w.0)
        ));
        l(&mut o, format!("- client threads: {}", a.mix.describe()));
        if a.inject > 0 {
            l(&mut o, format!(
                "- **--inject-corruption {}: the backends corrupted one reply in {} on purpose ({} replies corrupted)**",
                a.inject,
                a.inject,
                INJECTED.load(Relaxed) / a.inject
            ));
        }
        l(
            &mut o,
            format!(
                "- TCP pen: `{}`",
                self.pen_tcp
                    .cmdline
                    .replace(&self.dir.display().to_string(), "$DIR")
            ),
        );
        l(
            &mut o,
            format!(
                "- UDP pen: `{}`",
                self.pen_udp
                    .cmdline
                    .replace(&self.dir.display().to_string(), "$DIR")
            ),
        );
        l(&mut o, format!(
            "- TCP backend stopped every {:.0} s (for 3-12 s, in turn, every other stop abortive), a UDP backend every {:.0} s (3-8 s); SIGHUP every {:.0} s; a control command every {:.0} s (every third through {}); samples every {:.0} s",
            a.toggle_every.as_secs_f64(),
            a.toggle_every.as_secs_f64() * 3.0,
            a.hup_every.as_secs_f64(),
            a.control_every.as_secs_f64(),
            if a.penctl.is_some() { "penctl" } else { "the socket (no --penctl)" },
            a.sample_every.as_secs_f64()
        ));
        let loads: Vec<f64> = self.samples.iter().map(|s| s.load1).collect();
        let mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
        let maxl = loads.iter().copied().fold(0.0, f64::max);
        l(&mut o, format!(
            "- machine load (1-min load average, this run included): start {:.2}, mean {mean:.2}, max {maxl:.2}, end {:.2}",
            loads.first().copied().unwrap_or(0.0),
            loads.last().copied().unwrap_or(0.0)
        ));
        l(&mut o, String::new());
        o
    }

    /// The "TCP traffic" section: the clients' counts per kind, errors by kind, idle closes.
    fn tcp_traffic(&self) -> String {
        let st = &self.ctx.stats;
        let unexplained = st.unexplained();
        let total = |f: fn(&KindStats) -> &AtomicU64| st.sum(|k| f(k).load(Relaxed));
        let mut o = String::new();
        l(&mut o, "## TCP traffic (clients' view)".into());
        l(&mut o, String::new());
        l(&mut o, "| type | connections | request-replies | bytes up | bytes down | broken by a server stop | other errors | corrupt |".into());
        l(&mut o, "|---|---:|---:|---:|---:|---:|---:|---:|".into());
        for k in KINDS {
            let s = &st.kinds[k as usize];
            l(
                &mut o,
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    k.name(),
                    s.conns.load(Relaxed),
                    s.requests.load(Relaxed),
                    bytes(s.up.load(Relaxed)),
                    bytes(s.down.load(Relaxed)),
                    s.broken.load(Relaxed),
                    s.errs.iter().map(|e| e.load(Relaxed)).sum::<u64>(),
                    s.corrupt.load(Relaxed)
                ),
            );
        }
        l(
            &mut o,
            format!(
                "| **total** | {} | {} | {} | {} | {} | {} | {} |",
                total(|k| &k.conns),
                total(|k| &k.requests),
                bytes(total(|k| &k.up)),
                bytes(total(|k| &k.down)),
                total(|k| &k.broken),
                unexplained,
                total(|k| &k.corrupt)
            ),
        );
        l(&mut o, String::new());
        l(&mut o, "Bytes count verified payload of completed exchanges (headers not included). Backend-side corruption (a request header that did not parse): ".to_string()
            + &st.server_bad_header.load(Relaxed).to_string() + ".");
        l(&mut o, String::new());
        l(
            &mut o,
            "Client-seen errors by kind (not explained by a server stop):".into(),
        );
        l(&mut o, String::new());
        l(
            &mut o,
            format!("| kind | {} |", KINDS.map(|k| k.name()).join(" | ")),
        );
        l(&mut o, format!("|---|{}", "---:|".repeat(KINDS.len())));
        for (e, name) in ERR_NAMES.iter().enumerate() {
            l(
                &mut o,
                format!(
                    "| {name} | {} |",
                    KINDS
                        .map(|k| st.kinds[k as usize].errs[e].load(Relaxed).to_string())
                        .join(" | ")
                ),
            );
        }
        l(&mut o, String::new());
        let ic = st.idle_closed.load(Relaxed);
        l(
            &mut o,
            format!(
                "Idle connections closed by pen's idle_timeout (set to 20-30 s): {ic}{}",
                if ic > 0 {
                    format!(
                        ", after {:.1}-{:.1} s of idleness",
                        st.idle_min_ms.load(Relaxed) as f64 / 1000.0,
                        st.idle_max_ms.load(Relaxed) as f64 / 1000.0
                    )
                } else {
                    String::new()
                }
            ),
        );
        l(&mut o, String::new());
        o
    }

    /// The "UDP traffic" section: the UDP clients' counts.
    fn udp_traffic(&self) -> String {
        let st = &self.ctx.stats;
        let lost = st.udp.lost.load(Relaxed);
        let mut o = String::new();
        let u = &st.udp;
        l(&mut o, "## UDP traffic (clients' view)".into());
        l(&mut o, String::new());
        l(&mut o, "| sockets (pen flows) | queries | answered, verified | bytes each way | lost near a UDP backend stop | lost otherwise | late answers | ICMP refused | other errors | corrupt |".into());
        l(
            &mut o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
        );
        l(
            &mut o,
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                u.sockets.load(Relaxed),
                u.queries.load(Relaxed),
                u.answered.load(Relaxed),
                bytes(u.bytes.load(Relaxed)),
                u.lost_stop.load(Relaxed),
                lost,
                u.late.load(Relaxed),
                u.refused.load(Relaxed),
                u.other.load(Relaxed),
                u.corrupt.load(Relaxed)
            ),
        );
        l(&mut o, String::new());
        o
    }

    /// The "pen processes" section: RSS, descriptors, CPU, exit status and pen's own counters.
    fn pen_processes(&self, end: &End, v: &Verdict) -> String {
        let st = &self.ctx.stats;
        let total = |f: fn(&KindStats) -> &AtomicU64| st.sum(|k| f(k).load(Relaxed));
        let secs = |t: u64| t as f64 / clk() as f64;
        let (ftcp, fudp) = (&v.flat_tcp, &v.flat_udp);
        let u = &st.udp;
        let mut o = String::new();
        l(&mut o, "## pen processes".into());
        l(&mut o, String::new());
        l(&mut o, "| | TCP pen | UDP pen |".into());
        l(&mut o, "|---|---:|---:|".into());
        let rows = [
            "RSS at start (before traffic)",
            "RSS after warm-up",
            "RSS at end (after drain)",
            "RSS max (samples)",
            "RSS verdict",
            "descriptors start / end / max",
            "descriptors verdict",
        ];
        for (i, name) in rows.iter().enumerate() {
            l(&mut o, format!("| {name} | {} | {} |", ftcp[i], fudp[i]));
        }
        let ticks = |s: Option<ProcSample>, e: Option<ProcSample>| match (s, e) {
            (Some(s), Some(e)) => e.ticks.saturating_sub(s.ticks),
            _ => 0,
        };
        let tt = ticks(self.start_tcp, end.tcp);
        let ut = ticks(self.start_udp, end.udp);
        let reqs = st.requests();
        let answered = u.answered.load(Relaxed);
        let tcp_bytes = total(|k| &k.up) + total(|k| &k.down);
        l(
            &mut o,
            format!(
                "| CPU (utime+stime) | {:.1} s | {:.1} s |",
                secs(tt),
                secs(ut)
            ),
        );
        l(
            &mut o,
            format!(
            "| CPU per request (TCP request-replies; UDP queries answered) | {:.1} µs | {:.1} µs |",
            secs(tt) * 1e6 / reqs.max(1) as f64,
            secs(ut) * 1e6 / answered.max(1) as f64
        ),
        );
        l(
            &mut o,
            format!(
                "| CPU per MiB relayed (payload both ways) | {:.2} ms | {:.2} ms |",
                secs(tt) * 1e3 / (tcp_bytes as f64 / f64::from(1u32 << 20)).max(1e-9),
                secs(ut) * 1e3
                    / (2.0 * u.bytes.load(Relaxed) as f64 / f64::from(1u32 << 20)).max(1e-9)
            ),
        );
        l(
            &mut o,
            format!("| exit | {} | {} |", end.exit_tcp, end.exit_udp),
        );
        l(&mut o, String::new());
        l(&mut o, format!("Drain at the end: {}.", end.drain));
        l(&mut o, String::new());
        l(&mut o, "pen's own counters at the end (`metrics`):".into());
        l(&mut o, String::new());
        l(&mut o, "| metric | TCP pen | UDP pen |".into());
        l(&mut o, "|---|---:|---:|".into());
        for m in [
            "pen_connections_accepted_total",
            "pen_connections_active",
            "pen_connections_refused_total",
            "pen_server_connections_total",
            "pen_bytes_total",
            "pen_failovers_total",
            "pen_blacklistings_total",
            "pen_connect_timeouts_total",
            "pen_idle_timeouts_total",
            "pen_accept_pauses_total",
            "pen_control_commands_total",
            "pen_control_errors_total",
        ] {
            let v = |t: &str| metric(t, m).map_or("-".into(), |v| v.to_string());
            l(
                &mut o,
                format!(
                    "| {m} | {} | {} |",
                    v(&end.metrics_tcp),
                    v(&end.metrics_udp)
                ),
            );
        }
        l(&mut o, String::new());
        o
    }

    /// The "Chaos" section: backend stops and starts, reloads, control commands, pen's stderr.
    fn chaos(&self) -> String {
        let mut o = String::new();
        let e = &self.ev;
        l(&mut o, "## Chaos".into());
        l(&mut o, String::new());
        l(
            &mut o,
            format!(
                "- TCP backends: {} stops ({} abortive), {} starts, {} moved to a new port",
                e.tcp_stops, e.tcp_abortive, e.tcp_starts, e.tcp_moves
            ),
        );
        l(
            &mut o,
            format!(
                "- UDP backends: {} stops, {} starts, {} moved to a new port",
                e.udp_stops, e.udp_starts, e.udp_moves
            ),
        );
        l(
            &mut o,
            format!(
                "- SIGHUP reloads: {} ({} not applied)",
                e.reloads, e.reload_failures
            ),
        );
        let mut by: Vec<_> = e.by_command.iter().collect();
        by.sort();
        l(
            &mut o,
            format!(
                "- control commands: {} ({} through penctl, {} failed their check): {}",
                e.control,
                e.via_penctl,
                e.control_failures,
                by.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        for (name, pen) in [("TCP", &self.pen_tcp), ("UDP", &self.pen_udp)] {
            let text = fs::read_to_string(&pen.log).unwrap_or_default();
            let n = text.lines().count();
            l(
                &mut o,
                format!(
                    "- {name} pen's stderr: {n} lines{}",
                    if n > 0 { ", the last ones:" } else { "" }
                ),
            );
            if n > 0 {
                l(&mut o, String::new());
                l(&mut o, "  ```".into());
                for line in text.lines().skip(n.saturating_sub(5)) {
                    l(&mut o, format!("  {line}"));
                }
                l(&mut o, "  ```".into());
            }
        }
        l(&mut o, String::new());
        o
    }

    /// The "Samples" section: the periodic samples, at most 40 rows.
    fn samples_table(&self) -> String {
        let a = &self.args;
        let secs = |t: u64| t as f64 / clk() as f64;
        let mut o = String::new();
        l(
            &mut o,
            format!(
                "## Samples (every {:.0} s; at most 40 rows shown)",
                a.sample_every.as_secs_f64()
            ),
        );
        l(&mut o, String::new());
        l(&mut o, "| t (s) | TCP pen RSS | fds | CPU % | active conns | UDP pen RSS | fds | TCP req/s | UDP q/s | load |".into());
        l(
            &mut o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
        );
        let step = self.samples.len().div_ceil(40).max(1);
        let mut prev: Option<&Sample> = None;
        for (i, s) in self.samples.iter().enumerate() {
            let show = i % step == 0 || i + 1 == self.samples.len();
            if show {
                let (cpu, rate, urate) = match prev {
                    Some(p) if s.t > p.t => {
                        let dt = s.t - p.t;
                        let cpu = match (s.tcp, p.tcp) {
                            (Some(a), Some(b)) => {
                                format!("{:.0}", secs(a.ticks.saturating_sub(b.ticks)) / dt * 100.0)
                            }
                            _ => "-".into(),
                        };
                        (
                            cpu,
                            format!("{:.0}", s.requests.saturating_sub(p.requests) as f64 / dt),
                            format!(
                                "{:.0}",
                                s.udp_answered.saturating_sub(p.udp_answered) as f64 / dt
                            ),
                        )
                    }
                    _ => ("-".into(), "-".into(), "-".into()),
                };
                let kib = |p: Option<ProcSample>| p.map_or("-".into(), |p| mib(p.rss_kib));
                let fds = |p: Option<ProcSample>| p.map_or("-".into(), |p| p.fds.to_string());
                l(
                    &mut o,
                    format!(
                        "| {:.0} | {} | {} | {cpu} | {} | {} | {} | {rate} | {urate} | {:.2} |",
                        s.t,
                        kib(s.tcp),
                        fds(s.tcp),
                        s.active.map_or("-".into(), |a| a.to_string()),
                        kib(s.udp),
                        fds(s.udp),
                        s.load1
                    ),
                );
                prev = Some(s);
            }
        }
        l(&mut o, String::new());
        o
    }

    /// The "Notes" section: errors, corruption and failed checks, as they happened.
    fn notes(&self) -> String {
        let st = &self.ctx.stats;
        let mut o = String::new();
        let notes = st.notes.lock();
        l(
            &mut o,
            format!(
                "## Notes ({} errors, corruption, failed checks; {} more not kept)",
                notes.len(),
                st.notes_dropped.load(Relaxed)
            ),
        );
        l(&mut o, String::new());
        if notes.is_empty() {
            l(&mut o, "None.".into());
        } else {
            l(&mut o, "```".into());
            for n in notes.iter() {
                l(&mut o, n.clone());
            }
            l(&mut o, "```".into());
        }
        o
    }
}
