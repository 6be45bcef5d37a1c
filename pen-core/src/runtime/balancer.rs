//! The running balancer: start it from a [`Config`], apply control commands, stop it.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::poll::Poller;
use parking_lot::Mutex;

use crate::control::{Command, Level, Reply};
use crate::domain::addr::ListenAddr;
use crate::domain::event::{ConfigSource, Event};
use crate::engine::net::Listener;
use crate::engine::state::{Shared, WorkerMsg};
use crate::error::{ApplyError, StartError};
use crate::runtime::config::Config;
use crate::runtime::controller::Controller;

mod bind;
mod start;

/// A balancer whose sockets are bound and whose start-up configuration is applied, with no
/// thread started yet (see [`Balancer::bind`]).
pub struct Bound {
    shared: Arc<Shared>,
    ctl: Arc<Controller>,
    pid_file: Option<PathBuf>,
    ends: Vec<(Arc<Poller>, mpsc::Receiver<WorkerMsg>)>,
    listeners: Vec<Option<Listener>>,
    /// UDP mode (`-U`): the workers' listening UDP sockets (instead of `listeners`).
    udp: Vec<std::net::UdpSocket>,
    /// The control socket and its access level.
    control: Option<(Listener, Level)>,
    metrics: Option<Listener>,
    /// Whether [`Bound::open_log`] ran (else [`Bound::start`] opens the log).
    log_open: bool,
    /// The engine asked for (`--engine`).
    engine: crate::runtime::config::EngineKind,
}

impl Bound {
    /// Opens the access log named by the `log` setting (`-l`, or a `log` line of `-O` or `-F`).
    /// [`Bound::start`] does it if this was not called; a program that chroots between
    /// [`Balancer::bind`] and [`Bound::start`] calls it after the chroot (and before dropping
    /// privileges), so the log is the file inside the jail, as with C pen.
    ///
    /// # Errors
    /// [`StartError::Io`] if the file cannot be opened or the collector's socket made (a
    /// runtime failure, as C pen's `Can't open logfile`, exit status 1); [`StartError::Config`]
    /// for any other refusal.
    pub fn open_log(&mut self) -> Result<(), StartError> {
        let log = self.shared.settings.read().log.clone();
        (self.shared.log)
            .reopen(log.as_deref())
            .map_err(|e| match e {
                ApplyError::Io { context, source } => StartError::Io { context, source },
                e => StartError::Config(e.to_string()),
            })?;
        self.log_open = true;
        Ok(())
    }

    /// The address the listener is bound to (with the real port when bound to port 0).
    pub fn listen_addr(&self) -> ListenAddr {
        self.shared.listen.lock().clone()
    }

    /// Applies a configuration as `write` renders it, line by line, on top of the start-up
    /// one: in an upgrade, the old pen's running configuration (so penctl changes survive).
    ///
    /// # Errors
    /// [`StartError::Command`] naming the first line refused.
    pub fn apply_running(&self, text: &str) -> Result<(), StartError> {
        let lines = text.lines().map(str::trim);
        for line in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
            (self.ctl.apply_line(line, ConfigSource::CommandLine)).map_err(|source| {
                StartError::Command {
                    command: line.to_string(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// The shared state, for tests and the fuzzing harness (no thread runs yet).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// A running balancer. Dropping the handle does not stop it; call [`Balancer::stop`].
pub struct Balancer {
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Arc<Controller>,
    pid_file: Option<PathBuf>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

impl Balancer {
    /// Binds the listener and control socket, runs the `-O` commands and the `-F` file, starts
    /// the workers: [`Balancer::bind`] then [`Bound::start`].
    ///
    /// # Errors
    /// [`StartError`] if a socket cannot be bound or a start-up command fails.
    pub fn start(config: Config) -> Result<Balancer, StartError> {
        Balancer::bind(config)?.start()
    }

    /// Applies one control line (as penctl would send it) and returns the reply text: empty, or
    /// lines each ending with a newline. The line is parsed, then [`Balancer::execute`]d.
    ///
    /// # Errors
    /// [`ApplyError`] naming the bad token; nothing changes.
    pub fn apply(&self, line: &str) -> Result<String, ApplyError> {
        self.ctl.apply_line(line, ConfigSource::Api)
    }

    /// Executes one control command given as data and returns its [`Reply`] (the text C pen
    /// would send to penctl). A configuration change goes through the same transaction as the
    /// control socket, `-O` and `-F`: it is applied as a whole or not at all. Queries read the
    /// running state.
    ///
    /// ```no_run
    /// use pen_core::control::command::ServerField;
    /// use pen_core::Command;
    /// # fn demo(balancer: &pen_core::Balancer) -> Result<(), pen_core::ApplyError> {
    /// // server 2 address 127.0.0.1 port 8083
    /// balancer.execute(Command::Server {
    ///     id: 2,
    ///     fields: vec![ServerField::Address("127.0.0.1".into()), ServerField::Port(8083)],
    /// })?;
    /// print!("{}", balancer.execute(Command::Servers)?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ApplyError`] naming the bad value; nothing changes.
    pub fn execute(&self, cmd: Command) -> Result<Reply, ApplyError> {
        self.ctl.execute(cmd).map(Reply::new)
    }

    /// The address the listener is bound to now (with the real port when started on port 0).
    pub fn listen_addr(&self) -> ListenAddr {
        self.shared.listen.lock().clone()
    }

    /// Subscribes to the balancer's [`Event`]s from now on: servers blacklisted and restored,
    /// failovers, configuration changes applied or refused, worker errors. Each subscriber has
    /// a queue of 1024 events; the balancer never waits for a subscriber: when its queue is
    /// full, further events are dropped for it and counted
    /// ([`CounterValues::events_dropped`](crate::CounterValues::events_dropped)). Dropping the
    /// receiver unsubscribes. ([`Config::subscribe`] also sees the start-up commands.)
    ///
    /// With no subscriber the events are not even built. While there is one, a thread looks
    /// at the server table once a second to report blacklistings that ran out.
    ///
    /// ```no_run
    /// # fn demo(balancer: &pen_core::Balancer) {
    /// let events = balancer.subscribe();
    /// std::thread::spawn(move || {
    ///     for event in events {
    ///         println!("{event}");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn subscribe(&self) -> mpsc::Receiver<Event> {
        let rx = self.shared.events.subscribe();
        if self.shared.running.load(Relaxed) {
            super::watch::start(&self.shared);
        }
        rx
    }

    /// The live settings (a copy): what the control commands have made of the
    /// [`Config`]'s.
    pub fn settings(&self) -> crate::Settings {
        self.shared.settings.read().clone()
    }

    /// The metrics listener's address (with the real port when bound to port 0), if any.
    pub fn metrics_addr(&self) -> Option<ListenAddr> {
        self.shared.metrics.clone()
    }

    /// The control socket's address, if there is one.
    pub fn control_addr(&self) -> Option<ListenAddr> {
        self.shared.control.lock().clone()
    }

    /// Open client connections right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Relaxed)
    }

    /// Blocks until the balancer has stopped (the `exit` command, or [`Balancer::stop`]), then
    /// removes the pid file.
    pub fn wait(&self) {
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            let mut stopped = self.shared.stopped.lock();
            while !*stopped {
                self.shared.stopped_cv.wait(&mut stopped);
            }
            return;
        }
        for t in threads {
            let _ = t.join();
        }
        self.ctl.checker.join();
        self.ctl.resolver.join();
        // The copies kept for an upgrade: once stopped nothing serves these ports, so the
        // kernel must refuse new connections instead of queueing them (a new binary, if any,
        // holds its own copies by now).
        *self.shared.handover.lock() = Default::default();
        // After an upgrade the pid file and the Unix sockets belong to the new process.
        let handed_over = self.shared.handed_over.load(Relaxed);
        if let Some(p) = self.pid_file.as_ref().filter(|_| !handed_over) {
            let _ = std::fs::remove_file(p);
        }
        // The Unix sockets pen created: a restart must find their paths free, since nothing
        // already at a path is ever taken over (sys::unix_socket).
        let control = self.shared.control.lock().clone();
        let listen = self.shared.listen.lock().clone();
        for addr in [Some(listen), control, self.shared.metrics.clone()] {
            if let Some(ListenAddr::Unix(p)) = addr.filter(|_| !handed_over) {
                let _ = std::fs::remove_file(p);
            }
        }
        *self.shared.stopped.lock() = true;
        self.shared.stopped_cv.notify_all();
    }

    /// Re-reads the `-F` config file and applies it on top of the running configuration, as a
    /// whole or not at all (SIGHUP, as C pen): what penctl changed stays unless the file sets
    /// it again; live connections are untouched; on error nothing changes. The command
    /// `reload_reset` starts from the command line instead.
    ///
    /// # Errors
    /// [`ApplyError`] with `FILE:LINE: reason`, or when there is no config file.
    pub fn reload(&self) -> Result<(), ApplyError> {
        self.ctl.reload()
    }

    /// Re-reads the TLS certificates, keys, CAs, SNI and OCSP files (SIGHUP, `ssl_reload`):
    /// new connections get the new certificate, live ones keep theirs. Returns `Ok(false)`
    /// when TLS is off.
    ///
    /// # Errors
    /// [`ApplyError::Tls`] naming the file and the problem; the old certificates stay.
    pub fn reload_tls(&self) -> Result<bool, ApplyError> {
        match &self.shared.tls {
            Some(t) => t.reload().map(|()| true).map_err(ApplyError::from),
            None => Ok(false),
        }
    }

    /// Whether a `-F` config file is in use (what [`Balancer::reload`] re-reads).
    pub fn has_config_file(&self) -> bool {
        self.ctl.config_file().is_some()
    }

    /// Reopens the access log (SIGHUP), so a rotated log file is replaced by a fresh one.
    ///
    /// # Errors
    /// [`ApplyError::Io`] if the log cannot be reopened (logging continues to the old file).
    pub fn reopen_log(&self) -> Result<(), ApplyError> {
        let log = self.shared.settings.read().log.clone();
        self.shared.log.reopen(log.as_deref())
    }

    /// Writes the HTML status page to the `web_stats` file, if one is set (SIGUSR1).
    ///
    /// # Errors
    /// [`ApplyError::Io`] if the file cannot be written.
    pub fn write_stats(&self) -> Result<(), ApplyError> {
        crate::admin::stats::write_web_stats(&self.shared)
    }

    /// A one-line summary of the state (logged on SIGUSR1): open connections and limit,
    /// servers up, and the main counters.
    pub fn summary(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let sh = &self.shared;
        let now = sh.now_ms();
        let (up, total) = {
            let t = sh.servers.read();
            let up = t.iter().filter(|(_, s)| s.in_service(now)).count();
            (up, t.len())
        };
        let c = &sh.counters;
        format!(
            "statistics: {} open connections (limit {}), {up} of {total} servers up, {} accepted, \
             {} failovers, {} blacklistings, {} refused by ACL, {} with no server",
            sh.active.load(Relaxed),
            sh.conn_max.load(Relaxed),
            c.accepted.load(Relaxed),
            c.failovers.load(Relaxed),
            c.blacklistings.load(Relaxed),
            c.refused_acl.load(Relaxed),
            c.no_server.load(Relaxed),
        )
    }

    /// The state right now as plain data: servers (address, limits, weight, prio, connections,
    /// bytes, blacklisting), tracked clients (all of them: the table holds at most `-c`),
    /// counters, settings, addresses, open connections and their limit, uptime. The same
    /// values the status page and the metrics show.
    ///
    /// ```no_run
    /// # fn demo(balancer: &pen_core::Balancer) {
    /// let status = balancer.snapshot();
    /// for (id, s) in status.servers.iter().enumerate() {
    ///     let state = match s.blacklist_left {
    ///         Some(left) => format!("blacklisted, {left} s left"),
    ///         None => "up".to_string(),
    ///     };
    ///     println!("{id} {:?} {} conns, {} bytes sent: {state}", s.addr, s.conns, s.sent);
    /// }
    /// println!("{} of {} connections open", status.active, status.conn_max);
    /// # }
    /// ```
    pub fn snapshot(&self) -> crate::Status {
        crate::admin::stats::Status::take(&self.shared, usize::MAX)
    }

    /// The HTML status page (the `status` command).
    pub fn status(&self) -> String {
        crate::admin::stats::status_html(&self.shared)
    }

    /// The counters in the Prometheus text format (the `metrics` command).
    pub fn metrics(&self) -> String {
        crate::admin::metrics::render(&self.shared)
    }

    /// Asks the balancer to stop and returns at once; [`Balancer::wait`] returns when it has.
    /// Safe to call from any thread (e.g. a signal-handling thread).
    pub fn request_stop(&self) {
        self.shared.request_stop();
    }

    /// Stops accepting, closes every connection, and waits for the workers to finish.
    pub fn stop(&self) {
        self.shared.request_stop();
        self.wait();
    }
}
