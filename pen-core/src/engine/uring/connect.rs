//! Connecting on the ring: the server socket is made with the epoll engine's options, the
//! connect is submitted linked to a timeout (the connect timeout), and a refused, failed or
//! timed-out connect fails over to the next server as in the epoll engine (`route::fail_over`
//! blacklists the failed one).

use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{token, untoken, UringWorker};
use crate::domain::server::Target;
use crate::engine::route;
use crate::sys;
use crate::sys::uring::Cqe;

impl UringWorker {
    /// Starts connecting `slot`'s connection to its current target; on an immediate failure,
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
            let made = addr
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrNotAvailable))
                .and_then(|a| {
                    sys::uring::server_socket(a, source, foreign, nodelay).map(|s| (s, a))
                });
            match made {
                Ok((sock, a)) => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
                    conn.server = Some(TcpStream::from(sock));
                    conn.server_addr = Some(a);
                    conn.life.connect_started(now, timeout);
                    let limit = Duration::from_secs(timeout.max(1));
                    self.ring.connect(fd, a, limit, token(slot, gen, 1));
                    return;
                }
                Err(e) if sys::is_local_exhaustion(&e) => {
                    // Our shortage, not the server's: nobody is blacklisted. The client waits
                    // (and accepting pauses): the connect is retried every 100 ms, up to the
                    // connect timeout, then the client is dropped.
                    if let Some(s) = shared.servers.read().target(conn.target) {
                        s.release();
                    }
                    match conn.life.starved(now, timeout, super::STARVED_RETRY_MS) {
                        Some(at) => {
                            let g = token(slot, gen, 0);
                            self.retries.push((at, slot, untoken(g).1));
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

    /// Connects again those that waited for descriptors and whose time has come.
    pub(super) fn retry_connects(&mut self, now: u64) {
        if self.retries.is_empty() {
            return;
        }
        let due: Vec<(u64, usize, u32)> = self
            .retries
            .iter()
            .filter(|r| r.0 <= now)
            .copied()
            .collect();
        self.retries.retain(|r| r.0 > now);
        for (_, slot, gen) in due {
            if self.live(slot, gen) {
                self.connect(slot, now);
            }
        }
    }

    /// A connect completed: relay, or fail over.
    pub(super) fn on_connect(&mut self, cqe: &Cqe) {
        let (slot, gen, _) = untoken(cqe.token);
        if !self.live(slot, gen) {
            return;
        }
        let now = self.shared.now_ms();
        if cqe.res == 0 {
            self.on_connected(slot, now);
            return;
        }
        let err = std::io::Error::from_raw_os_error(-cqe.res);
        let timed_out = -cqe.res == libc::ECANCELED;
        if timed_out {
            self.shared.counters.connect_timeouts.fetch_add(1, Relaxed);
        }
        let why: &dyn std::fmt::Display = if timed_out {
            &"connect timed out"
        } else {
            &err
        };
        if self.fail_over(slot, now, why) {
            self.connect(slot, now);
        }
    }

    /// The current target failed: blacklist it and pick the next one. Returns whether there
    /// is a next target to connect to; otherwise the connection is closed.
    fn fail_over(&mut self, slot: usize, now: u64, why: &dyn std::fmt::Display) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(conn) = self.slots.get_mut(slot) else {
            return false;
        };
        if let Some(s) = conn.server.take() {
            self.ring.close(s.into());
        }
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
                self.close_uncounted(slot);
                false
            }
        }
    }

    /// The server accepted: count it, record tracking, relay both ways.
    fn on_connected(&mut self, slot: usize, now: u64) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        conn.life.connected(now);
        if self.shared.settings.read().states.outlier_failures != 0 {
            route::server_succeeded(&self.shared, conn.target, now);
        }
        if let Some(s) = self.shared.servers.read().target(conn.target) {
            s.total.fetch_add(1, Relaxed);
        }
        if let Target::Server(id) = conn.target {
            self.shared.clients.lock().record(conn.peer.ip, id, now);
        }
        self.pump(slot, 0);
        self.pump(slot, 1);
    }
}
