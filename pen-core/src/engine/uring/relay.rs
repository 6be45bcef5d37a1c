//! Relaying on the ring: each direction receives into a provided buffer, sends it on (one send
//! in flight per socket, so bytes stay in order), holds at most `QUEUE` chunks (then stops
//! receiving: back-pressure), passes the end of file on as a half-close, and counts bytes for
//! the server table and the client table. Closing cancels the sockets' operations and closes
//! them through the ring.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;

use super::{token, untoken, Chunk, UringWorker, GEN_BITS};
use crate::domain::settings::Fastclose;
use crate::engine::lifecycle::Phase;
use crate::engine::net::Stream;
use crate::sys::uring::{Cqe, Pool};

impl UringWorker {
    /// The slot of a completion's token if its connection is still the one it was for.
    pub(super) fn live(&self, slot: usize, gen: u32) -> bool {
        self.slots.gen(slot).map(|g| g & ((1 << GEN_BITS) - 1)) == Some(gen)
            && self.slots.get(slot).is_some()
    }

    /// Moves direction `dir` of `slot` on: sends what it holds, passes an end of file on,
    /// receives more while there is room; closes the connection when both directions are
    /// done (or one is, under `tcp_fastclose`).
    pub(super) fn pump(&mut self, slot: usize, dir: usize) {
        if self.quiet {
            return;
        }
        let Some(gen) = self.slots.gen(slot) else {
            return;
        };
        let tok = token(slot, gen, dir);
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        if conn.life.phase() != Phase::Established {
            return;
        }
        let (src, dst) = if dir == 0 {
            (conn.client_fd(), conn.server_fd())
        } else {
            (conn.server_fd(), conn.client_fd())
        };
        let other_done = conn.dirs.get(1 - dir).is_some_and(|d| d.done());
        let Some(d) = conn.dirs.get_mut(dir) else {
            return;
        };
        let mut shut_failed = false;
        if !d.send {
            if let Some(c) = d.queue.front().copied() {
                d.send = self
                    .ring
                    .send(dst, c.bid, c.start as usize, c.end as usize, tok);
            } else if d.eof && !d.shut {
                d.shut = true;
                // When the other direction is finished the close sends the FIN: no shutdown.
                if !other_done {
                    let target = if dir == 0 {
                        conn.server
                            .as_ref()
                            .map(|s| s.shutdown(std::net::Shutdown::Write))
                    } else {
                        conn.client.as_ref().map(Stream::shutdown_write)
                    };
                    shut_failed = matches!(target, Some(Err(e)) if e.kind() != std::io::ErrorKind::NotConnected);
                }
            }
        }
        let Some(d) = conn.dirs.get_mut(dir) else {
            return;
        };
        if !d.recv && !d.eof && d.queue.len() < super::QUEUE {
            let pool = if self.ring.buf_size(d.pool) > 0 {
                d.pool
            } else {
                Pool::Small
            };
            self.ring.recv(src, pool, tok);
            d.recv = true;
            d.armed = pool;
        } else if d.recv && !d.cancelling && d.queue.len() >= super::QUEUE {
            // Back-pressure: the destination is behind; stop taking bytes from the source.
            self.ring.cancel_recv(d.armed, tok);
            d.cancelling = true;
        }
        let fast = match self.shared.settings.read().tcp_fastclose {
            Fastclose::Off => false,
            // C pen's sides: up is the server (direction 1 reads it), down the client.
            Fastclose::Up => conn.dirs[1].eof,
            Fastclose::Down => conn.dirs[0].eof,
            Fastclose::Both => conn.dirs[0].eof || conn.dirs[1].eof,
        };
        if shut_failed || fast || conn.dirs.iter().all(|d| d.done()) {
            self.close(slot);
        }
    }

    /// A receive completed: hold the bytes, or note the end of file, or fail.
    pub(super) fn on_recv(&mut self, cqe: &Cqe) {
        let (slot, gen, dir) = untoken(cqe.token);
        if !self.live(slot, gen) {
            if let Some(bid) = cqe.index {
                self.ring.release(bid);
            }
            return;
        }
        let small = self.ring.buf_size(Pool::Small);
        let tok = cqe.token;
        let Some(d) = self.slots.get_mut(slot).and_then(|c| c.dirs.get_mut(dir)) else {
            return;
        };
        if !cqe.more {
            d.recv = false;
            d.cancelling = false;
        }
        match cqe.res {
            n if n > 0 => {
                let Some(bid) = cqe.index else {
                    return self.close(slot);
                };
                let chunk = Chunk {
                    bid,
                    start: 0,
                    end: n as u32,
                };
                d.queue.push_back(chunk);
                if d.adapt(n as usize, small) && d.recv && !d.cancelling && d.pool != d.armed {
                    // The receive in flight picks from the other pool: end it, the next one
                    // (armed when its last completion comes) picks from the new pool.
                    self.ring.cancel_recv(d.armed, tok);
                    d.cancelling = true;
                }
            }
            0 => {
                d.eof = true;
                if let Some(bid) = cqe.index {
                    self.ring.release(bid);
                }
            }
            e if -e == libc::ENOBUFS && cqe.pool == Pool::Large => {
                // The receive took every large buffer lent: if more are left it goes on with
                // them (the worker lent them as it reaped), else small ones will do. Armed
                // again right away below.
                if self.ring.available(Pool::Large) == 0 {
                    d.large_pool_empty();
                }
            }
            e if -e == libc::ENOBUFS => {
                // No free buffer: armed again when one comes back (marked busy till then).
                d.recv = true;
                self.starved.push((slot, gen, dir));
                return;
            }
            e if -e == libc::ECANCELED || -e == libc::EINTR => {}
            _ => return self.close(slot),
        }
        self.pump(slot, dir);
    }

    /// A send completed: the chunk moves on (its buffer goes back when it is all sent).
    pub(super) fn on_send(&mut self, cqe: &Cqe) {
        let (slot, gen, dir) = untoken(cqe.token);
        if !self.live(slot, gen) {
            return; // the ring gives the buffer back (the close released it)
        }
        let now = self.shared.now_ms();
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let target = conn.target;
        let Some(d) = conn.dirs.get_mut(dir) else {
            return;
        };
        d.send = false;
        if cqe.res <= 0 {
            if -cqe.res == libc::EINTR || -cqe.res == libc::ECANCELED {
                // Nothing sent (cancelled for a handoff, which resends or moves the chunk).
                return self.pump(slot, dir);
            }
            return self.close(slot);
        }
        let n = cqe.res as u32;
        d.bytes += u64::from(n);
        let mut finished = None;
        if let Some(front) = d.queue.front_mut() {
            front.start = front.start.saturating_add(n).min(front.end);
            if front.start == front.end {
                finished = Some(front.bid);
            }
        }
        if let Some(bid) = finished {
            d.queue.pop_front();
            self.ring.release(bid);
        }
        conn.life.active(now);
        if let Some(s) = self.shared.servers.read().target(target) {
            let counter = if dir == 0 { &s.sent } else { &s.received };
            counter.fetch_add(u64::from(n), Relaxed);
        }
        self.pump(slot, dir);
    }

    /// Closes `slot`'s connection and releases its target's connection count.
    pub(super) fn close(&mut self, slot: usize) {
        let Some(conn) = self.slots.get(slot) else {
            return;
        };
        if matches!(conn.life.phase(), Phase::Connecting | Phase::Established) {
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.release();
            }
        }
        self.close_uncounted(slot);
    }

    /// Closes without touching the target's connection count (already released): operations
    /// on the sockets are cancelled and the sockets closed through the ring, the buffers held
    /// go back (each once its send is over), the bytes go into the client table.
    pub(super) fn close_uncounted(&mut self, slot: usize) {
        let Some(mut conn) = self.slots.remove(slot) else {
            return;
        };
        if let Some(c) = conn.client.take() {
            let fd: OwnedFd = match c {
                Stream::Tcp(s) => s.into(),
                Stream::Unix(s) => s.into(),
            };
            self.ring.close(fd);
        }
        if let Some(s) = conn.server.take() {
            self.ring.close(s.into());
        }
        for d in &mut conn.dirs {
            while let Some(c) = d.queue.pop_front() {
                self.ring.release(c.bid);
            }
        }
        let (down, up) = (conn.dirs[1].bytes, conn.dirs[0].bytes);
        if up + down > 0 {
            // sx: to the client.
            self.shared.clients.lock().add_bytes(conn.peer.ip, down, up);
        }
        self.unadmit(conn.peer, conn.per_client);
    }
}
