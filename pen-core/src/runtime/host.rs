//! The control layer's [`Host`] over the real system and the running balancer: files are read
//! from disk, names resolved by the system resolver, listeners bound as the workers need them,
//! logs opened, TLS configurations built from their files.
//!
//! Relative file names (`include`, `log`, `web_stats`, `write`) mean what they meant in the
//! directory pen was started from, as in C pen, whose working directory never changes: a
//! daemon's is `/` here, so the start directory is recorded at bind time ([`StartDir`]) and
//! relative names are resolved against it.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::control::host::Host;
use crate::domain::addr::{Host as HostName, ListenAddr};
use crate::engine::accesslog::Target;
use crate::engine::net::Listener;
use crate::engine::state::Shared;
use crate::error::ApplyError;
use crate::tls::TlsOptions;

/// The directory pen was started from, recorded at bind time (before a daemon changes to `/`).
#[derive(Debug)]
pub(crate) struct StartDir {
    path: PathBuf,
    /// The directory's device and inode: after a chroot (`-j`) the same path names another
    /// directory, or none, and relative names then stay relative to the chroot.
    id: (u64, u64),
}

impl StartDir {
    /// The current directory, if it can be known.
    pub(crate) fn current() -> Option<StartDir> {
        let path = std::env::current_dir().ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        Some(StartDir {
            id: (meta.dev(), meta.ino()),
            path,
        })
    }

    /// `name` resolved against the start directory when it is relative and the process has
    /// left that directory (a daemon); otherwise `name` as it is (C pen's meaning either way).
    pub(crate) fn resolve(&self, name: &str) -> String {
        if Path::new(name).is_absolute() || name.is_empty() {
            return name.to_string();
        }
        let moved = std::env::current_dir().map_or(true, |cwd| cwd != self.path);
        let same = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if moved && same {
            self.path.join(name).display().to_string()
        } else {
            name.to_string()
        }
    }

    /// [`StartDir::resolve`] for a `log` target: a collector's `host:port` stays as it is.
    pub(crate) fn resolve_log(&self, spec: &str) -> String {
        if !spec.contains('/') && spec.parse::<SocketAddr>().is_ok() {
            return spec.to_string();
        }
        self.resolve(spec)
    }
}

/// `name` resolved against `start`, if there is one.
pub(crate) fn resolve(start: Option<&StartDir>, name: &str) -> String {
    start.map_or_else(|| name.to_string(), |d| d.resolve(name))
}

/// The real system, for changes to the balancer behind `shared`.
pub(crate) struct RealHost<'a> {
    pub(crate) shared: &'a Shared,
    /// Where relative file names point (none: the current directory).
    pub(crate) start: Option<&'a StartDir>,
}

impl<'a> RealHost<'a> {
    /// The real system for the balancer behind `shared`, relative names in the current
    /// directory.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn new(shared: &'a Shared) -> Self {
        RealHost {
            shared,
            start: None,
        }
    }
}

impl Host for RealHost<'_> {
    type Listeners = Vec<Option<Listener>>;
    type Log = Target;
    type Tls = crate::tls::Prepared;

    fn read_config(&self, path: &str) -> Result<String, ApplyError> {
        std::fs::read_to_string(resolve(self.start, path)).map_err(|source| ApplyError::Io {
            context: format!("cannot read config file '{path}'"),
            source,
        })
    }

    fn resolve(&self, host: &HostName) -> Result<IpAddr, ApplyError> {
        Ok(crate::domain::addr::resolve_host(host, 0)?.ip())
    }

    fn bind(&self, addr: &ListenAddr) -> Result<(Self::Listeners, ListenAddr), ApplyError> {
        super::listeners::bind_for(self.shared, addr)
    }

    fn open_log(&self, spec: &str) -> Result<Target, ApplyError> {
        match self.start {
            Some(d) => Target::open(&d.resolve_log(spec)),
            None => Target::open(spec),
        }
    }

    fn prepare_tls(
        &self,
        options: &TlsOptions,
        force: bool,
    ) -> Result<Option<Self::Tls>, ApplyError> {
        let Some(tls) = self.shared.tls.as_ref() else {
            return Ok(None);
        };
        if force || *tls.options.lock() != *options {
            return Ok(Some(tls.prepare(options)?));
        }
        Ok(None)
    }

    fn udp(&self) -> bool {
        self.shared.udp
    }
}
