//! Periodic samples of both pens (RSS, descriptors, CPU ticks, active connections) and of
//! the clients' progress, the progress line on stderr, and the drain at the end of the run.

use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use crate::context::log;
use crate::pen::{control, metric, Pen};
use crate::procfs::{clk, load1, ProcSample};
use crate::report::mib;
use crate::runner::Runner;

/// One periodic sample.
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) tcp: Option<ProcSample>,
    pub(crate) udp: Option<ProcSample>,
    pub(crate) active: Option<u64>,
    pub(crate) requests: u64,
    pub(crate) udp_answered: u64,
    pub(crate) load1: f64,
}

impl Runner {
    pub(crate) fn take_sample(&mut self) {
        let active = control(self.pen_tcp.ctl, "metrics")
            .ok()
            .and_then(|m| metric(&m, "pen_connections_active"));
        let s = Sample {
            t: self.ctx.t0.elapsed().as_secs_f64(),
            tcp: self.pen_tcp.sample(),
            udp: self.pen_udp.sample(),
            active,
            requests: self.ctx.stats.requests(),
            udp_answered: self.ctx.stats.udp.answered.load(Relaxed),
            load1: load1(),
        };
        self.samples.push(s);
    }

    pub(crate) fn progress(&self) {
        let st = &self.ctx.stats;
        let Some(s) = self.samples.last() else {
            return;
        };
        let prev = self
            .samples
            .len()
            .checked_sub(2)
            .and_then(|i| self.samples.get(i));
        let rate = prev.map_or(0.0, |p| {
            (s.requests - p.requests) as f64 / (s.t - p.t).max(0.1)
        });
        let cpu = prev.and_then(|p| {
            let d = s.tcp?.ticks.checked_sub(p.tcp?.ticks)?;
            Some(d as f64 / clk() as f64 / (s.t - p.t).max(0.1) * 100.0)
        });
        let p = |x: Option<ProcSample>| {
            x.map_or("gone".to_string(), |x| {
                format!("rss {} fds {}", mib(x.rss_kib), x.fds)
            })
        };
        log(
            &self.ctx,
            &format!(
                "tcp pen {} cpu {:.0}% active {} | udp pen {} | req {} ({rate:.0}/s) udp {} | broken {} err {} corrupt {} lost {} | load {:.1}",
                p(s.tcp),
                cpu.unwrap_or(0.0),
                s.active.map_or("?".into(), |a| a.to_string()),
                p(s.udp),
                s.requests,
                s.udp_answered,
                st.sum(|k| k.broken.load(Relaxed)),
                st.unexplained(),
                st.corruption(),
                st.udp.lost.load(Relaxed),
                s.load1
            ),
        );
    }

    /// Waits for pen's connections to end and its descriptors to return to the baseline.
    /// Waits (up to 30 s) until neither pen has an active connection or flow and both are
    /// back to their descriptor counts before the traffic.
    pub(crate) fn drain(&mut self) -> String {
        let base_tcp = self.start_tcp.map_or(0, |s| s.fds);
        let base_udp = self.start_udp.map_or(0, |s| s.fds);
        let _ = control(self.pen_udp.ctl, "idle_timeout 1");
        let t = Instant::now();
        let mut out = String::new();
        while t.elapsed() < Duration::from_secs(30) {
            let active = |pen: &Pen| {
                control(pen.ctl, "metrics")
                    .ok()
                    .and_then(|m| metric(&m, "pen_connections_active"))
            };
            let (ta, ua) = (active(&self.pen_tcp), active(&self.pen_udp));
            let tf = self.pen_tcp.sample().map_or(u64::MAX, |s| s.fds);
            let uf = self.pen_udp.sample().map_or(u64::MAX, |s| s.fds);
            let show = |a: Option<u64>| a.map_or("?".into(), |a| a.to_string());
            out = format!(
                "after {:.1} s: tcp pen active connections {}, fds {tf} (start {base_tcp}); udp pen active flows {}, fds {uf} (start {base_udp})",
                t.elapsed().as_secs_f64(),
                show(ta),
                show(ua)
            );
            if ta == Some(0) && ua == Some(0) && tf <= base_tcp && uf <= base_udp {
                break;
            }
            thread::sleep(Duration::from_millis(250));
        }
        log(&self.ctx, &format!("drained: {out}"));
        out
    }
}
