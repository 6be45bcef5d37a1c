//! The verdict of a run: the checks that fail it (corruption, client-seen TCP errors not
//! explained by a server stop, reloads or control checks that failed, a pen that exited or did
//! not exit cleanly, an interruption, RSS growth, descriptors not back to the start count) and
//! the notes that do not (UDP queries lost without a backend stop nearby).

use std::sync::atomic::Ordering::Relaxed;

use crate::procfs::ProcSample;
use crate::report::{mib, End};
use crate::runner::Runner;
use crate::sampling::Sample;

/// What failed the run (nothing: a PASS), what is only noted, and the cells of the RSS and
/// descriptor rows of the report's pen processes table, which come with their checks.
pub(crate) struct Verdict {
    pub(crate) fails: Vec<String>,
    pub(crate) warns: Vec<String>,
    /// The TCP pen's cells, one per row of the table (the last one unused).
    pub(crate) flat_tcp: [String; 8],
    /// The UDP pen's cells.
    pub(crate) flat_udp: [String; 8],
}

impl Runner {
    /// Checks the counters, events and samples of the run once it has ended.
    pub(crate) fn verdict(&self, end: &End) -> Verdict {
        let st = &self.ctx.stats;
        let a = &self.args;
        let mut fails: Vec<String> = Vec::new();
        let mut warns: Vec<String> = Vec::new();

        // Verdict inputs.
        let corruption = st.corruption();
        if corruption > 0 {
            fails.push(format!("{corruption} corrupted exchanges"));
        }
        let unexplained = st.unexplained();
        if unexplained > 0 {
            fails.push(format!(
                "{unexplained} client-seen TCP errors not explained by a server stop"
            ));
        }
        if self.ev.reload_failures > 0 {
            fails.push(format!("{} reloads not applied", self.ev.reload_failures));
        }
        if self.ev.control_failures > 0 {
            fails.push(format!(
                "{} control commands failed their check",
                self.ev.control_failures
            ));
        }
        if end.pen_died {
            fails.push("a pen process exited during the run".into());
        }
        for (name, status) in [("tcp", &end.exit_tcp), ("udp", &end.exit_udp)] {
            if status != "exit status: 0" {
                fails.push(format!("{name} pen at the end: {status}"));
            }
        }
        if self.interrupted.load(Relaxed) {
            fails.push("interrupted (SIGINT/SIGTERM) before the end".into());
        }
        let tol_kib = a.rss_tol_mib * 1024;
        let mut flat = |name: &str,
                        start: Option<ProcSample>,
                        warm: Option<ProcSample>,
                        endv: Option<ProcSample>,
                        pick: fn(&Sample) -> Option<ProcSample>|
         -> [String; 8] {
            let max_rss = self
                .samples
                .iter()
                .filter_map(|s| pick(s).map(|p| p.rss_kib))
                .max();
            let max_fds = self
                .samples
                .iter()
                .filter_map(|s| pick(s).map(|p| p.fds))
                .max();
            let (rss_ok, fd_ok) = match (start, warm, endv) {
                (Some(s), Some(w), Some(e)) => (
                    e.rss_kib <= w.rss_kib + tol_kib,
                    e.fds.abs_diff(s.fds) <= a.fd_tol,
                ),
                (Some(s), None, Some(e)) => (
                    e.rss_kib <= s.rss_kib + tol_kib,
                    e.fds.abs_diff(s.fds) <= a.fd_tol,
                ),
                _ => (false, false),
            };
            if !rss_ok {
                fails.push(format!("{name} pen RSS grew (or was not measured)"));
            }
            if !fd_ok {
                fails.push(format!(
                    "{name} pen descriptors not back to the start count"
                ));
            }
            let kib = |p: Option<ProcSample>| p.map_or("-".into(), |p| mib(p.rss_kib));
            let fds = |p: Option<ProcSample>| p.map_or("-".into(), |p| p.fds.to_string());
            [
                kib(start),
                kib(warm),
                kib(endv),
                max_rss.map_or("-".into(), mib),
                if rss_ok { "flat".into() } else { "GREW".into() },
                format!(
                    "{} / {} / {}",
                    fds(start),
                    fds(endv),
                    max_fds.map_or("-".into(), |m| m.to_string())
                ),
                if fd_ok {
                    "flat".into()
                } else {
                    "NOT FLAT".into()
                },
                String::new(),
            ]
        };
        let warm_tcp = self.warm.and_then(|w| w.1);
        let warm_udp = self.warm.and_then(|w| w.2);
        let ftcp = flat("tcp", self.start_tcp, warm_tcp, end.tcp, |s| s.tcp);
        let fudp = flat("udp", self.start_udp, warm_udp, end.udp, |s| s.udp);
        let lost = st.udp.lost.load(Relaxed);
        if lost > 0 {
            warns.push(format!(
                "{lost} UDP queries lost without a UDP backend stop nearby"
            ));
        }
        Verdict {
            fails,
            warns,
            flat_tcp: ftcp,
            flat_udp: fudp,
        }
    }
}
