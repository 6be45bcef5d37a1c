//! TLS termination on the listen side (`-E -K -G -A -R -L`, the `ssl_*` commands), with rustls
//! and its *ring* crypto provider.
//!
//! - [`TlsOptions`]: what the command line and the `ssl_*` commands set (plain data, part of the
//!   configuration model, so `write` renders it and a bad change is refused as a whole).
//! - `names`: C pen's and OpenSSL's names (protocols, `ssl_option`, cipher lists) mapped onto
//!   what rustls offers, with an error naming any token it cannot honour.
//! - `load`: certificate, key, CA and OCSP files read and checked (PEM, key matches
//!   certificate, dates) into rustls types; `build` makes the `ServerConfig` (SNI resolver,
//!   client verifier, session tickets) that new connections use.
//! - `session`: one connection's TLS state, driven by the worker's cached readiness: records in
//!   from the socket, plaintext out to the relay and back, records out to the socket.
//! - `stats`: handshake counters for the metrics.
//!
//! A running balancer keeps one `Tls`: the current `ServerConfig` behind a lock that a reload
//! swaps (live connections keep the config they started with), plus the session-ticket key and
//! session cache, which survive reloads so clients keep resuming.

mod build;
mod load;
pub(crate) mod names;
mod ocsp;
pub(crate) mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use names::{parse_cipher_list, parse_protocol, CipherList};
pub use stats::TlsValues;

/// TLS versions offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// TLS 1.2.
    pub tls12: bool,
    /// TLS 1.3.
    pub tls13: bool,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            tls12: true,
            tls13: true,
        }
    }
}

/// TLS settings: the command line's `-E -K -G -A -R -L` and the `ssl_*` commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `-E`: certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// `-K`: private key, PEM (PKCS#8, SEC1 or PKCS#1); `None`: it is in the `-E` file.
    pub key: Option<PathBuf>,
    /// `-G`: PEM file of CAs trusted for client certificates.
    pub ca_file: Option<PathBuf>,
    /// `-A`: directory of PEM files of CAs trusted for client certificates.
    pub ca_dir: Option<PathBuf>,
    /// `-R`: require a valid client certificate (needs `-G` or `-A`).
    pub require_client_cert: bool,
    /// `-L` and `ssl_option no_tlsv1.2|no_tlsv1.3`.
    pub versions: Versions,
    /// `ssl_ciphers`: the list as given (`None`: every suite rustls offers).
    pub ciphers: Option<String>,
    /// `ssl_option cipher_server_preference`: our order of suites wins over the client's.
    pub server_preference: bool,
    /// `ssl_sni_path`: directory of `NAME.crt`, `NAME.key` and optional `NAME.ca` files.
    pub sni_path: Option<PathBuf>,
    /// `ssl_ocsp_response`: DER OCSP response stapled with the `-E` certificate.
    pub ocsp_response: Option<PathBuf>,
    /// `ssl_client_renegotiation_interval`: stored for `write`; rustls never renegotiates.
    pub renegotiation_interval: Option<u64>,
}

impl TlsOptions {
    /// Options for the certificate chain in `cert` (and its key, when `key` is `None`).
    pub fn new(cert: impl Into<PathBuf>, key: Option<PathBuf>) -> Self {
        TlsOptions {
            cert: cert.into(),
            key,
            ..TlsOptions::default()
        }
    }

    /// Reads and checks every file the options name and builds what new connections will use,
    /// without starting anything: how the command line and embedders validate options early.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or token and the problem.
    pub fn check(&self) -> Result<(), TlsError> {
        build::server_config(self, &Tls::session_parts()?).map(|_| ())
    }
}

/// Checks a certificate chain and its key given as PEM texts, as `-E`/`-K` files are checked
/// at start (PEM of the right kinds, a usable key type, the key matching the leaf, the leaf
/// valid at `now`, seconds since the epoch). For tests and fuzzing of the loading path.
///
/// # Errors
/// [`TlsError`] saying what is wrong (errors name the texts `cert` and `key`).
pub fn check_pem(cert_pem: &[u8], key_pem: &[u8], now: i64) -> Result<(), TlsError> {
    use std::path::Path;
    load::certified_key_in(
        (Path::new("cert"), cert_pem),
        (Path::new("key"), key_pem),
        Vec::new(),
        now,
    )
    .map(|_| ())
}

/// A TLS option, certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read '{path}': {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what was expected (no PEM block of the right kind, bad DER, ...).
    #[error("'{path}': {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("key '{key}' does not match the certificate in '{cert}'")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The certificate's validity has ended.
    #[error("certificate '{path}' expired on {when}")]
    Expired {
        /// The certificate file.
        path: String,
        /// Its `notAfter`.
        when: String,
    },
    /// The certificate's validity has not started.
    #[error("certificate '{path}' is not valid until {when}")]
    NotYetValid {
        /// The certificate file.
        path: String,
        /// Its `notBefore`.
        when: String,
    },
    /// A protocol, option or cipher name that cannot be honoured.
    #[error("'{token}': {reason}")]
    Name {
        /// The name as given.
        token: String,
        /// Why, and what is expected instead.
        reason: String,
    },
    /// The options do not fit together, or rustls refused them.
    #[error("{0}")]
    Config(String),
}

/// A configuration built and checked, ready to install.
pub(crate) struct Prepared {
    config: Arc<rustls::ServerConfig>,
    parts: build::SessionParts,
}

/// The TLS state of a running balancer.
pub(crate) struct Tls {
    /// The options in force.
    pub(crate) options: Mutex<TlsOptions>,
    /// What new connections use; swapped by a reload.
    pub(crate) config: RwLock<Arc<rustls::ServerConfig>>,
    /// Kept across reloads, so resumption keeps working, unless client certificates are
    /// verified (see [`Tls::prepare`]).
    parts: Mutex<build::SessionParts>,
    /// Handshake counters.
    pub(crate) stats: stats::TlsStats,
}

impl Tls {
    fn session_parts() -> Result<build::SessionParts, TlsError> {
        build::SessionParts::new()
    }

    /// Loads everything `options` names.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or token and the problem.
    pub(crate) fn new(options: TlsOptions) -> Result<Tls, TlsError> {
        let parts = Tls::session_parts()?;
        let config = build::server_config(&options, &parts)?;
        Ok(Tls {
            options: Mutex::new(options),
            config: RwLock::new(config),
            parts: Mutex::new(parts),
            stats: stats::TlsStats::default(),
        })
    }

    /// Builds the configuration `options` describe (re-reading every file), without installing
    /// it: the control plane checks a change first and installs it at commit.
    ///
    /// With client certificates verified (`-G`/`-A`), the build gets a fresh ticket key and
    /// session cache: a resumed session skips certificate verification, so sessions from before
    /// a reload (which may have dropped a CA) must not resume after it.
    pub(crate) fn prepare(&self, options: &TlsOptions) -> Result<Prepared, TlsError> {
        let parts = if options.ca_file.is_some() || options.ca_dir.is_some() {
            build::SessionParts::new()?
        } else {
            self.parts.lock().clone()
        };
        let config = build::server_config(options, &parts)?;
        Ok(Prepared { config, parts })
    }

    /// Makes `prepared` (from [`Tls::prepare`] on `options`) what new connections get.
    pub(crate) fn install(&self, options: TlsOptions, prepared: Prepared) {
        *self.options.lock() = options;
        *self.parts.lock() = prepared.parts;
        *self.config.write() = prepared.config;
        self.stats
            .reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Re-reads the certificate, key, CA, SNI and OCSP files; on any error nothing changes.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let options = self.options.lock().clone();
        let prepared = self.prepare(&options)?;
        self.install(options, prepared);
        Ok(())
    }

    /// The configuration for a new connection.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config.read())
    }
}
