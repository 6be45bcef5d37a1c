//! Client to server: datagrams read from the listening socket go out on their flow's
//! connected socket; a flow whose server failed or was blacklisted moves on (fails over)
//! before its datagram is sent.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{is_server_failure, UdpWorker, HEADROOM, LISTEN_BUDGET, MAX_ERRORS};
use crate::domain::server::{ServerId, Target};
use crate::engine::route;
use crate::engine::slab::key;
use crate::sys;

impl UdpWorker {
    /// Reads datagrams from clients until the socket is drained or the turn's budget is spent.
    pub(super) fn relay_clients(&mut self, now: u64) {
        self.listen_more = false;
        let mut buf = std::mem::take(&mut self.buf);
        let mut drained = false;
        let mut errors = 0;
        for _ in 0..LISTEN_BUDGET {
            match self
                .sock
                .recv_from(buf.get_mut(HEADROOM..).unwrap_or_default())
            {
                Ok((n, from)) => self.relay_client(&mut buf, n, from, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // Interrupted, or a transient error: the next datagram may be fine. Errors
                // that keep coming end the turn (the next datagram's edge brings another).
                Err(_) => {
                    errors += 1;
                    if errors >= MAX_ERRORS {
                        drained = true;
                        break;
                    }
                }
            }
        }
        self.buf = buf;
        self.listen_more = !drained;
    }

    /// Relays one client datagram: finds or makes its flow, moves the flow off a failed or
    /// blacklisted server, sends (failing over when the server refuses at once).
    /// The datagram is the `n` bytes at [`HEADROOM`] in `buf`.
    fn relay_client(&mut self, buf: &mut [u8], n: usize, from: SocketAddr, now: u64) {
        let local = self.local;
        let slot = match self.flows.get(&from) {
            Some(&s) => s,
            None => match self.new_flow(from, now) {
                Some(s) => s,
                None => return,
            },
        };
        if !self.check_target(slot, now) {
            return;
        }
        // Each refusal blacklists a server, so this ends within the table's length.
        loop {
            let Some(flow) = self.flow_mut(slot) else {
                return;
            };
            let client = SocketAddr::new(flow.ip, flow.client.port());
            let data =
                crate::engine::udp_proxy::datagram(buf, HEADROOM, n, flow.proxy, client, local);
            match flow.sock.send(data) {
                Ok(_) => {
                    // The client's bytes (a PROXY header is not counted).
                    flow.sent = flow.sent.saturating_add(n as u64);
                    flow.last_active = now;
                    let target = flow.target;
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.sent.fetch_add(n as u64, Relaxed);
                    }
                    return;
                }
                Err(e) if is_server_failure(&e) => {
                    // An earlier datagram drew a port unreachable: the server is down.
                    let (target, first, ip) = (flow.target, flow.first, flow.ip);
                    let next = self.fail_target(target, first, ip, now, &e, true);
                    if !self.reroute(slot, next, now) {
                        return;
                    }
                }
                // Full socket buffer or a local error: UDP may drop, so this datagram goes.
                Err(e) => {
                    if self.shared.settings.read().debug > 1 {
                        log::trace!("UDP datagram from {from} dropped: {e}");
                    }
                    return;
                }
            }
        }
    }

    /// Moves the flow in `slot` off its server if that failed or is blacklisted now. Returns
    /// whether the flow is still there (with a usable target) for the datagram.
    fn check_target(&mut self, slot: usize, now: u64) -> bool {
        let Some(flow) = self.slots.get(slot) else {
            return false;
        };
        let usable = !flow.failed
            && self
                .shared
                .servers
                .read()
                .target(flow.target)
                .is_some_and(|s| s.keeps_flows(now));
        if usable {
            return true;
        }
        let (target, first, ip) = (flow.target, flow.first, flow.ip);
        // A failed server was blacklisted when it failed; an operator blacklisted this one.
        let next = self.fail_target(target, first, ip, now, &"blacklisted", false);
        self.reroute(slot, next, now)
    }

    /// Gives the flow in `slot` a socket to `next` (failing over further if that cannot be
    /// opened), or closes it when there is no next target. Returns whether it lives on.
    fn reroute(&mut self, slot: usize, next: Option<Target>, now: u64) -> bool {
        let Some(flow) = self.slots.get(slot) else {
            return false;
        };
        let (first, ip) = (flow.first, flow.ip);
        // The old target's count is released (by `fail_target`): close without releasing.
        let opened = next.and_then(|t| self.open(t, first, ip, now));
        let Some((target, sock, proxy)) = opened else {
            self.close_uncounted(slot);
            return false;
        };
        let gen = self.slots.gen(slot).unwrap_or(0);
        if let Err(e) = self.poller.add(&sock, key(slot, gen, false)) {
            log::warn!("cannot watch UDP server socket: {e}");
            self.close(slot);
            return false;
        }
        let poller = Arc::clone(&self.poller);
        if let Some(flow) = self.flow_mut(slot) {
            poller.delete(&flow.sock);
            flow.sock = sock;
            flow.target = target;
            flow.failed = false;
            flow.proxy = proxy;
        }
        true
    }

    /// Opens an upstream socket to `target`, failing over (blacklisting each server that
    /// cannot be reached) as a TCP connect would. Counts the flow on the server it returns,
    /// records tracking. `None`: nowhere to go (every count taken was released).
    pub(super) fn open(
        &self,
        mut target: Target,
        first: Option<ServerId>,
        ip: IpAddr,
        now: u64,
    ) -> Option<(Target, UdpSocket, bool)> {
        let source = self.shared.settings.read().source;
        loop {
            let addr = {
                let servers = self.shared.servers.read();
                let srv = servers.target(target);
                if let Some(s) = srv {
                    s.conns.fetch_add(1, Relaxed);
                }
                srv.and_then(|s| s.addr)
            };
            let opened = addr
                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
                .and_then(|a| sys::udp_connect(a, source));
            match opened {
                Ok(sock) => {
                    use crate::domain::proxy_header::ProxyVersion;
                    let mut proxy = false;
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.total.fetch_add(1, Relaxed);
                        proxy = s.proxy == ProxyVersion::V2; // v1 has no datagram form
                    }
                    if let Target::Server(id) = target {
                        self.shared.clients.lock().record(ip, id, now);
                    }
                    return Some((target, sock, proxy));
                }
                Err(e) if sys::is_local_exhaustion(&e) => {
                    // Our shortage, not the server's fault: drop, blacklist nobody.
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.release();
                    }
                    return None;
                }
                Err(e) => target = self.fail_target(target, first, ip, now, &e, true)?,
            }
        }
    }

    /// `target` failed (or is blacklisted): releases the flow's count on it, blacklists it when
    /// `blacklist`, and picks where the flow goes next: the next available server after it,
    /// cyclically until the first choice comes round, then the emergency server; nowhere when
    /// stubborn or from the emergency server.
    fn fail_target(
        &self,
        target: Target,
        first: Option<ServerId>,
        ip: IpAddr,
        now: u64,
        why: &dyn std::fmt::Display,
        blacklist: bool,
    ) -> Option<Target> {
        route::fail_over(&self.shared, target, first, ip, now, why, blacklist)
    }
}
