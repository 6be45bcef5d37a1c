//! State shared by the workers and the control plane: tables behind parking_lot locks,
//! counters atomic. Workers read it on accept and close; the control plane changes it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};

use crate::poll::Poller;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::acl::AclSet;
use crate::addr::ListenAddr;
use crate::clients::ClientTable;
use crate::config::Settings;
use crate::policy::Modes;
use crate::reactor::WorkerMsg;
use crate::server::ServerTable;

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

/// Counters for the status page and, later, metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_acl: AtomicU64,
    pub(crate) no_server: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) blacklistings: AtomicU64,
    pub(crate) connect_timeouts: AtomicU64,
    pub(crate) accept_pauses: AtomicU64,
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
    pub(crate) splice: crate::config::Splice,
    pub(crate) stopping: AtomicBool,
    /// The address the listener is bound to now.
    pub(crate) listen: Mutex<ListenAddr>,
    /// The control socket's address.
    pub(crate) control: Mutex<Option<ListenAddr>>,
    pub(crate) workers: Vec<WorkerLink>,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) counters: Counters,
    /// Set (with the condvar notified) once the balancer has stopped.
    pub(crate) stopped: Mutex<bool>,
    pub(crate) stopped_cv: Condvar,
}

impl Shared {
    /// The selection modes in force.
    pub(crate) fn modes(s: &Settings) -> Modes {
        Modes {
            hash: s.hash,
            roundrobin: s.roundrobin,
            weight: s.weight,
            prio: s.prio,
        }
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

    /// Number of workers.
    pub(crate) fn nworkers(&self) -> usize {
        self.workers.len().max(1)
    }
}
