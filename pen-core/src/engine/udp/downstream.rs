//! Server to client: a flow's server answers leave through the listening socket to the
//! client; a refusal (ICMP port unreachable) marks the flow failed and blacklists the server.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use super::{is_server_failure, UdpWorker, FLOW_BUDGET, MAX_ERRORS};
use crate::domain::server::Target;
use crate::engine::route;

impl UdpWorker {
    /// Relays the server's datagrams in `slot` to the client until its socket is drained or
    /// the turn's budget is spent. A refusal marks the flow failed and blacklists the server.
    pub(super) fn relay_server(&mut self, slot: usize, now: u64) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut received = 0u64;
        let mut more = true;
        let mut refused = None;
        let mut errors = 0;
        let gen = self.slots.gen(slot).unwrap_or(0);
        if let Some(flow) = self.slots.get_mut(slot) {
            for _ in 0..FLOW_BUDGET {
                match flow.sock.recv(&mut buf) {
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default();
                        // A full client-side buffer drops the datagram, as UDP may.
                        let _ = self.sock.send_to(data, flow.client);
                        received = received.saturating_add(n as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        more = false;
                        break;
                    }
                    Err(e) if is_server_failure(&e) => {
                        if !flow.failed {
                            flow.failed = true;
                            refused = Some((flow.target, e));
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        if errors >= MAX_ERRORS {
                            more = false;
                            break;
                        }
                    }
                }
            }
            if received > 0 {
                flow.received = flow.received.saturating_add(received);
                flow.last_active = now;
            }
            let target = flow.target;
            if more {
                self.runq.push((slot, gen));
            }
            if received > 0 {
                if let Some(s) = self.shared.servers.read().target(target) {
                    s.received.fetch_add(received, Relaxed);
                }
            }
        }
        self.buf = buf;
        if let Some((target, e)) = refused {
            self.blacklist_failed(target, now, &e);
        }
    }

    /// Blacklists a server that refused a flow's datagram (its flows move on their next
    /// datagram, see [`UdpWorker::check_target`]).
    fn blacklist_failed(&self, target: Target, now: u64, why: &dyn std::fmt::Display) {
        let settings = self.shared.settings.read();
        let servers = self.shared.servers.read();
        route::server_failed(&self.shared, &settings, &servers, target, now, why);
    }
}
