//! The control layer's only way to the outside world. Applying a configuration command may
//! need to read a file (`include`, `-F`), resolve a host name (`server N address NAME`), bind a
//! listener (`listen ADDR`), open an access log (`log FILE`) or build a TLS configuration
//! (`ssl_*`). The model asks a [`Host`] for each; the runtime implements it over the real
//! system, and tests use an in-memory one, so the configuration model is tested without a
//! socket or a file.
//!
//! What the host hands back (bound listeners, an opened log, a built TLS configuration) is
//! opaque to the model: it is kept in [`Pending`](super::model::Pending) and installed by the
//! runtime only when the whole change has succeeded, or dropped when it has not.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::domain::addr::{Host as HostName, ListenAddr};
use crate::error::ApplyError;
use crate::tls::TlsOptions;

/// The slow part of a change done ahead, before the runtime takes its configuration lock: the
/// texts of the files it includes and the addresses of the names it resolves
/// ([`super::file::prefetch`]). A host consults it before doing any I/O of its own; an error is
/// handed out once (the change fails on it).
#[derive(Default)]
pub(crate) struct Fetched {
    files: HashMap<String, String>,
    names: HashMap<HostName, IpAddr>,
    file_errors: Mutex<HashMap<String, ApplyError>>,
    name_errors: Mutex<HashMap<HostName, ApplyError>>,
}

impl Fetched {
    /// Whether `file` was fetched (read or failed).
    pub(crate) fn has_file(&self, file: &str) -> bool {
        self.files.contains_key(file) || self.file_errors.lock().contains_key(file)
    }

    /// Whether `name` was fetched (resolved or failed).
    pub(crate) fn has_name(&self, name: &HostName) -> bool {
        self.names.contains_key(name) || self.name_errors.lock().contains_key(name)
    }

    /// Keeps what reading `file` gave.
    pub(crate) fn put_file(&mut self, file: &str, r: Result<String, ApplyError>) {
        match r {
            Ok(text) => drop(self.files.insert(file.to_string(), text)),
            Err(e) => drop(self.file_errors.get_mut().insert(file.to_string(), e)),
        }
    }

    /// Keeps what resolving `name` gave.
    pub(crate) fn put_name(&mut self, name: &HostName, r: Result<IpAddr, ApplyError>) {
        match r {
            Ok(ip) => drop(self.names.insert(name.clone(), ip)),
            Err(e) => drop(self.name_errors.get_mut().insert(name.clone(), e)),
        }
    }

    /// What reading `file` gave, if it was fetched.
    pub(crate) fn file(&self, file: &str) -> Option<Result<String, ApplyError>> {
        if let Some(t) = self.files.get(file) {
            return Some(Ok(t.clone()));
        }
        self.file_errors.lock().remove(file).map(Err)
    }

    /// What resolving `name` gave, if it was fetched.
    pub(crate) fn name(&self, name: &HostName) -> Option<Result<IpAddr, ApplyError>> {
        if let Some(ip) = self.names.get(name) {
            return Some(Ok(*ip));
        }
        self.name_errors.lock().remove(name).map(Err)
    }

    /// How many files and names were fetched (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (
            self.files.len() + self.file_errors.lock().len(),
            self.names.len() + self.name_errors.lock().len(),
        )
    }
}

/// The I/O a configuration change may need.
pub(crate) trait Host {
    /// Listeners bound for `listen ADDR`, not yet serving.
    type Listeners;
    /// An opened access-log target for `log FILE`.
    type Log;
    /// A TLS configuration built from the settings, not yet installed.
    type Tls;

    /// The text of the config file `path` (`-F`, `include`).
    fn read_config(&self, path: &str) -> Result<String, ApplyError>;
    /// The address of a host name or literal (`server N address NAME`), asking the DNS
    /// server `dns` (`dns_server`, issue 14) or, when `None`, the system resolver.
    fn resolve(
        &self,
        host: &HostName,
        dns: Option<std::net::SocketAddr>,
    ) -> Result<IpAddr, ApplyError>;
    /// Binds listeners for `addr` (without serving), returning them and the address bound.
    fn bind(&self, addr: &ListenAddr) -> Result<(Self::Listeners, ListenAddr), ApplyError>;
    /// Opens the access-log target `spec` (a file path or `host:port`).
    fn open_log(&self, spec: &str) -> Result<Self::Log, ApplyError>;
    /// Builds the TLS configuration for `options` when it differs from the running one or
    /// `force` is set (an `ssl_*` command ran); `None` when there is nothing to install.
    fn prepare_tls(
        &self,
        options: &TlsOptions,
        force: bool,
    ) -> Result<Option<Self::Tls>, ApplyError>;
    /// Whether the balancer relays UDP (`-U`), where `listen ADDR` is refused.
    fn udp(&self) -> bool;
}

#[cfg(test)]
pub(crate) mod mem {
    //! An in-memory [`Host`] for unit tests: files and host names from maps, listeners and
    //! logs as plain values.

    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::Host;
    use crate::domain::addr::{Host as HostName, ListenAddr};
    use crate::error::ApplyError;
    use crate::tls::TlsOptions;

    /// Files, names, and what the model asked for.
    #[derive(Default)]
    pub(crate) struct MemHost {
        pub(crate) files: HashMap<String, String>,
        pub(crate) names: HashMap<String, IpAddr>,
        pub(crate) udp: bool,
        /// Addresses `bind` refuses (as "address in use").
        pub(crate) busy: Vec<ListenAddr>,
    }

    impl MemHost {
        /// A host with one file.
        pub(crate) fn with_file(path: &str, text: &str) -> Self {
            let mut h = MemHost::default();
            h.files.insert(path.to_string(), text.to_string());
            h
        }
    }

    impl Host for MemHost {
        type Listeners = ListenAddr;
        type Log = String;
        type Tls = TlsOptions;

        fn read_config(&self, path: &str) -> Result<String, ApplyError> {
            self.files.get(path).cloned().ok_or_else(|| ApplyError::Io {
                context: format!("cannot read config file '{path}'"),
                source: std::io::ErrorKind::NotFound.into(),
            })
        }

        fn resolve(
            &self,
            host: &HostName,
            _dns: Option<std::net::SocketAddr>,
        ) -> Result<IpAddr, ApplyError> {
            match host {
                HostName::Ip(ip) => Ok(*ip),
                HostName::Name(n) => self.names.get(n).copied().ok_or_else(|| {
                    crate::error::AddrError::Resolve {
                        host: n.clone(),
                        reason: "not in the test's names".to_string(),
                    }
                    .into()
                }),
            }
        }

        fn bind(&self, addr: &ListenAddr) -> Result<(ListenAddr, ListenAddr), ApplyError> {
            if self.busy.contains(addr) {
                return Err(ApplyError::Io {
                    context: format!("cannot listen on '{addr}'"),
                    source: std::io::ErrorKind::AddrInUse.into(),
                });
            }
            Ok((addr.clone(), addr.clone()))
        }

        fn open_log(&self, spec: &str) -> Result<String, ApplyError> {
            Ok(spec.to_string())
        }

        fn prepare_tls(
            &self,
            options: &TlsOptions,
            _force: bool,
        ) -> Result<Option<TlsOptions>, ApplyError> {
            Ok(Some(options.clone()))
        }

        fn udp(&self) -> bool {
            self.udp
        }
    }
}
