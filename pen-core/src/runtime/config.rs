//! Configuration as plain data: what the command line (or an embedding program) sets before start.
//!
//! [`Settings`] are the knobs that control commands can change while running; [`Config`] adds what
//! is fixed at start (sockets, table sizes, worker count). Defaults follow C pen (PEN-SPEC 1).

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use crate::domain::event::Event;
use crate::domain::health::HealthSource;
use crate::domain::policy::Policy;
use crate::engine::events::EventHub;

use crate::control::level::Level;
use crate::domain::addr::{ListenAddr, ServerSpec};
use crate::domain::settings::{Settings, Splice};

/// Which engine relays TCP connections (`--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineKind {
    /// Readiness (epoll, or the portable poller) and one system call per read, write, accept
    /// and connect: the default, and the engine of everything.
    #[default]
    Epoll,
    /// io_uring (Linux): plain TCP relaying with one `io_uring_enter` per loop iteration; the
    /// epoll engine runs instead where it is not available or where a feature it lacks is on
    /// (docs/io_uring.md).
    Uring,
}

/// Everything needed to start a balancer: [`Config::new`] gives C pen's defaults; change them
/// with the `with_*` methods (or by assigning the public fields).
///
/// ```
/// use pen_core::addr::{parse_listen, parse_server};
/// use pen_core::{Config, Settings};
///
/// let config = Config::new(parse_listen("127.0.0.1:8080")?, vec![parse_server("10.0.0.1:80", 80)?])
///     .with_control(parse_listen("127.0.0.1:10080")?)
///     .with_conn_max(2000)
///     .with_workers(4)
///     .with_settings(Settings::default().with_roundrobin(true).with_blacklist_secs(10))
///     .with_command("server 1 address 10.0.0.2 port 80");
/// assert_eq!(config.conn_max, 2000);
/// # Ok::<(), pen_core::AddrError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Where clients connect.
    pub listen: ListenAddr,
    /// Servers, numbered from 0 in this order.
    pub servers: Vec<ServerSpec>,
    /// Emergency server (`-e`), used only when no regular server is available.
    pub emergency: Option<ServerSpec>,
    /// Control socket (`-C`).
    pub control: Option<ListenAddr>,
    /// The control socket's access level (`--control-level`); `None`: [`default_level`] for
    /// its address (admin on a Unix socket or a loopback address, operate elsewhere).
    pub control_level: Option<Level>,
    /// Owner (uid, gid) to give a Unix control socket: the `-u` user, so that it can still use
    /// the socket after pen drops privileges. `None`: the process's own.
    pub control_owner: Option<(u32, u32)>,
    /// Group whose members may use a Unix control socket (`--control-group`): mode 0660 and
    /// that group instead of 0600.
    pub control_group: Option<u32>,
    /// Live-changeable settings.
    pub settings: Settings,
    /// Client table slots (`-c`) (default 2048).
    pub clients_max: usize,
    /// Max simultaneous connections (`-x`) (default 500).
    pub conn_max: usize,
    /// Listen backlog (`-q`) (default 500).
    pub backlog: i32,
    /// Connections accepted per readiness event per worker (`-m`) (default 100).
    pub accept_batch: usize,
    /// Worker threads; 0 = one per CPU (`-N` is taken by C pen, so `--workers`/`PEN_WORKERS`).
    pub workers: usize,
    /// Whether the `exit` control command is enabled (`-X`).
    pub exit_enabled: bool,
    /// Pid file to remove on exit (`-p`); the binary writes it.
    pub pid_file: Option<PathBuf>,
    /// The `-F` config file, the default target of `write`.
    pub config_file: Option<PathBuf>,
    /// Commands run at start, in order (`-O`).
    pub commands: Vec<String>,
    /// UDP instead of TCP (`-U`).
    pub udp: bool,
    /// Abuse server (`-B`): where clients denied by the client ACL go (none: they are closed).
    pub abuse: Option<ServerSpec>,
    /// Listener for the Prometheus `/metrics` HTTP endpoint (`--metrics ADDR`) \[ours\].
    pub metrics: Option<ListenAddr>,
    /// When to relay between TCP sockets with zero-copy `splice` (Linux) (default `Splice::Auto`).
    pub splice: Splice,
    /// TLS termination on the listener (`-E` and friends); `None`: plain TCP.
    pub tls: Option<crate::tls::TlsOptions>,
    /// The relay engine of the TCP workers (`--engine`) (default `EngineKind::Epoll`).
    pub engine: EngineKind,
    /// `-f` was given. The binary acts on it; `write` shows it (C pen's second comment line).
    pub foreground: bool,
    /// `-j DIR` as given. The binary acts on it; `write` shows it.
    pub chroot: Option<PathBuf>,
    /// `-u USER` as given. The binary acts on it; `write` shows it.
    pub user: Option<String>,
    /// Where the balancer started from this config reports its events (shared by clones).
    pub(crate) events: Arc<EventHub>,
    /// The selection policy; `None`: the built-in modes.
    pub(crate) policy: Option<Arc<dyn Policy>>,
    /// An external view of which servers are up; `None`: all are, as far as it goes.
    pub(crate) health: Option<Arc<dyn HealthSource>>,
}

impl Config {
    /// A config with C pen's defaults, listening on `listen` and balancing over `servers`.
    pub fn new(listen: ListenAddr, servers: Vec<ServerSpec>) -> Self {
        Config {
            listen,
            servers,
            emergency: None,
            control: None,
            control_level: None,
            control_owner: None,
            control_group: None,
            settings: Settings::default(),
            clients_max: 2048,
            conn_max: 500,
            backlog: 500,
            accept_batch: 100,
            workers: 0,
            exit_enabled: false,
            pid_file: None,
            config_file: None,
            commands: Vec::new(),
            metrics: None,
            udp: false,
            abuse: None,
            splice: Splice::Auto,
            tls: None,
            engine: EngineKind::Epoll,
            foreground: false,
            chroot: None,
            user: None,
            events: Arc::default(),
            policy: None,
            health: None,
        }
    }

    /// The control socket (`-C`).
    #[must_use]
    pub fn with_control(mut self, control: ListenAddr) -> Self {
        self.control = Some(control);
        self
    }

    /// The listener for the Prometheus `/metrics` endpoint (`--metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: ListenAddr) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The emergency server (`-e`), used only when no regular server is available.
    #[must_use]
    pub fn with_emergency(mut self, server: ServerSpec) -> Self {
        self.emergency = Some(server);
        self
    }

    /// The abuse server (`-B`), where clients the client ACL denies go.
    #[must_use]
    pub fn with_abuse(mut self, server: ServerSpec) -> Self {
        self.abuse = Some(server);
        self
    }

    /// The live-changeable settings to start with.
    #[must_use]
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Client table slots (`-c`).
    #[must_use]
    pub fn with_clients_max(mut self, n: usize) -> Self {
        self.clients_max = n;
        self
    }

    /// Max simultaneous connections (`-x`).
    #[must_use]
    pub fn with_conn_max(mut self, n: usize) -> Self {
        self.conn_max = n;
        self
    }

    /// Listen backlog (`-q`).
    #[must_use]
    pub fn with_backlog(mut self, n: i32) -> Self {
        self.backlog = n;
        self
    }

    /// Worker threads (0: one per CPU).
    #[must_use]
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Whether the `exit` control command is enabled (`-X`).
    #[must_use]
    pub fn with_exit_enabled(mut self, enabled: bool) -> Self {
        self.exit_enabled = enabled;
        self
    }

    /// The `-F` config file: applied at start after the commands, re-read by
    /// [`Balancer::reload`](crate::Balancer::reload), the default target of `write`.
    #[must_use]
    pub fn with_config_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.config_file = Some(file.into());
        self
    }

    /// Appends a start-up command (`-O`): a control line applied before the config file.
    #[must_use]
    pub fn with_command(mut self, line: impl Into<String>) -> Self {
        self.commands.push(line.into());
        self
    }

    /// UDP instead of TCP (`-U`).
    #[must_use]
    pub fn with_udp(mut self, udp: bool) -> Self {
        self.udp = udp;
        self
    }

    /// When to relay with zero-copy `splice` (Linux).
    #[must_use]
    pub fn with_splice(mut self, splice: Splice) -> Self {
        self.splice = splice;
        self
    }

    /// TLS termination on the listener (`-E` and friends).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Selects servers with `policy` instead of the built-in modes (tracking, prio, weight,
    /// hash, round robin). Its answers are checked: an unavailable server is never used (see
    /// [`policy::choose`](crate::policy::choose)). Failover follows the policy's
    /// [`next_after`](Policy::next_after), by default the built-in order.
    #[must_use]
    pub fn with_policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Consults `health` whenever a server's availability is decided, in addition to the
    /// blacklist: a server it reports down takes no new client.
    #[must_use]
    pub fn with_health(mut self, health: Arc<dyn HealthSource>) -> Self {
        self.health = Some(health);
        self
    }

    /// Subscribes to the [`Event`]s of the balancer that will be started from this config,
    /// including those of its start-up commands (`-O`) and config file (`-F`). Clones of the
    /// config share the subscribers. See [`Balancer::subscribe`](crate::Balancer::subscribe).
    pub fn subscribe(&self) -> Receiver<Event> {
        self.events.subscribe()
    }
}

/// The access level a control endpoint at `addr` gets when none is set: admin on a Unix socket
/// (its file mode says who may connect) and on a loopback address, operate elsewhere.
pub fn default_level(addr: &ListenAddr) -> Level {
    match addr {
        ListenAddr::Unix(_) => Level::Admin,
        ListenAddr::Inet(a) if a.ip().is_loopback() => Level::Admin,
        ListenAddr::Inet(_) => Level::Operate,
    }
}

/// The level of the control endpoint of `config`, if it has one.
pub(crate) fn control_level(config: &Config) -> Option<Level> {
    let addr = config.control.as_ref()?;
    Some(config.control_level.unwrap_or_else(|| default_level(addr)))
}
