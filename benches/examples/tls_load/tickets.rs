//! The `--resume` session store ([`TicketStore`]): rustls's in-memory cache, but with room
//! for as many TLS 1.3 tickets per server as the connections in flight need, and counting
//! the sessions received and offered.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// TLS 1.3 tickets kept per server name by [`TicketStore`].
const TICKETS_PER_SERVER: usize = 1024;

/// What [`TicketStore`] remembers about one server.
#[derive(Debug, Default)]
struct ServerSessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first; the newest is handed out first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// `--resume`: the session store of one thread's connections. Like rustls's
/// `ClientSessionMemoryCache`, but it keeps up to [`TICKETS_PER_SERVER`] TLS 1.3 tickets per
/// server instead of 8: with more connections in flight than that, tickets received by
/// connections still running would push each other out, and their successors would find none
/// and make a full handshake. It counts the sessions it receives (TLS 1.3 tickets, TLS 1.2
/// sessions) and those it hands out to be offered to the server.
#[derive(Debug, Default)]
pub(crate) struct TicketStore {
    servers: Mutex<HashMap<ServerName<'static>, ServerSessions>>,
    pub(crate) received: AtomicU64,
    pub(crate) offered: AtomicU64,
}

impl TicketStore {
    /// Runs `f` on the entry of `name` (created if missing).
    fn with<T>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut ServerSessions) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        f(servers.entry(name.to_owned()).or_default())
    }

    /// Counts a session handed out.
    fn offer<T>(&self, v: Option<T>) -> Option<T> {
        if v.is_some() {
            self.offered.fetch_add(1, Ordering::Relaxed);
        }
        v
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with(&server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.with(&server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.offer(self.with(server_name, |s| s.tls12.clone()))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.with(&server_name, |s| {
            if s.tls13.len() == TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.offer(self.with(server_name, |s| s.tls13.pop_back()))
    }
}
