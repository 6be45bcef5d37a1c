//! Admission against the `-x` limit, one implementation for both engines: a client connection
//! (TCP) or flow (UDP) is counted in `Shared::active` while it lives; at the limit a TCP worker
//! stops accepting, and whoever frees a place at the limit wakes every worker.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use crate::engine::state::Shared;

impl Shared {
    /// Counts one more connection or flow against `-x`; `false` (nothing counted) at the
    /// limit.
    pub(crate) fn admit(&self) -> bool {
        let max = self.conn_max.load(Relaxed);
        if self.active.fetch_add(1, Relaxed) >= max {
            self.active.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// Uncounts a connection or flow; at the limit, wakes the workers paused there.
    pub(crate) fn release(&self) {
        let prev = self
            .active
            .fetch_update(Relaxed, Relaxed, |a| Some(a.saturating_sub(1)))
            .unwrap_or(0);
        if prev >= self.conn_max.load(Relaxed) {
            self.wake_all();
        }
    }
}

/// What the per-client cap said about a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PerClientVerdict {
    /// Not counted (no cap, or a Unix-socket client, which has no address).
    Uncounted,
    /// Counted: release it with [`Shared::release_client`] when it closes.
    Counted,
    /// Its address is at the cap: close it now (counted as a refusal).
    Refused,
}

impl Shared {
    /// The `conn_per_client` cap for a new connection from `ip` (0: unlimited).
    pub(crate) fn admit_client(&self, ip: IpAddr) -> PerClientVerdict {
        let cap = self.settings.read().conn_per_client;
        if cap == 0 || ip.is_unspecified() {
            return PerClientVerdict::Uncounted;
        }
        if self.per_client.admit(ip, cap) {
            PerClientVerdict::Counted
        } else {
            self.counters.refused_per_client.fetch_add(1, Relaxed);
            PerClientVerdict::Refused
        }
    }

    /// Uncounts a connection the per-client cap counted.
    pub(crate) fn release_client(&self, ip: IpAddr) {
        self.per_client.release(ip);
    }

    /// Whether a new client from `ip` is to be dropped at accept, before anything is spent on
    /// it (a TLS handshake, a wait for its first bytes): the client ACL denies it and there is
    /// no abuse server to send it to. Counted as a refusal. A client denied while an abuse
    /// server is up goes on, and routing sends it there as before.
    pub(crate) fn denied_at_accept(&self, ip: IpAddr, now: u64) -> bool {
        let (acl, debug) = {
            let s = self.settings.read();
            (s.client_acl, s.debug)
        };
        if self.acls.read().permits(acl, ip) {
            return false;
        }
        let abuse = (self.servers.read().abuse.as_ref()).is_some_and(|a| a.in_service(now));
        if abuse {
            return false;
        }
        self.counters.refused_acl.fetch_add(1, Relaxed);
        if debug > 0 {
            log::debug!("client {ip} denied by ACL {acl}: dropped at accept");
        }
        true
    }
}
