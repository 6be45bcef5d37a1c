//! Relaying one connection's turn: bytes both ways as far as readiness and the turn's read
//! budget allow, zero-copy `splice` between TCP sockets where it pays, HTTP header insertion
//! on the way up (and its refusals), access-log lines, byte counters; closing when both
//! directions are done.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use super::Worker;
use crate::engine::http::{send_refusal, HttpCarrier};
use crate::engine::net::Stream;
use crate::engine::relay::{BufPool, OnRead, Pipe, Readiness, READS_PER_TURN};

/// One direction's turn: zero-copy `splice` between TCP sockets where the OS offers it (unless
/// this direction could not get a kernel pipe), copying through a pooled buffer otherwise.
#[allow(clippy::too_many_arguments)]
fn pump(
    pipe: &mut Pipe,
    splice: bool,
    (src, dst): (&Stream, &Stream),
    ready: (&mut Readiness, &mut Readiness),
    other_done: bool,
    pool: &mut BufPool,
    budget: &mut u32,
    on_read: OnRead<'_>,
) -> io::Result<u64> {
    // The access log needs to see the bytes: no splice while it is on.
    #[cfg(target_os = "linux")]
    if splice && on_read.is_none() && !pipe.no_splice {
        let (r, w) = (&mut *ready.0, &mut *ready.1);
        let moved = pipe.pump_splice(src, dst, (r, w), other_done, pool, budget)?;
        if !pipe.no_splice {
            return Ok(moved);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = splice;
    pipe.pump(src, dst, ready, other_done, pool, budget, on_read)
}

impl Worker {
    /// Moves bytes both ways as far as readiness allows; closes when both directions are done
    /// (or one is, under `tcp_fastclose`), or on an error.
    pub(super) fn drive(&mut self, slot: usize) {
        // PROXY protocol: a client that must not send a header is looked at first.
        if self.slots.get(slot).is_some_and(|c| c.sniff) && !self.proxy_sniffed(slot) {
            return;
        }
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        if conn.tls.is_some() {
            self.drive_tls(slot);
            return;
        }
        let Some(server) = conn.server.as_ref() else {
            return;
        };
        let mut budget = READS_PER_TURN;
        let (splice, pool) = (conn.splice, &mut self.pool);
        // Access log: one line per chunk read from the client (checked once per turn).
        let (log, peer, server_addr) = (&mut self.log, conn.peer.ip, conn.server_addr);
        let clock = &*self.shared.clock;
        let mut record = |chunk: &[u8]| log.record(peer, server_addr, chunk, &*clock);
        let on_read: OnRead<'_> = if self.shared.log.enabled() {
            Some(&mut record)
        } else {
            None
        };
        let sockets = (&conn.client, server);
        let ready = (&mut conn.c, &mut conn.s);
        let done = conn.down.done();
        let b = &mut budget;
        let up = match conn.http.as_deref_mut() {
            // HTTP mode rewrites the requests: through its own carrier, never spliced.
            Some(h) => {
                let (src, dst) = sockets;
                let r = conn
                    .up
                    .pump_with(h, src, dst, ready, done, pool, b, on_read);
                if h.take_oversized() {
                    self.shared.counters.http_oversized.fetch_add(1, Relaxed);
                }
                r
            }
            None => pump(&mut conn.up, splice, sockets, ready, done, pool, b, on_read),
        };
        let sockets = (server, &conn.client);
        let ready = (&mut conn.s, &mut conn.c);
        let done = conn.up.done();
        let b = &mut budget;
        // The answer to a tunnel request: its first bytes are shown to the rewriter.
        let read = conn.down.bytes + conn.down.pending() as u64;
        let mut watch = HttpCarrier::watch(conn.http.as_deref_mut(), read, conn.down.eof);
        let watching = watch.is_some();
        let mut see = |chunk: &[u8]| watch.as_deref_mut().map_or((), |h| h.server_bytes(chunk));
        let hook: OnRead<'_> = if watching { Some(&mut see) } else { None };
        let down = pump(&mut conn.down, splice, sockets, ready, done, pool, b, hook);
        // The answer came: the requests held behind the tunnel request can be read again.
        let released = (conn.http.as_deref_mut()).is_some_and(HttpCarrier::take_released);
        if released {
            conn.c.read = true;
        }
        let refused = conn.http.as_deref().and_then(HttpCarrier::refusal);
        let (sent, received) = (*up.as_ref().unwrap_or(&0), *down.as_ref().unwrap_or(&0));
        if sent + received > 0 {
            conn.life.active(self.shared.now_ms());
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.sent.fetch_add(sent, Relaxed);
                s.received.fetch_add(received, Relaxed);
            }
        }
        let fastclose = self.shared.settings.read().tcp_fastclose;
        use crate::domain::settings::Fastclose;
        let fast = match fastclose {
            Fastclose::Off => false,
            // C pen's sides: up is the server (its end of file ends `down`), down the client.
            Fastclose::Up => conn.down.eof,
            Fastclose::Down => conn.up.eof,
            Fastclose::Both => conn.up.eof || conn.down.eof,
        };
        if let Some(r) = refused {
            send_refusal(&conn.client, r, &mut self.pool);
        }
        let failed = up.is_err() || down.is_err() || refused.is_some();
        if failed || fast || (conn.up.done() && conn.down.done()) {
            self.close(slot);
            return;
        }
        let more = (conn.c.read && conn.s.write) || (conn.s.read && conn.c.write);
        if released || (budget == 0 && more) {
            self.requeue(slot);
        }
    }
}
