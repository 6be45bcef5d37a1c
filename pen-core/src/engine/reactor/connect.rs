//! Connecting a client's connection to its server, and failing over to the next one when the
//! connect is refused, fails or times out (the server is then blacklisted), or waiting when
//! pen itself is out of descriptors (nobody is blacklisted for that).

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{Worker, STARVED_RETRY_MS};
use crate::domain::server::Target;
use crate::engine::lifecycle::Timer;
use crate::engine::net::Stream;
use crate::engine::relay::Readiness;
use crate::engine::route;
use crate::engine::slab::key;
use crate::sys;

impl Worker {
    /// Starts connecting slot's connection to its current target; on an immediate failure,
    /// fails over at once.
    pub(super) fn connect(&mut self, slot: usize, now: u64) {
        loop {
            let shared = Arc::clone(&self.shared);
            let Some(gen) = self.slots.gen(slot) else {
                return;
            };
            let Some(conn) = self.slots.get_mut(slot) else {
                return;
            };
            let route::ConnectPlan {
                addr,
                source,
                nodelay,
                timeout,
                foreign,
            } = route::connect_plan(&shared, conn.target, conn.peer.ip);
            let started = addr
                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
                .and_then(|a| sys::connect_start(a, source, foreign, nodelay));
            match started {
                Ok(stream) => {
                    let stream = Stream::Tcp(stream);
                    if let Err(e) = self.poller.add(&stream, key(slot, gen, true)) {
                        log::warn!("cannot watch server socket: {e}");
                        (self.shared.events)
                            .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                        self.close(slot);
                        return;
                    }
                    conn.server = Some(stream);
                    conn.server_addr = addr;
                    let deadline = conn.life.connect_started(now, timeout);
                    self.arm(slot, Timer::Connect, deadline);
                    return;
                }
                Err(e) if sys::is_local_exhaustion(&e) => {
                    // Our shortage, not the server's fault: blacklist nobody. The client waits
                    // (and accepting pauses, so the queue waits too): the connect is retried
                    // every 100 ms, up to the connect timeout, then the client is dropped.
                    if let Some(s) = shared.servers.read().target(conn.target) {
                        s.release();
                    }
                    match conn.life.starved(now, timeout, STARVED_RETRY_MS) {
                        Some(at) => {
                            self.arm(slot, Timer::Retry, at);
                            self.accept_retry = at;
                        }
                        None => self.close_uncounted(slot),
                    }
                    return;
                }
                Err(e) => {
                    if !self.fail_over(slot, now, &e) {
                        return;
                    }
                }
            }
        }
    }

    /// An event on the server socket of a connection still connecting: connected, still in
    /// progress, or failed (then fail over).
    pub(super) fn on_connect_event(&mut self, slot: usize, ev: &crate::poll::Event) {
        let Some(Stream::Tcp(tcp)) = self.slots.get(slot).and_then(|c| c.server.as_ref()) else {
            return;
        };
        let now = self.shared.now_ms();
        // Writable with neither an error nor a hang-up (which epoll reports with every failed
        // connect) means connected: the `SO_ERROR` query is left for the events that need it,
        // a system call saved per connection. The portable poller reports no hang-up, so there
        // the query is always made.
        if ev.writable && !ev.hup && crate::poll::REPORTS_HUP {
            self.on_connected(slot, now);
            return;
        }
        match sys::connect_result(tcp, ev.writable) {
            Ok(true) => self.on_connected(slot, now),
            Ok(false) => {}
            Err(e) => {
                if self.fail_over(slot, now, &e) {
                    self.connect(slot, now);
                }
            }
        }
    }

    /// The current target failed: blacklist it and pick the next one. Returns whether there is
    /// a next target to connect to (the caller connects); otherwise the connection is closed.
    pub(super) fn fail_over(&mut self, slot: usize, now: u64, why: &dyn std::fmt::Display) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(conn) = self.slots.get_mut(slot) else {
            return false;
        };
        if let Some(s) = conn.server.take() {
            self.poller.closing(&s);
        }
        conn.s = Readiness::default(); // the next server's socket starts afresh
        let next = route::fail_over(
            &shared,
            conn.target,
            conn.first,
            conn.peer.ip,
            now,
            why,
            true,
        );
        match next {
            Some(t) => {
                conn.target = t;
                true
            }
            None => {
                // The failed target's count was released above.
                self.close_uncounted(slot);
                false
            }
        }
    }

    /// The server accepted: set up HTTP mode and splicing, count it, record tracking, relay.
    fn on_connected(&mut self, slot: usize, now: u64) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        conn.life.connected(now);
        conn.s.write = true;
        let (http, trust_list, outlier) = {
            let s = self.shared.settings.read();
            let outlier = s.states.outlier_failures != 0;
            (s.http, u8::try_from(s.trusted_proxy_acl).ok(), outlier)
        };
        if outlier {
            // Passive detection: a success ends a run of failures.
            route::server_succeeded(&self.shared, conn.target, now);
        }
        if http {
            let https = conn.tls.is_some();
            // Decided once per connection. An empty list trusts nobody here (unlike a client
            // ACL, where it permits everyone): a forgotten list must not open the chain.
            let trusted = trust_list.is_some_and(|n| {
                let acls = self.shared.acls.read();
                !acls.list(n).is_empty() && acls.permits(n, conn.peer.ip)
            });
            conn.http = Some(Box::new(crate::engine::http::HttpCarrier::new(
                conn.peer.ip,
                https,
                trusted,
            )));
        }
        let server_loopback = conn.server_addr.is_none_or(|a| a.ip().is_loopback());
        conn.splice = cfg!(target_os = "linux")
            && matches!(conn.client, Stream::Tcp(_))
            && conn.tls.is_none()
            && match self.splice {
                crate::domain::settings::Splice::Always => true,
                crate::domain::settings::Splice::Never => false,
                crate::domain::settings::Splice::Auto => !server_loopback,
            };
        let proxy = match self.shared.servers.read().target(conn.target) {
            Some(s) => {
                s.total.fetch_add(1, Relaxed);
                s.proxy
            }
            None => crate::domain::proxy_header::ProxyVersion::Off,
        };
        if let Target::Server(id) = conn.target {
            self.shared.clients.lock().record(conn.peer.ip, id, now);
        }
        // The PROXY header goes before any client byte (issue 14).
        if self.send_proxy_header(slot, proxy) {
            self.drive(slot);
        }
    }
}
