//! The worker's TLS paths: accepting into a handshake, finishing it (then routing and
//! connecting, so a failed handshake never reaches a server), and relaying through the TLS
//! session. The plain-TCP paths in the parent module are untouched by any of this.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{Conn, Worker};
use crate::domain::server::Target;
use crate::engine::http::HttpCarrier;
use crate::engine::lifecycle::{Lifecycle, Timer};
use crate::engine::net::{Peer, Stream};
use crate::engine::relay::{OnRead, Readiness, READS_PER_TURN};
use crate::engine::route;
use crate::engine::tls_session::{TlsConn, TlsFailed};
use crate::tls::stats::Failure;

/// Upper bound on the rounds of one TLS turn (each round moves bytes or the turn ends).
const ROUNDS_PER_TURN: usize = 64;

impl Worker {
    /// A new client on a TLS listener (the client ACL has let it in, or an abuse server waits
    /// for it): starts its handshake, which must be done within `handshake_timeout`; the
    /// server is chosen once it is done. `per_client`: counted by the per-client cap.
    pub(super) fn start_tls(&mut self, client: Stream, peer: Peer, now: u64, per_client: bool) {
        let Some(tls) = self.shared.tls.as_ref() else {
            return;
        };
        let session = match TlsConn::new(tls.current()) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot start a TLS session: {e}");
                self.unadmit(peer, per_client);
                return;
            }
        };
        let (nodelay, limit) = {
            let s = self.shared.settings.read();
            (s.tcp_nodelay, s.handshake_timeout_secs)
        };
        if nodelay {
            let _ = client.set_nodelay(true);
        }
        // The target is a placeholder until the handshake is done (the phase says so).
        let (life, deadline) = Lifecycle::handshaking(now, limit);
        let mut conn = Conn::new(client, peer, Target::Abuse, None, life);
        conn.tls = Some(Box::new(session));
        conn.per_client = per_client;
        if let Some(slot) = self.install(conn) {
            self.arm(slot, Timer::Handshake, deadline);
            // The ClientHello is often in already, and a new socket has room to write: try
            // both now rather than after the registration's first event.
            if let Some(c) = self.slots.get_mut(slot) {
                c.c.read = true;
                c.c.write = true;
            }
            self.handshake(slot, now);
        }
    }

    /// Moves the handshake on; when it is done, counts it and routes the client.
    pub(super) fn handshake(&mut self, slot: usize, now: u64) {
        // PROXY protocol: a client that must not send a header is looked at first.
        if self.slots.get(slot).is_some_and(|c| c.sniff) && !self.proxy_sniffed(slot) {
            return;
        }
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(tls) = conn.tls.as_deref_mut() else {
            return;
        };
        let mut budget = READS_PER_TURN;
        let mut failed = None;
        // Records in, our flight out, until neither moves (rustls reads no more while its
        // flight is unsent).
        for _ in 0..ROUNDS_PER_TURN {
            let pulled = tls.pull(&conn.client, &mut conn.c, &mut budget, &mut self.pool);
            // Send what rustls queued (its flight, or an alert after an error).
            let pushed = tls.push(&conn.client, &mut conn.c);
            match (pulled, pushed) {
                (Err(TlsFailed(why)), _) => failed = Some(why),
                (_, Err(_)) => failed = Some(Failure::Other),
                (Ok(p), Ok(q)) if (p || q) && tls.handshaking() => continue,
                _ => {}
            }
            break;
        }
        if failed.is_none() && tls.handshaking() && tls.eof() {
            failed = Some(Failure::Eof);
        }
        if let Some(why) = failed {
            self.handshake_failed(slot, why);
            return;
        }
        if tls.handshaking() {
            if budget == 0 {
                self.requeue(slot);
            }
            return;
        }
        let (tls13, resumed) = tls.kind();
        conn.life.handshake_done(now);
        if let Some(t) = self.shared.tls.as_ref() {
            t.stats.handshake(tls13, resumed);
        }
        self.route(slot, now);
    }

    /// Counts a failed handshake and closes that client (no server was involved).
    pub(super) fn handshake_failed(&mut self, slot: usize, why: Failure) {
        if let Some(t) = self.shared.tls.as_ref() {
            t.stats.failure(why);
        }
        if self.shared.settings.read().debug > 0 {
            if let Some(c) = self.slots.get(slot) {
                let (ip, port) = (c.peer.ip, c.peer.port);
                log::debug!("TLS handshake with {ip}:{port} failed: {}", why.label());
            }
        }
        self.close(slot);
    }

    /// After the handshake: the client ACL, tracking and the selection policy choose the
    /// target, as for a plain connection at accept. Under `-H` the request-head deadline
    /// starts now. (`connect_on_data` takes the finished handshake as the client's first
    /// bytes: the handshake deadline has bounded the wait.)
    fn route(&mut self, slot: usize, now: u64) {
        if self.shared.settings.read().http {
            self.arm_request(slot, now);
        }
        let shared = Arc::clone(&self.shared);
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let (ip, port) = (conn.peer.ip, conn.peer.port);
        let who = format_args!("client {ip}:{port}");
        match route::choose(&shared, ip, port, now, &who) {
            Some((target, first)) => {
                conn.target = target;
                conn.first = first;
                self.connect(slot, now);
            }
            // Nothing was counted against a server.
            None => self.close_uncounted(slot),
        }
    }

    /// [`Worker::drive`] for a TLS connection: records in, plaintext both ways, records out,
    /// round after round while anything moves.
    pub(super) fn drive_tls(&mut self, slot: usize) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let Conn {
            client,
            server,
            tls,
            http,
            up,
            down,
            c,
            s,
            peer,
            server_addr,
            ..
        } = conn;
        let (Some(server), Some(tls)) = (server.as_ref(), tls.as_deref_mut()) else {
            return;
        };
        let pool = &mut self.pool;
        let (log, ip, to) = (&mut self.log, peer.ip, *server_addr);
        let clock = &*self.shared.clock;
        let mut record = |chunk: &[u8]| log.record(ip, to, chunk, &*clock);
        let logging = self.shared.log.enabled();
        let mut budget = READS_PER_TURN;
        let (mut sent, mut received, mut oversized) = (0u64, 0u64, false);
        let mut failed = false;
        for _ in 0..ROUNDS_PER_TURN {
            let pulled = match tls.pull(client, c, &mut budget, pool) {
                Ok(p) => p,
                Err(_) => {
                    failed = true;
                    break;
                }
            };
            // Client to server: the decrypted bytes. `hup` keeps a short read from ending the
            // round: only `WouldBlock` says rustls has no more plaintext.
            let mut plain = Readiness {
                read: true,
                write: false,
                hup: true,
                fin: false,
            };
            let on_read: OnRead<'_> = if logging { Some(&mut record) } else { None };
            let other_done = down.done();
            let r = (&mut plain, &mut *s);
            let b = &mut budget;
            let moved_up = match http.as_deref_mut() {
                Some(h) => {
                    let m = up.pump_with(h, tls.reader(), server, r, other_done, pool, b, on_read);
                    oversized |= h.take_oversized();
                    m
                }
                None => up.pump(tls.reader(), server, r, other_done, pool, b, on_read),
            };
            // Server to client, into rustls. `other_done` is false so the server's end of
            // file always becomes a close_notify (sent before the socket closes).
            let mut plain = Readiness {
                read: false,
                write: true,
                hup: false,
                fin: false,
            };
            let r = (&mut *s, &mut plain);
            let b = &mut budget;
            // The answer to a tunnel request: its first bytes are shown to the rewriter.
            let read = down.bytes + down.pending() as u64;
            let moved_down = match HttpCarrier::watch(http.as_deref_mut(), read, down.eof) {
                Some(h) => {
                    let mut see = |chunk: &[u8]| h.server_bytes(chunk);
                    down.pump(server, tls.writer(), r, false, pool, b, Some(&mut see))
                }
                None => down.pump(server, tls.writer(), r, false, pool, b, None),
            };
            let released = http.as_deref_mut().is_some_and(HttpCarrier::take_released);
            if let Some(refusal) = http.as_deref().and_then(HttpCarrier::refusal) {
                // Queued before the close_notify that closing sends.
                let _ = tls.writer().write(refusal.response());
                failed = true;
                break;
            }
            let pushed = tls.push(client, c);
            let (Ok(u), Ok(d), Ok(p)) = (moved_up, moved_down, pushed) else {
                failed = true;
                break;
            };
            sent += u;
            received += d;
            if !(pulled || p || u > 0 || d > 0 || released) || budget == 0 {
                break;
            }
        }
        if oversized {
            self.shared.counters.http_oversized.fetch_add(1, Relaxed);
        }
        if sent + received > 0 {
            conn.life.active(self.shared.now_ms());
            if let Some(srv) = self.shared.servers.read().target(conn.target) {
                srv.sent.fetch_add(sent, Relaxed);
                srv.received.fetch_add(received, Relaxed);
            }
        }
        let flushed = conn.tls.as_ref().is_none_or(|t| t.flushed());
        use crate::domain::settings::Fastclose;
        let fast = match self.shared.settings.read().tcp_fastclose {
            Fastclose::Off => false,
            // C pen's sides: up is the server (its end of file ends `down`), down the client.
            Fastclose::Up => conn.down.eof,
            Fastclose::Down => conn.up.eof,
            Fastclose::Both => conn.up.eof || conn.down.eof,
        };
        if failed || fast || (conn.up.done() && conn.down.done() && flushed) {
            self.close(slot);
            return;
        }
        if budget == 0 {
            self.requeue(slot);
        }
    }
}
