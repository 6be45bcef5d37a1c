//! Binding a balancer: the data, control and metrics sockets (new or inherited in an
//! upgrade), the shared state, and the start-up commands (`-O`, `-F`), all before any thread
//! starts.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{mpsc, Arc};

use crate::poll::Poller;
use parking_lot::{Condvar, Mutex, RwLock};

use super::{io_err, Balancer, Bound};
use crate::control::Level;
use crate::domain::acl::AclSet;
use crate::domain::addr::ListenAddr;
use crate::domain::clients::ClientTable;
use crate::domain::clock::Clock;
use crate::domain::event::ConfigSource;
use crate::domain::server::ServerTable;
use crate::engine::state::{Counters, Shared, WorkerLink};
use crate::error::StartError;
use crate::runtime::config::Config;
use crate::runtime::controller::Controller;
use crate::runtime::listeners::{adopt_data, adopt_endpoint, bind_endpoint, bind_listeners};
use crate::sys;

impl Balancer {
    /// Everything that can fail at start, without starting a thread: binds the listener, the
    /// control socket and the metrics listener, applies the `-O` commands and the `-F` file.
    /// A daemon forks between this and [`Bound::start`], so start-up errors reach the terminal.
    ///
    /// # Errors
    /// [`StartError`]: a socket cannot be bound, a command fails, or the config file has an
    /// error (`FILE:LINE: reason`).
    pub fn bind(config: Config) -> Result<Bound, StartError> {
        Balancer::bind_with_clock(
            config,
            Arc::new(crate::runtime::clock::SystemClock::new()),
            None,
        )
    }

    /// [`Balancer::bind`] in a new binary started by an upgrade: the listening sockets
    /// `inherited` holds (data, control, metrics) are used instead of binding new ones, when
    /// they are of the kind the configuration asks for; the others are bound as usual.
    ///
    /// # Errors
    /// As [`Balancer::bind`].
    pub fn bind_inherited(
        config: Config,
        inherited: &mut crate::runtime::upgrade::Inherited,
    ) -> Result<Bound, StartError> {
        // The old pen's scale goes on, so the times carried over (a client seen a minute ago)
        // fit on this one's.
        let clock = Arc::new(crate::runtime::clock::SystemClock::continuing(
            inherited.clock_ms(),
        ));
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
        mut inherited: Option<&mut crate::runtime::upgrade::Inherited>,
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
                let level = crate::runtime::config::control_level(&config).unwrap_or(Level::Admin);
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
                .map(crate::runtime::listeners::dup_listener)
                .chain(
                    udp.iter()
                        .map(|u| std::os::fd::AsFd::as_fd(u).try_clone_to_owned()),
                )
                .collect::<std::io::Result<_>>()
                .map_err(io_err("cannot keep the listening sockets"))?,
            control: control
                .as_ref()
                .and_then(|c| c.0.as_ref())
                .map(crate::runtime::listeners::dup_listener)
                .transpose()
                .map_err(io_err("cannot keep the control socket"))?,
            metrics: metrics
                .as_ref()
                .map(crate::runtime::listeners::dup_listener)
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
