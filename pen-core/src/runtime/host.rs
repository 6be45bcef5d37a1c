//! The control layer's [`Host`] over the real system and the running balancer: files are read
//! from disk, names resolved by the system resolver, listeners bound as the workers need them,
//! logs opened, TLS configurations built from their files.

use std::net::IpAddr;

use crate::control::host::Host;
use crate::domain::addr::{Host as HostName, ListenAddr};
use crate::engine::accesslog::Target;
use crate::engine::net::Listener;
use crate::engine::state::Shared;
use crate::error::ApplyError;
use crate::tls::TlsOptions;

/// The real system, for changes to the balancer behind `shared`.
pub(crate) struct RealHost<'a> {
    pub(crate) shared: &'a Shared,
}

impl Host for RealHost<'_> {
    type Listeners = Vec<Option<Listener>>;
    type Log = Target;
    type Tls = crate::tls::Prepared;

    fn read_config(&self, path: &str) -> Result<String, ApplyError> {
        std::fs::read_to_string(path).map_err(|source| ApplyError::Io {
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
        Target::open(spec)
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
