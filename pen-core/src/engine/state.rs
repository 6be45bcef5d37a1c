//! State shared by the workers and the control plane: tables behind parking_lot locks,
//! counters atomic. Workers read it on accept and close; the control plane changes it.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};

use crate::poll::Poller;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::domain::acl::AclSet;
use crate::domain::addr::ListenAddr;
use crate::domain::clients::ClientTable;
use crate::domain::clock::Clock;
use crate::domain::policy::Modes;
use crate::domain::server::ServerTable;
use crate::domain::settings::Settings;
use crate::engine::net::Listener;

pub(crate) use crate::engine::messages::ConnRow;

/// Requests from the control plane to one worker (TCP or UDP).
pub(crate) enum WorkerMsg {
    /// Replace the listener (`None`: this worker has none, e.g. for a Unix socket); the
    /// sender, if any, hears when the old one is closed.
    Listen(Option<Listener>, Option<mpsc::Sender<()>>),
    /// Close connection in this slot.
    Close(usize),
    /// Describe the connection in this slot.
    Describe(usize, mpsc::Sender<Option<String>>),
    /// Which connection (slot) owns this file descriptor?
    FindSocket(RawFd, mpsc::Sender<Option<usize>>),
    /// The open connections, for the status page.
    List(mpsc::Sender<Vec<ConnRow>>),
    /// Binary upgrade: stop relaying the connections that can move and send them back.
    HandOff(mpsc::Sender<Vec<crate::engine::reactor::handoff::Moved>>),
    /// Take in a connection handed over by the pen this one replaced.
    Adopt(Box<crate::engine::reactor::handoff::Moved>),
}

/// The way into one worker: its poller (to wake it) and its message channel.
pub(crate) struct WorkerLink {
    pub(crate) poller: Arc<Poller>,
    pub(crate) tx: mpsc::Sender<WorkerMsg>,
}

impl WorkerLink {
    /// Sends `msg` and wakes the worker.
    pub(crate) fn send(&self, msg: WorkerMsg) -> bool {
        self.tx.send(msg).is_ok() && self.poller.notify().is_ok()
    }
}

/// Counters for the status page and the metrics (bytes and per-server figures live in the
/// server table; open connections in `Shared::active`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Client connections accepted.
    pub(crate) accepted: AtomicU64,
    /// Clients closed at once because the client ACL denied them.
    pub(crate) refused_acl: AtomicU64,
    /// Clients closed at accept because their address had `conn_per_client` connections open.
    pub(crate) refused_per_client: AtomicU64,
    /// Clients closed because they did not send their first bytes (`connect_on_data`) or,
    /// under `-H`, a whole request head within `request_timeout`.
    pub(crate) request_timeouts: AtomicU64,
    /// Clients closed because no server (nor the emergency server) was available.
    pub(crate) no_server: AtomicU64,
    /// Connections moved to another server after a failed connect.
    pub(crate) failovers: AtomicU64,
    /// Servers blacklisted after a failed connect.
    pub(crate) blacklistings: AtomicU64,
    /// Connects that timed out.
    pub(crate) connect_timeouts: AtomicU64,
    /// Connections closed by `idle_timeout`.
    pub(crate) idle_timeouts: AtomicU64,
    /// HTTP-mode requests refused with 431 (a head over the size or header-count limit).
    pub(crate) http_oversized: AtomicU64,
    /// Times a worker stopped accepting at the `-x` limit, plus UDP datagrams of a new flow
    /// dropped at the limit because no source held more than one flow to give up.
    pub(crate) accept_pauses: AtomicU64,
    /// Control-socket commands served.
    pub(crate) control_commands: AtomicU64,
    /// Control-socket commands answered with an error.
    pub(crate) control_errors: AtomicU64,
    /// PROXY protocol headers read and refusals by reason (issue 14).
    pub(crate) proxy: crate::engine::reactor::proxy::ProxyCounters,
}

/// Everything shared.
pub(crate) struct Shared {
    pub(crate) settings: RwLock<Settings>,
    pub(crate) servers: RwLock<ServerTable>,
    pub(crate) clients: Mutex<ClientTable>,
    pub(crate) acls: RwLock<AclSet>,
    /// Round-robin cursor: the last server chosen.
    pub(crate) rr: AtomicUsize,
    /// Open client connections (all workers).
    pub(crate) active: AtomicUsize,
    /// The `-x` limit.
    pub(crate) conn_max: AtomicUsize,
    pub(crate) accept_batch: usize,
    pub(crate) backlog: i32,
    pub(crate) exit_enabled: bool,
    /// When to relay TCP-to-TCP with `splice` (Linux).
    pub(crate) splice: crate::domain::settings::Splice,
    pub(crate) stopping: AtomicBool,
    /// UDP mode (`-U`).
    pub(crate) udp: bool,
    /// The worker threads run (before that, messages to them only queue).
    pub(crate) running: AtomicBool,
    /// The address the listener is bound to now.
    pub(crate) listen: Mutex<ListenAddr>,
    /// The control socket's address.
    pub(crate) control: Mutex<Option<ListenAddr>>,
    pub(crate) workers: Vec<WorkerLink>,
    pub(crate) counters: Counters,
    /// Open connections per client address, for `conn_per_client`.
    pub(crate) per_client: crate::engine::per_client::PerClient,
    /// The time source of the workers and the control plane.
    pub(crate) clock: Arc<dyn Clock>,
    /// When this balancer was bound (`clock.now_ms()`), for its uptime.
    pub(crate) started_ms: u64,
    /// The metrics listener's address, if any.
    pub(crate) metrics: Option<ListenAddr>,
    /// The access log target.
    pub(crate) log: crate::engine::accesslog::AccessLog,
    /// TLS termination, when on (fixed at start; certificates and settings reload).
    pub(crate) tls: Option<crate::tls::Tls>,
    /// The selection policy (the built-in modes unless the embedder plugged one in).
    pub(crate) policy: Arc<dyn crate::domain::policy::Policy>,
    /// An external view of which servers are up, if the embedder plugged one in.
    pub(crate) health: Option<Arc<dyn crate::domain::health::HealthSource>>,
    /// Where events are reported (shared with the [`Config`](crate::Config) it started from).
    pub(crate) events: Arc<crate::engine::events::EventHub>,
    /// Set (with the condvar notified) once the balancer has stopped.
    pub(crate) stopped: Mutex<bool>,
    pub(crate) stopped_cv: Condvar,
    /// Graceful shutdown or upgrade under way: the listeners are closed, connections finish.
    pub(crate) draining: AtomicBool,
    /// Copies of the listening sockets, to hand to a new binary (`runtime::upgrade`).
    pub(crate) handover: Mutex<ListenFds>,
    /// The listening sockets now belong to a new binary: the control and metrics threads
    /// stop, and the Unix socket files are left for it at exit.
    pub(crate) handed_over: AtomicBool,
    /// A shutdown or upgrade is under way (one at a time).
    pub(crate) lifecycle_busy: AtomicBool,
    /// How to start a new binary (`upgrade`), when the program said.
    pub(crate) upgrade_spec: Mutex<Option<UpgradeSpec>>,
}

/// How to start a new binary for an upgrade: the path pen was started from, its arguments
/// and the directory it was started in (a daemon's own is `/`).
#[derive(Debug, Clone)]
pub struct UpgradeSpec {
    /// The binary's path, as resolved at start (re-read from disk at each upgrade).
    pub exe: std::path::PathBuf,
    /// The arguments (without the program name).
    pub args: Vec<std::ffi::OsString>,
    /// The working directory to start it in.
    pub cwd: Option<std::path::PathBuf>,
}

/// Copies (`dup`) of the listening sockets, in the order a new binary receives them.
#[derive(Debug, Default)]
pub(crate) struct ListenFds {
    /// The data listeners: one per worker for TCP and UDP, one for a Unix socket.
    pub(crate) data: Vec<std::os::fd::OwnedFd>,
    /// The control socket.
    pub(crate) control: Option<std::os::fd::OwnedFd>,
    /// The metrics listener.
    pub(crate) metrics: Option<std::os::fd::OwnedFd>,
}

impl Shared {
    /// The selection modes in force.
    pub(crate) fn modes(s: &Settings) -> Modes {
        Modes::of(s)
    }

    /// Wakes every worker (after a slot frees at the connection limit, or to stop).
    pub(crate) fn wake_all(&self) {
        for w in &self.workers {
            let _ = w.poller.notify();
        }
    }

    /// Asks everything to stop; workers close their connections and exit.
    pub(crate) fn request_stop(&self) {
        self.stopping.store(true, Relaxed);
        self.wake_all();
    }

    /// The clock's monotonic milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Number of workers.
    pub(crate) fn nworkers(&self) -> usize {
        self.workers.len().max(1)
    }
}

#[cfg(test)]
impl Shared {
    /// A balancer's shared state with no worker, socket or thread: for unit tests of routing
    /// and the control plane, with `clock` as the time source.
    pub(crate) fn for_tests(
        servers: &[crate::domain::addr::ServerSpec],
        emergency: Option<&crate::domain::addr::ServerSpec>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Shared {
        let listen = ListenAddr::Inet(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        Shared {
            settings: RwLock::new(settings),
            servers: RwLock::new(ServerTable::new(servers, emergency)),
            clients: Mutex::new(ClientTable::new(2048)),
            acls: RwLock::new(AclSet::default()),
            rr: AtomicUsize::new(usize::MAX),
            active: AtomicUsize::new(0),
            conn_max: AtomicUsize::new(500),
            accept_batch: 100,
            backlog: 500,
            exit_enabled: false,
            splice: crate::domain::settings::Splice::Auto,
            stopping: AtomicBool::new(false),
            udp: false,
            running: AtomicBool::new(false),
            listen: Mutex::new(listen),
            control: Mutex::new(None),
            workers: Vec::new(),
            counters: Counters::default(),
            per_client: Default::default(),
            started_ms: clock.now_ms(),
            clock,
            metrics: None,
            log: crate::engine::accesslog::AccessLog::default(),
            tls: None,
            policy: Arc::new(crate::domain::policy::DefaultPolicy),
            health: None,
            events: Arc::default(),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            draining: AtomicBool::new(false),
            handover: Mutex::default(),
            handed_over: AtomicBool::new(false),
            lifecycle_busy: AtomicBool::new(false),
            upgrade_spec: Mutex::new(None),
        }
    }
}
