//! The main thread's interventions, each checked: starting a stopped backend again (on a new
//! port, moved with a control command, if its own was taken meanwhile), rewriting the `-F`
//! files and reloading them with SIGHUP, and the rotating control commands with their checks.

use std::fs;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::backends::{TCP_BACKENDS, UDP_BACKENDS};
use crate::config_files::{cfg_text, IDLE_CHOICES, VARIANTS};
use crate::pen::{control, metric, penctl};
use crate::runner::Runner;

impl Runner {
    /// Starts TCP backend `i` again; `None` when done, else the number of failed attempts.
    pub(crate) fn restart_tcp(&mut self, i: usize, tries: u32) -> Option<u32> {
        let b = Arc::clone(&self.tcp[i]);
        let old = b.port();
        match b.start(&self.ctx, old) {
            Ok(()) => {
                self.ev.tcp_starts += 1;
                self.event(format!("tcp backend {i} started on port {old}"));
                None
            }
            Err(e) if tries < 30 => {
                if tries == 0 {
                    self.event(format!("tcp backend {i}: port {old}: {e}; retrying"));
                }
                Some(tries + 1)
            }
            Err(_) => match b.start(&self.ctx, 0) {
                Ok(()) => {
                    let new = b.port();
                    self.ev.tcp_starts += 1;
                    self.ev.tcp_moves += 1;
                    let cmd = format!("server {i} address 127.0.0.1 port {new}");
                    let reply = control(self.pen_tcp.ctl, &cmd);
                    self.event(format!(
                        "tcp backend {i} moved from port {old} to {new}: {cmd} -> {reply:?}"
                    ));
                    self.write_cfgs();
                    None
                }
                Err(e) => {
                    self.event(format!("tcp backend {i}: cannot bind a new port: {e}"));
                    Some(tries + 1)
                }
            },
        }
    }

    pub(crate) fn restart_udp(&mut self, i: usize, tries: u32) -> Option<u32> {
        let old = self.udp[i].port();
        let done = match self.udp[i].start(old) {
            Ok(()) => {
                self.event(format!("udp backend {i} started on port {old}"));
                true
            }
            Err(e) if tries < 30 => {
                if tries == 0 {
                    self.event(format!("udp backend {i}: port {old}: {e}; retrying"));
                }
                false
            }
            Err(_) => match self.udp[i].start(0) {
                Ok(()) => {
                    let new = self.udp[i].port();
                    self.ev.udp_moves += 1;
                    let cmd = format!("server {i} address 127.0.0.1 port {new}");
                    let reply = control(self.pen_udp.ctl, &cmd);
                    self.event(format!(
                        "udp backend {i} moved from port {old} to {new}: {cmd} -> {reply:?}"
                    ));
                    self.write_cfgs();
                    true
                }
                Err(e) => {
                    self.event(format!("udp backend {i}: cannot bind a new port: {e}"));
                    false
                }
            },
        };
        if done {
            self.ev.udp_starts += 1;
            self.ctx.udp_event_ms.store(self.ctx.ms(), Relaxed);
            self.ctx.udp_down.fetch_sub(1, Relaxed);
            None
        } else {
            Some(tries + 1)
        }
    }

    fn write_cfgs(&self) {
        let v = &VARIANTS[self.variant];
        let tp: Vec<u16> = self.tcp.iter().map(|b| b.port()).collect();
        let up: Vec<u16> = self.udp.iter().map(|b| b.port()).collect();
        let _ = fs::write(&self.pen_tcp.cfg, cfg_text(v.tcp, &tp, "tcp", self.variant));
        let _ = fs::write(&self.pen_udp.cfg, cfg_text(v.udp, &up, "udp", self.variant));
    }

    /// The next variant of both files, SIGHUP, and a check that it took.
    pub(crate) fn reload(&mut self) {
        self.variant = (self.variant + 1) % VARIANTS.len();
        self.write_cfgs();
        let v = &VARIANTS[self.variant];
        for (pen, mode, idle) in [
            (&self.pen_tcp, v.tcp_mode, v.tcp_idle),
            (&self.pen_udp, v.udp_mode, v.udp_idle),
        ] {
            self.ev.reloads += 1;
            if !pen.signal("-HUP") {
                self.ev.reload_failures += 1;
                let msg = format!("{} pen: kill -HUP {} failed", pen.name, pen.pid);
                self.ctx.note(msg);
                continue;
            }
            let want_idle = format!("Idle timeout: {idle} seconds");
            let mut last = (String::new(), String::new());
            let ok = (0..30).any(|_| {
                thread::sleep(Duration::from_millis(100));
                let m = control(pen.ctl, "mode").unwrap_or_default();
                let i = control(pen.ctl, "idle_timeout").unwrap_or_default();
                let ok = m.trim() == mode && i.trim() == want_idle;
                last = (m, i);
                ok
            });
            if !ok {
                self.ev.reload_failures += 1;
                self.ctx.note(format!(
                    "{} pen: reload to variant {} not seen: mode '{}', '{}'",
                    pen.name,
                    self.variant,
                    last.0.trim(),
                    last.1.trim()
                ));
            }
        }
        let line = format!("SIGHUP: variant {}", self.variant);
        self.event(line);
    }

    /// One control command (rotating), checked.
    pub(crate) fn control_round(&mut self, i: usize) {
        let udp = i % 4 == 3;
        let cmds = [
            "servers",
            "mode",
            "metrics",
            "status",
            "blacklist",
            "idle_timeout",
            "idle_set",
            "recent",
            "pid",
            "servers",
            "metrics",
        ];
        let mut what = cmds[i % cmds.len()];
        let pen = if udp { &self.pen_udp } else { &self.pen_tcp };
        let ports: Vec<u16> = if udp {
            self.udp.iter().map(|b| b.port()).collect()
        } else {
            self.tcp.iter().map(|b| b.port()).collect()
        };
        let cmd = match what {
            "blacklist" => {
                // Never leave pen without a server: only while every backend of this pen
                // but at most one is up, and then one of the running ones.
                let up: Vec<usize> = if udp {
                    (0..UDP_BACKENDS)
                        .filter(|&j| self.udp[j].is_running())
                        .collect()
                } else {
                    (0..TCP_BACKENDS)
                        .filter(|&j| self.tcp[j].is_running())
                        .collect()
                };
                if up.len() < 2 || (udp && up.len() < UDP_BACKENDS) {
                    what = "servers";
                    "servers".to_string()
                } else {
                    let k = up[self.rng.below(up.len() as u64) as usize];
                    format!("server {k} blacklist 1")
                }
            }
            "idle_set" => {
                let v = if udp {
                    VARIANTS[self.variant].udp_idle
                } else {
                    IDLE_CHOICES[self.rng.below(3) as usize]
                };
                format!("idle_timeout {v}")
            }
            other => other.to_string(),
        };
        let through_penctl = i % 3 == 2 && self.args.penctl.is_some();
        let reply = match (&self.args.penctl, through_penctl) {
            (Some(exe), true) => penctl(exe, pen.ctl, &cmd),
            _ => control(pen.ctl, &cmd),
        };
        self.ev.control += 1;
        self.ev.via_penctl += u64::from(through_penctl);
        *self
            .ev
            .by_command
            .entry(cmd.split_whitespace().next().unwrap_or("").to_string())
            .or_default() += 1;
        let check = match &reply {
            Err(e) => Err(format!("no reply: {e}")),
            Ok(r) if r.starts_with("error") => Err(format!("error reply: {}", r.trim())),
            Ok(r) => check_reply(what, r, &ports, pen.pid, udp),
        };
        if let Err(e) = check {
            self.ev.control_failures += 1;
            let via = if through_penctl { "penctl" } else { "socket" };
            self.ctx
                .note(format!("{} pen: control '{cmd}' via {via}: {e}", pen.name));
        }
    }
}

/// Checks a control reply for the command kind `what`.
fn check_reply(what: &str, r: &str, ports: &[u16], pid: u32, udp: bool) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{why}: '{}'",
            r.trim().chars().take(200).collect::<String>()
        ))
    };
    match what {
        "servers" => {
            let lines: Vec<&str> = r.lines().collect();
            if lines.len() != ports.len() {
                return bad("wrong number of servers");
            }
            for (i, (l, p)) in lines.iter().zip(ports).enumerate() {
                if !l.starts_with(&format!("{i} addr 127.0.0.1 port {p} ")) {
                    return bad(&format!("server {i} should be on port {p}"));
                }
            }
            Ok(())
        }
        "mode" => {
            // Five flags, each "name" or "no name"; never stubborn here.
            let mut flags = Vec::new();
            let mut words = r.split_whitespace();
            while let Some(w) = words.next() {
                match w {
                    "no" => flags.push((words.next().unwrap_or(""), false)),
                    name => flags.push((name, true)),
                }
            }
            let names: Vec<&str> = flags.iter().map(|f| f.0).collect();
            if names != ["hash", "roundrobin", "stubborn", "weight", "prio"] || flags[2].1 {
                return bad("unexpected mode");
            }
            Ok(())
        }
        "metrics" => {
            if metric(r, "pen_connections_active").is_none()
                || metric(r, "pen_connections_accepted_total").is_none()
            {
                return bad("metrics without pen_connections_active");
            }
            Ok(())
        }
        "status" => {
            if !r.contains("<") || r.len() < 100 {
                return bad("not a status page");
            }
            Ok(())
        }
        "idle_timeout" => {
            let ok = r
                .trim()
                .strip_prefix("Idle timeout: ")
                .and_then(|v| v.strip_suffix(" seconds"))
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| udp || IDLE_CHOICES.contains(&v));
            if !ok {
                return bad("unexpected idle_timeout");
            }
            Ok(())
        }
        "pid" => {
            if r.trim() != pid.to_string() {
                return bad("wrong pid");
            }
            Ok(())
        }
        // blacklist, idle_set, recent: any non-error reply.
        _ => Ok(()),
    }
}
