//! The running balancer: start it from a [`Config`], apply control commands, stop it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::poll::Poller;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::control::{Command, Level, Reply};
use crate::domain::acl::AclSet;
use crate::domain::addr::ListenAddr;
use crate::domain::clients::ClientTable;
use crate::domain::clock::Clock;
use crate::domain::event::{ConfigSource, Event, Worker};
use crate::domain::server::ServerTable;
use crate::engine::events::EventHub;
use crate::engine::net::Listener;
use crate::engine::reactor::Worker as Relay;
use crate::engine::state::{Counters, Shared, WorkerLink, WorkerMsg};
use crate::error::{ApplyError, StartError};
use crate::runtime::config::Config;
use crate::runtime::controller::Controller;
use crate::runtime::listeners::{adopt_data, adopt_endpoint, bind_endpoint, bind_listeners};
use crate::sys;

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

    /// Opens the access log unless [`Bound::open_log`] did, then starts the worker threads, the
    /// control thread and the metrics listener.
    ///
    /// # Errors
    /// [`StartError`] if the log cannot be opened or a thread cannot be started.
    pub fn start(mut self) -> Result<Balancer, StartError> {
        if !self.log_open {
            self.open_log()?;
        }
        let Bound {
            shared,
            ctl,
            pid_file,
            ends,
            listeners,
            udp,
            control,
            metrics,
            log_open: _,
            engine,
        } = self;
        // (Logs why not when the epoll engine runs instead; always so in builds without it.)
        #[cfg_attr(
            not(all(target_os = "linux", not(feature = "portable-poller"))),
            allow(unused_variables)
        )]
        let uring = use_uring(engine, &shared);
        let mut threads = Vec::with_capacity(ends.len() + 2);
        let mut udp = udp.into_iter();
        for (i, ((poller, rx), l)) in ends.into_iter().zip(listeners).enumerate() {
            if let Some(sock) = udp.next() {
                let sh = Arc::clone(&shared);
                let worker = crate::engine::udp::UdpWorker::new(i, sh, poller, rx, sock)
                    .map_err(io_err("cannot start UDP worker"))?;
                let events = Arc::clone(&shared.events);
                let t = std::thread::Builder::new()
                    .name(format!("pen-udp-{i}"))
                    .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                    .map_err(io_err("cannot start worker thread"))?;
                threads.push(t);
                continue;
            }
            #[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
            if uring {
                let sh = Arc::clone(&shared);
                let worker = crate::engine::uring::UringWorker::new(i, sh, poller, rx, l)
                    .map_err(io_err("cannot start io_uring worker"))?;
                let events = Arc::clone(&shared.events);
                let t = std::thread::Builder::new()
                    .name(format!("pen-uring-{i}"))
                    .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                    .map_err(io_err("cannot start worker thread"))?;
                threads.push(t);
                continue;
            }
            // TCP, or a UDP worker's place where the platform gave it no socket of its own
            // (it idles, like the workers without a listener behind a Unix socket).
            let worker = Relay::new(i, Arc::clone(&shared), poller, rx, l)
                .map_err(io_err("cannot start worker"))?;
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name(format!("pen-worker-{i}"))
                .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                .map_err(io_err("cannot start worker thread"))?;
            threads.push(t);
        }
        if let Some((l, level)) = control {
            let sh = Arc::clone(&shared);
            let c = Arc::clone(&ctl);
            let exec: crate::admin::control::Execute =
                Box::new(move |line| c.apply_line(line, ConfigSource::ControlSocket));
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name("pen-control".into())
                .spawn(move || {
                    guarded(&events, Worker::ControlSocket, || {
                        crate::admin::control::serve(sh, l, exec, level);
                    });
                })
                .map_err(io_err("cannot start control thread"))?;
            threads.push(t);
        }
        if let Some(l) = metrics {
            let sh = Arc::clone(&shared);
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name("pen-metrics".into())
                .spawn(move || {
                    guarded(&events, Worker::Metrics, || {
                        crate::admin::metrics_http::serve_http(sh, l);
                    });
                })
                .map_err(io_err("cannot start metrics thread"))?;
            threads.push(t);
        }
        // From now on the workers answer messages: `listen` may wait for them.
        shared.running.store(true, Relaxed);
        // The active health checker (runtime/checker.rs): a thread only while a check exists.
        ctl.checker.ensure(&shared);
        // The resolver thread (runtime/dns): only while a server has a host name.
        ctl.resolver.ensure(&shared);
        // Subscribed through the Config: blacklistings running out are watched from now on.
        super::watch::start(&shared);
        Ok(Balancer {
            shared,
            ctl,
            pid_file,
            threads: Mutex::new(threads),
        })
    }
}

/// A running balancer. Dropping the handle does not stop it; call [`Balancer::stop`].
pub struct Balancer {
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Arc<Controller>,
    pid_file: Option<PathBuf>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Whether the TCP workers run the io_uring engine: when it is asked for, the kernel has it,
/// and nothing it does not do is on (else the epoll engine runs, and a log line says why).
fn use_uring(engine: crate::runtime::config::EngineKind, shared: &Shared) -> bool {
    if engine != crate::runtime::config::EngineKind::Uring {
        return false;
    }
    let why: Option<String> = if shared.udp {
        Some("UDP (-U)".into())
    } else if shared.tls.is_some() {
        Some("TLS (-E)".into())
    } else {
        uring_unsupported(shared)
    };
    match why {
        Some(why) => {
            log::warn!(
                "--engine uring: {why} is on, which the io_uring engine does not do: using epoll"
            );
            false
        }
        None => true,
    }
}

#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
fn uring_unsupported(shared: &Shared) -> Option<String> {
    // One lock at a time (never the settings' while taking the servers').
    let proxy = shared.servers.read().sends_proxy();
    let settings = shared.settings.read();
    if let Some(why) = crate::engine::uring::unsupported(&settings, shared.log.enabled(), proxy) {
        return Some(why.to_string());
    }
    crate::sys::uring::probe()
        .err()
        .map(|e| format!("io_uring ({e})"))
}

#[cfg(not(all(target_os = "linux", not(feature = "portable-poller"))))]
fn uring_unsupported(_: &Shared) -> Option<String> {
    Some("this build (io_uring needs Linux and the epoll poller)".into())
}

/// Runs the body of a balancer thread. Should it panic (a bug), the panic hook has printed the
/// message; the thread's end is reported as a worker error and the others carry on.
fn guarded(events: &EventHub, worker: Worker, body: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        events.worker_error(worker, &format_args!("thread stopped by a panic: {msg}"));
    }
}

/// A Unix control socket's mode and owner: 0600 for the user pen runs as (the `-u` user), or
/// 0660 with `--control-group`'s group.
fn control_access(config: &Config) -> Option<crate::sys::SocketAccess> {
    let (uid, gid) = match config.control_owner {
        Some((u, g)) => (Some(u), Some(g)),
        None => (None, None),
    };
    Some(crate::sys::SocketAccess {
        mode: if config.control_group.is_some() {
            0o660
        } else {
            0o600
        },
        uid,
        gid: config.control_group.or(gid),
    })
}

/// Warns at start when an endpoint listens on an address other hosts can reach.
fn warn_if_exposed(what: &str, bound: &ListenAddr, level: &str) {
    if let ListenAddr::Inet(a) = bound {
        if !a.ip().is_loopback() {
            log::warn!(
                "{what} on {a} is not on a loopback address: whoever reaches it and passes its \
                 ACL has {level} access"
            );
        }
    }
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

    /// Everything that can fail at start, without starting a thread: binds the listener, the
    /// control socket and the metrics listener, applies the `-O` commands and the `-F` file.
    /// A daemon forks between this and [`Bound::start`], so start-up errors reach the terminal.
    ///
    /// # Errors
    /// [`StartError`]: a socket cannot be bound, a command fails, or the config file has an
    /// error (`FILE:LINE: reason`).
    pub fn bind(config: Config) -> Result<Bound, StartError> {
        Balancer::bind_with_clock(config, Arc::new(super::clock::SystemClock::new()), None)
    }

    /// [`Balancer::bind`] in a new binary started by an upgrade: the listening sockets
    /// `inherited` holds (data, control, metrics) are used instead of binding new ones, when
    /// they are of the kind the configuration asks for; the others are bound as usual.
    ///
    /// # Errors
    /// As [`Balancer::bind`].
    pub fn bind_inherited(
        config: Config,
        inherited: &mut super::upgrade::Inherited,
    ) -> Result<Bound, StartError> {
        // The old pen's scale goes on, so the times carried over (a client seen a minute ago)
        // fit on this one's.
        let clock = Arc::new(super::clock::SystemClock::continuing(inherited.clock_ms()));
        Balancer::bind_with_clock(config, clock, Some(inherited))
    }

    /// [`Balancer::bind`] with the time source the workers and the control plane read (the
    /// system clock by default; a `ManualClock` in simulations).
    ///
    /// # Errors
    /// As [`Balancer::bind`].
    pub(crate) fn bind_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
        mut inherited: Option<&mut super::upgrade::Inherited>,
    ) -> Result<Bound, StartError> {
        let n = if config.workers == 0 {
            sys::cpus()
        } else {
            config.workers
        };
        if config.udp && config.tls.is_some() {
            return Err(StartError::Config(
                "TLS (-E) terminates TCP connections; it cannot be used with UDP (-U)".to_string(),
            ));
        }
        // Certificates first: a bad file is refused before any socket is bound.
        let tls = config.tls.clone().map(crate::tls::Tls::new).transpose()?;
        let listen_err = io_err(format!("cannot listen on '{}'", config.listen));
        let from_parent = inherited
            .as_deref_mut()
            .and_then(|i| i.take_data(&config.listen, config.udp));
        let (listeners, udp, bound) = if let Some(fds) = from_parent {
            adopt_data(fds, &config, n).map_err(listen_err)?
        } else if config.udp {
            let (socks, bound) = crate::engine::udp::bind(&config.listen, n).map_err(listen_err)?;
            (
                std::iter::repeat_with(|| None).take(n).collect(),
                socks,
                bound,
            )
        } else {
            let (ls, bound) =
                bind_listeners(&config.listen, n, config.backlog, true).map_err(listen_err)?;
            (ls, Vec::new(), bound)
        };
        let control = match &config.control {
            Some(c) => {
                let got = inherited.as_deref_mut().and_then(|i| i.take_control());
                let (l, bound) = adopt_endpoint(got, c)
                    .unwrap_or_else(|| bind_endpoint(c, control_access(&config)))
                    .map_err(io_err(format!("cannot open control socket '{c}'")))?;
                let level = super::config::control_level(&config).unwrap_or(Level::Admin);
                warn_if_exposed("control socket", &bound, &format!("level {level}"));
                Some((l, bound, level))
            }
            None => None,
        };
        let metrics = match &config.metrics {
            Some(m) => {
                let got = inherited.and_then(|i| i.take_metrics());
                let (l, bound) = adopt_endpoint(got, m)
                    .unwrap_or_else(|| bind_endpoint(m, None))
                    .map_err(io_err(format!("cannot open metrics listener '{m}'")))?;
                warn_if_exposed("metrics listener", &bound, "read-only");
                Some((l, bound))
            }
            None => None,
        };
        let (metrics, metrics_addr) = match metrics {
            Some((l, a)) => (l, Some(a)),
            None => (None, None),
        };
        let mut links = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        for _ in 0..n {
            let poller = Arc::new(Poller::new().map_err(io_err("cannot create poller"))?);
            let (tx, rx) = mpsc::channel();
            links.push(WorkerLink {
                poller: Arc::clone(&poller),
                tx,
            });
            ends.push((poller, rx));
        }
        // Copies for a later upgrade (`runtime::upgrade`).
        let handover = crate::engine::state::ListenFds {
            data: listeners
                .iter()
                .flatten()
                .map(super::listeners::dup_listener)
                .chain(
                    udp.iter()
                        .map(|u| std::os::fd::AsFd::as_fd(u).try_clone_to_owned()),
                )
                .collect::<std::io::Result<_>>()
                .map_err(io_err("cannot keep the listening sockets"))?,
            control: control
                .as_ref()
                .and_then(|c| c.0.as_ref())
                .map(super::listeners::dup_listener)
                .transpose()
                .map_err(io_err("cannot keep the control socket"))?,
            metrics: metrics
                .as_ref()
                .map(super::listeners::dup_listener)
                .transpose()
                .map_err(io_err("cannot keep the metrics listener"))?,
        };
        let shared = Arc::new(Shared {
            settings: RwLock::new(config.settings.clone()),
            servers: RwLock::new({
                let mut t = ServerTable::new(&config.servers, config.emergency.as_ref());
                t.set_abuse(config.abuse.as_ref());
                t
            }),
            clients: Mutex::new(ClientTable::new(config.clients_max)),
            acls: RwLock::new(AclSet::default()),
            rr: AtomicUsize::new(usize::MAX),
            active: AtomicUsize::new(0),
            conn_max: AtomicUsize::new(config.conn_max.max(1)),
            accept_batch: config.accept_batch.max(1),
            backlog: config.backlog,
            exit_enabled: config.exit_enabled,
            splice: config.splice,
            stopping: AtomicBool::new(false),
            running: AtomicBool::new(false),
            udp: config.udp,
            listen: Mutex::new(bound),
            control: Mutex::new(control.as_ref().map(|c| c.1.clone())),
            workers: links,
            counters: Counters::default(),
            per_client: Default::default(),
            started_ms: clock.now_ms(),
            clock,
            metrics: metrics_addr,
            log: crate::engine::accesslog::AccessLog::default(),
            tls,
            events: Arc::clone(&config.events),
            policy: config
                .policy
                .clone()
                .unwrap_or_else(|| Arc::new(crate::domain::policy::DefaultPolicy)),
            health: config.health.clone(),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            draining: AtomicBool::new(false),
            handover: Mutex::new(handover),
            handed_over: AtomicBool::new(false),
            lifecycle_busy: AtomicBool::new(false),
            upgrade_spec: Mutex::new(None),
        });
        let ctl = Arc::new(
            Controller::new(Arc::clone(&shared), config.config_file.clone()).with_start(&config),
        );
        ctl.resolver.bind(&ctl);
        for cmd in &config.commands {
            ctl.apply_line(cmd, ConfigSource::CommandLine)
                .map_err(|source| StartError::Command {
                    command: cmd.clone(),
                    source,
                })?;
        }
        if let Some(file) = &config.config_file {
            ctl.apply_file(file).map_err(StartError::ConfigFile)?;
        }
        // The access log (`-l`) is opened by `Bound::open_log` (before a daemon forks, or after
        // a chroot) or else by `Bound::start`.
        Ok(Bound {
            shared,
            ctl,
            pid_file: config.pid_file.clone(),
            ends,
            listeners,
            udp,
            control: control.and_then(|(l, _, level)| l.map(|l| (l, level))),
            metrics,
            log_open: false,
            engine: config.engine,
        })
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
