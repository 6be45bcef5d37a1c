//! The main thread's run ([`Runner`]): it starts the client threads, then until the end stops
//! and starts backends, reloads, sends control commands and samples, each on its schedule;
//! then it winds down (clients stopped, backends started, pens drained and stopped) and
//! prints the report.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::backends::{TcpBackend, UdpBackend, TCP_BACKENDS, UDP_BACKENDS};
use crate::cli::Args;
use crate::context::{log, Ctx};
use crate::pen::{control, Pen};
use crate::procfs::ProcSample;
use crate::report::End;
use crate::rng::Rng;
use crate::sampling::Sample;
use crate::tcp_clients::{
    bulk_worker, half_worker, idle_worker, keepalive_worker, long_worker, short_worker,
};
use crate::udp_clients::udp_worker;

/// A client thread's body: the context and a seed.
type Worker = fn(&Ctx, u64);

/// Chaos events and control traffic, counted by the main thread.
#[derive(Default)]
pub(crate) struct Events {
    pub(crate) tcp_stops: u64,
    pub(crate) tcp_abortive: u64,
    pub(crate) tcp_starts: u64,
    pub(crate) tcp_moves: u64,
    pub(crate) udp_stops: u64,
    pub(crate) udp_starts: u64,
    pub(crate) udp_moves: u64,
    pub(crate) reloads: u64,
    pub(crate) reload_failures: u64,
    pub(crate) control: u64,
    pub(crate) via_penctl: u64,
    pub(crate) control_failures: u64,
    pub(crate) by_command: HashMap<String, u64>,
    log: Vec<String>,
}

/// The main thread's state: the backends, the pens, the schedule's counters and the samples.
pub(crate) struct Runner {
    pub(crate) args: Args,
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) tcp: Vec<Arc<TcpBackend>>,
    pub(crate) udp: Vec<UdpBackend>,
    pub(crate) pen_tcp: Pen,
    pub(crate) pen_udp: Pen,
    pub(crate) ev: Events,
    pub(crate) rng: Rng,
    pub(crate) variant: usize,
    pub(crate) samples: Vec<Sample>,
    pub(crate) start_tcp: Option<ProcSample>,
    pub(crate) start_udp: Option<ProcSample>,
    pub(crate) warm: Option<(f64, Option<ProcSample>, Option<ProcSample>)>,
    pub(crate) interrupted: Arc<AtomicBool>,
    pub(crate) dir: PathBuf,
}

impl Runner {
    pub(crate) fn event(&mut self, msg: String) {
        let line = format!("[{:8.1} s] {msg}", self.ctx.t0.elapsed().as_secs_f64());
        self.ev.log.push(line);
    }

    pub(crate) fn run_all(&mut self) -> Result<bool, String> {
        let ctx = Arc::clone(&self.ctx);
        log(
            &ctx,
            &format!(
                "tcp pen pid {} on {}, udp pen pid {} on {}, backends tcp {:?} udp {:?}, files in {}",
                self.pen_tcp.pid,
                ctx.pen_tcp,
                self.pen_udp.pid,
                ctx.pen_udp,
                self.tcp.iter().map(|b| b.port()).collect::<Vec<_>>(),
                self.udp.iter().map(|b| b.port()).collect::<Vec<_>>(),
                self.dir.display()
            ),
        );
        // The baseline: before any traffic.
        thread::sleep(Duration::from_millis(500));
        self.start_tcp = self.pen_tcp.sample();
        self.start_udp = self.pen_udp.sample();
        self.take_sample();

        let mix = self.args.mix;
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        let kinds: [(usize, &str, Worker); 7] = [
            (mix.short, "short", short_worker),
            (mix.keepalive, "keepalive", keepalive_worker),
            (mix.long, "long", long_worker),
            (mix.bulk, "bulk", bulk_worker),
            (mix.half, "half", half_worker),
            (mix.idle, "idle", idle_worker),
            (mix.udp, "udp", udp_worker),
        ];
        for (n, name, f) in kinds {
            for i in 0..n {
                let (c, seed) = (Arc::clone(&ctx), self.rng.next());
                let h = thread::Builder::new()
                    .name(format!("soak-{name}{i}"))
                    .spawn(move || f(&c, seed))
                    .map_err(|e| format!("spawn: {e}"))?;
                workers.push(h);
            }
        }

        let dur = self.args.duration;
        let warmup = self
            .args
            .warmup
            .unwrap_or_else(|| (dur / 10).clamp(Duration::from_secs(15), Duration::from_secs(60)));
        let t0 = Instant::now();
        let mut next_sample = t0 + self.args.sample_every;
        let mut next_toggle = t0 + self.args.toggle_every / 2;
        let mut next_udp_toggle = t0 + self.args.toggle_every * 3 / 2;
        let mut next_hup = t0 + self.args.hup_every;
        let mut next_ctl = t0 + self.args.control_every;
        let mut restart: Option<(usize, Instant, u32)> = None;
        let mut udp_restart: Option<(usize, Instant, u32)> = None;
        let (mut toggles, mut udp_toggles, mut ctl_i) = (0usize, 0usize, 0usize);
        let mut pen_died = false;

        while t0.elapsed() < dur {
            if self.interrupted.load(Relaxed) {
                log(&ctx, "interrupted: ending the run early");
                break;
            }
            thread::sleep(Duration::from_millis(100));
            let now = Instant::now();
            if now >= next_sample {
                next_sample += self.args.sample_every;
                self.take_sample();
                if self.warm.is_none() && t0.elapsed() >= warmup {
                    let s = self.samples.last();
                    self.warm = s.map(|s| (s.t, s.tcp, s.udp));
                }
                self.progress();
                if !self.pen_tcp.alive() || !self.pen_udp.alive() {
                    log(&ctx, "a pen process exited: ending the run");
                    pen_died = true;
                    break;
                }
            }
            // TCP backend stop / start.
            if let Some((i, at, tries)) = restart {
                if now >= at {
                    restart = self
                        .restart_tcp(i, tries)
                        .map(|t| (i, now + Duration::from_millis(100), t));
                }
            } else if now >= next_toggle {
                next_toggle += self.args.toggle_every;
                let i = toggles % TCP_BACKENDS;
                let abortive = toggles % 2 == 1;
                toggles += 1;
                if self.tcp[i].stop(&ctx, abortive) {
                    self.ev.tcp_stops += 1;
                    self.ev.tcp_abortive += u64::from(abortive);
                    let down = self.rng.range(3000, 12_000);
                    self.event(format!(
                        "tcp backend {i} stopped ({}), restart in {:.1} s",
                        if abortive { "abortive" } else { "graceful" },
                        down as f64 / 1000.0
                    ));
                    restart = Some((i, now + Duration::from_millis(down), 0));
                }
            }
            // UDP backend stop / start.
            if let Some((i, at, tries)) = udp_restart {
                if now >= at {
                    udp_restart = self
                        .restart_udp(i, tries)
                        .map(|t| (i, now + Duration::from_millis(100), t));
                }
            } else if now >= next_udp_toggle {
                next_udp_toggle += self.args.toggle_every * 3;
                let i = udp_toggles % UDP_BACKENDS;
                udp_toggles += 1;
                ctx.udp_down.fetch_add(1, Relaxed);
                ctx.udp_event_ms.store(ctx.ms(), Relaxed);
                if self.udp[i].stop() {
                    self.ev.udp_stops += 1;
                    let down = self.rng.range(3000, 8000);
                    self.event(format!(
                        "udp backend {i} stopped, restart in {:.1} s",
                        down as f64 / 1000.0
                    ));
                    udp_restart = Some((i, now + Duration::from_millis(down), 0));
                } else {
                    ctx.udp_down.fetch_sub(1, Relaxed);
                }
            }
            if now >= next_hup {
                next_hup += self.args.hup_every;
                self.reload();
            }
            if now >= next_ctl {
                next_ctl += self.args.control_every;
                self.control_round(ctl_i);
                ctl_i += 1;
            }
        }

        // Wind down.
        log(&ctx, "stopping the clients");
        ctx.running.store(false, Relaxed);
        for h in workers {
            let _ = h.join();
        }
        log(&ctx, "clients stopped; starting every backend again");
        for i in 0..TCP_BACKENDS {
            if !self.tcp[i].is_running() {
                let mut tries = 0;
                while let Some(t) = self.restart_tcp(i, tries).filter(|&t| t < 100) {
                    tries = t;
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        for i in 0..UDP_BACKENDS {
            if !self.udp[i].is_running() {
                let mut tries = 0;
                while let Some(t) = self.restart_udp(i, tries).filter(|&t| t < 100) {
                    tries = t;
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let drain = self.drain();
        self.take_sample();
        let end_tcp = self.pen_tcp.sample();
        let end_udp = self.pen_udp.sample();
        let metrics_tcp = control(self.pen_tcp.ctl, "metrics").unwrap_or_default();
        let metrics_udp = control(self.pen_udp.ctl, "metrics").unwrap_or_default();
        let exit_tcp = self.pen_tcp.stop();
        let exit_udp = self.pen_udp.stop();
        for b in &self.tcp {
            b.stop(&ctx, false);
        }
        for b in &self.udp {
            b.stop();
        }
        let end = End {
            tcp: end_tcp,
            udp: end_udp,
            metrics_tcp,
            metrics_udp,
            exit_tcp,
            exit_udp,
            drain,
            pen_died,
            elapsed: t0.elapsed(),
            warmup,
        };
        let (text, pass) = self.report(&end);
        print!("{text}");
        let _ = fs::write(self.dir.join("events.log"), self.ev.log.join("\n") + "\n");
        Ok(pass && !self.interrupted.load(Relaxed))
    }
}
