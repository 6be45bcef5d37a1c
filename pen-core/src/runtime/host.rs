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

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crate::control::host::{Fetched, Host};
use crate::domain::addr::{Host as HostName, ListenAddr};
use crate::engine::accesslog::Target;
use crate::engine::net::Listener;
use crate::engine::state::Shared;
use crate::error::AddrError;
use crate::error::ApplyError;
use crate::files;
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

/// Longest wait for the system resolver (`server N address NAME`): a resolver that does not
/// answer fails the change instead of holding the control thread.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most lookups left running after their timeout (each holds a thread until the resolver
/// returns); more are refused until some finish.
const MAX_STUCK_LOOKUPS: usize = 4;
/// Lookups running now.
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Runs `lookup` on a helper thread and waits at most `timeout` for it: on time out the thread
/// is left to finish alone (at most [`MAX_STUCK_LOOKUPS`] at once) and `name` is reported as
/// not answering.
pub(crate) fn resolve_within<T: Send + 'static>(
    name: &str,
    timeout: Duration,
    lookup: impl FnOnce() -> Result<T, AddrError> + Send + 'static,
) -> Result<T, AddrError> {
    let fail = |reason: String| AddrError::Resolve {
        host: name.to_string(),
        reason,
    };
    if LOOKUPS.fetch_add(1, Relaxed) >= MAX_STUCK_LOOKUPS {
        LOOKUPS.fetch_sub(1, Relaxed);
        return Err(fail(format!(
            "{MAX_STUCK_LOOKUPS} earlier lookups are still waiting for the resolver"
        )));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("pen-resolve".into())
        .spawn(move || {
            let r = lookup();
            LOOKUPS.fetch_sub(1, Relaxed);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        LOOKUPS.fetch_sub(1, Relaxed);
        return Err(fail(format!("cannot start a lookup: {e}")));
    }
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(fail(format!(
            "no answer from the resolver within {} s",
            timeout.as_secs_f32()
        )))
    })
}

/// The real system, for changes to the balancer behind `shared`.
pub(crate) struct RealHost<'a> {
    pub(crate) shared: &'a Shared,
    /// Where relative file names point (none: the current directory).
    pub(crate) start: Option<&'a StartDir>,
    /// Files and names fetched before the configuration lock (consulted first).
    pub(crate) fetched: Option<&'a Fetched>,
    /// The `-F` file, the one config file read through a symbolic link (the operator's own,
    /// named on the command line); any other is refused when it is a link.
    pub(crate) config_file: Option<&'a Path>,
}

impl<'a> RealHost<'a> {
    /// The real system for the balancer behind `shared`, relative names in the current
    /// directory.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn new(shared: &'a Shared) -> Self {
        RealHost {
            shared,
            start: None,
            fetched: None,
            config_file: None,
        }
    }
}

impl Host for RealHost<'_> {
    type Listeners = Vec<Option<Listener>>;
    type Log = Target;
    type Tls = crate::tls::Prepared;

    fn read_config(&self, path: &str) -> Result<String, ApplyError> {
        if let Some(r) = self.fetched.and_then(|f| f.file(path)) {
            return r;
        }
        let follow = self.config_file.is_some_and(|f| f == Path::new(path));
        let full = resolve(self.start, path);
        let err = |source| ApplyError::Io {
            context: format!("cannot read config file '{path}'"),
            source,
        };
        let bytes =
            files::read_regular(Path::new(&full), files::MAX_CONFIG_BYTES, follow).map_err(err)?;
        String::from_utf8(bytes).map_err(|_| {
            err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not text (expected UTF-8 penctl commands, one per line)",
            ))
        })
    }

    fn resolve(&self, host: &HostName, dns: Option<SocketAddr>) -> Result<IpAddr, ApplyError> {
        if let Some(r) = self.fetched.and_then(|f| f.name(host)) {
            return r;
        }
        let HostName::Name(name) = host else {
            return Ok(crate::domain::addr::resolve_host(host, 0)?.ip());
        };
        if let Some(server) = dns {
            // Issue 14: the DNS server pen was told to ask.
            return super::dns::first_address(name, server);
        }
        let owned = host.clone();
        let lookup = move || crate::domain::addr::resolve_host(&owned, 0);
        Ok(resolve_within(name, RESOLVE_TIMEOUT, lookup)?.ip())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver that never answers fails the lookup after the timeout; the caller is free.
    #[test]
    fn a_stuck_resolver_times_out() {
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let lookup = move || -> Result<SocketAddr, AddrError> {
            let _ = stuck.recv(); // blocks until the test ends
            Err(AddrError::Resolve {
                host: "x".into(),
                reason: "released".into(),
            })
        };
        let started = std::time::Instant::now();
        let e = resolve_within("stuck.example", Duration::from_millis(50), lookup).unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(release);
        let ok = resolve_within("fine", Duration::from_secs(5), || {
            Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
        });
        assert_eq!(ok.unwrap().port(), 0);
    }
}
