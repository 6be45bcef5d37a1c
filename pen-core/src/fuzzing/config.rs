//! Config files through the real `-F` path, against a balancer that is bound but not started.
//!
//! [`Harness::load`] does what `pen -F FILE` does at start (and a reload does): read the file,
//! apply its lines one by one to a model of the configuration (`include` included), check the
//! whole, all without touching the running state. [`Harness::commit`] then installs the
//! model the way a successful `-F` or reload does, [`Harness::render`] is what `write` would
//! write for it, and [`Harness::reset`] puts the start-up configuration back for the next input.
//!
//! The balancer listens on 127.0.0.1 (an ephemeral port), has one worker, no server, no control
//! socket and no TLS; no thread runs. A config file can make pen open files (`log`, `include`)
//! and sockets (`listen`, a `log` collector) and resolve names (`server N address NAME`): the
//! fuzz target decides which of those its inputs may use.

use std::path::Path;

use crate::control::model::{Model, Pending};
use crate::domain::addr::ListenAddr;
use crate::domain::clients::ClientTable;
use crate::error::ApplyError;
use crate::runtime::balancer::{Balancer, Bound};
use crate::runtime::config::Config;
use crate::runtime::controller::{commit, snapshot};
use crate::runtime::host::RealHost;

/// A bound balancer and its start-up configuration.
pub struct Harness {
    bound: Bound,
    base: Model,
}

/// A configuration: what a file loaded to, or what is running.
pub struct Loaded {
    model: Model,
    pending: Pending<RealHost<'static>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.model.fmt(f)
    }
}

/// Compares the configurations (not the pending actions such as `server N blacklist T`).
impl PartialEq for Loaded {
    fn eq(&self, other: &Loaded) -> bool {
        self.model == other.model
    }
}

impl Harness {
    /// Binds the balancer.
    ///
    /// # Errors
    /// As [`Balancer::bind`].
    pub fn new() -> Result<Harness, crate::StartError> {
        let listen = ListenAddr::Inet(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut config = Config::new(listen, Vec::new());
        config.workers = 1;
        let bound = Balancer::bind(config)?;
        let base = snapshot(bound.shared());
        Ok(Harness { bound, base })
    }

    /// The balancer's shared state.
    pub(crate) fn shared(&self) -> &crate::engine::state::Shared {
        self.bound.shared()
    }

    /// Loads `file` as `-F` does, on top of the start-up configuration, without changing the
    /// running state.
    ///
    /// # Errors
    /// The file's first error, as `pen -F` reports it (`FILE:LINE: reason`).
    pub fn load(&self, file: &Path) -> Result<Loaded, ApplyError> {
        let host = RealHost::new(self.bound.shared());
        let mut model = self.base.clone();
        let mut pending = Pending::default();
        pending.quote_lines = true; // as the `-F` file
        let name = file.to_string_lossy();
        crate::control::file::include(&host, &mut model, &mut pending, &name, 0)?;
        model.prepare(&host, &mut pending)?;
        // What the host prepared does not borrow it (listeners, a log, a TLS config).
        let pending = Pending {
            listen: pending.listen,
            blacklist: pending.blacklist,
            log: pending.log,
            tls_touched: pending.tls_touched,
            tls: pending.tls,
            read: pending.read,
            quote_lines: pending.quote_lines,
        };
        Ok(Loaded { model, pending })
    }

    /// Installs `loaded` as the running configuration, as a successful `-F` or reload does.
    pub fn commit(&self, loaded: Loaded) {
        commit(self.bound.shared(), loaded.model, loaded.pending);
    }

    /// The running configuration.
    pub fn running(&self) -> Loaded {
        Loaded {
            model: snapshot(self.bound.shared()),
            pending: Pending::default(),
        }
    }

    /// The start-up configuration.
    pub fn base(&self) -> Loaded {
        Loaded {
            model: self.base.clone(),
            pending: Pending::default(),
        }
    }

    /// What `write FILE` writes for `loaded` (with a fixed time in the comment).
    pub fn render(&self, loaded: &Loaded, file: &Path) -> String {
        let time = "Thu Jan  1 00:00:00 1970".to_string();
        crate::control::write::render(
            &loaded.model,
            &crate::control::write::StartLine::default(),
            file,
            time,
        )
    }

    /// Puts the start-up configuration back (the client table too: it only grows otherwise).
    pub fn reset(&self) {
        let shared = self.bound.shared();
        commit(shared, self.base.clone(), Pending::default());
        *shared.clients.lock() = ClientTable::new(self.base.clients_max);
    }
}
