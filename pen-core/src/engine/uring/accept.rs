//! Accepting on the uring engine as the epoll engine does: the listener's readiness comes
//! through the ring (a multishot poll), and the accepting itself is `accept4` after `-x`
//! admission, a batch at a time. So a client beyond `-x` is never taken off the kernel's
//! queue, whichever worker's listener (`SO_REUSEPORT`) it arrived at: io_uring accepts armed
//! in advance would each have to hold `-x` room, which one worker could hold while clients
//! wait at another's listener.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;

use super::{UringWorker, STARVED_RETRY_MS};
use crate::sys::uring::{Cqe, Op};

impl UringWorker {
    /// Arms the listener's readiness poll if it is not.
    pub(super) fn arm_listener(&mut self) {
        if self.listen_armed || self.rx.is_none() {
            return;
        }
        if let Some(fd) = self.listener.as_ref().map(AsRawFd::as_raw_fd) {
            self.ring.poll_readable(fd, Op::Ready, self.listener_gen);
            self.listen_armed = true;
        }
    }

    /// The listener is readable (or its poll ended).
    pub(super) fn on_listener_ready(&mut self, cqe: &Cqe) {
        if cqe.token != self.listener_gen & ((1 << crate::sys::uring::TOKEN_BITS) - 1) {
            return; // an older listener's
        }
        if !cqe.more {
            self.listen_armed = false;
        }
        if cqe.res >= 0 {
            self.accept_more = true;
        }
    }

    /// Accepts if the listener said so, a slot freed at the `-x` limit, or a back-off ended.
    pub(super) fn accept_if_due(&mut self, now: u64) {
        if self.rx.is_none() {
            return;
        }
        let slot_free =
            self.at_limit && self.shared.active.load(Relaxed) < self.shared.conn_max.load(Relaxed);
        let retry = self.accept_retry != 0 && now >= self.accept_retry;
        if self.accept_more || slot_free || retry {
            self.accept(now);
        }
    }

    /// Accepts up to a batch (`-m`), each admitted under `-x` first.
    fn accept(&mut self, now: u64) {
        self.accept_more = false;
        self.at_limit = false;
        self.accept_retry = 0;
        for _ in 0..self.shared.accept_batch.max(1) {
            if !self.shared.admit() {
                // At the -x limit: new clients wait in the kernel's queue until a slot frees
                // (the closing worker wakes everyone).
                self.shared.counters.accept_pauses.fetch_add(1, Relaxed);
                self.at_limit = true;
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                self.shared.release();
                return;
            };
            match listener.accept() {
                Ok((client, peer)) => {
                    self.shared.counters.accepted.fetch_add(1, Relaxed);
                    self.start(client, peer, now);
                    if self.accept_retry != 0 || self.rx.is_none() {
                        return; // out of descriptors, or handed over to the epoll engine
                    }
                }
                Err(e) => {
                    self.shared.release();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => {}
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {
                            self.accept_more = true;
                        }
                        _ => {
                            // Out of descriptors or memory: retry in 100 ms rather than spin.
                            self.accept_retry = now.saturating_add(STARVED_RETRY_MS);
                        }
                    }
                    return;
                }
            }
        }
        self.accept_more = true; // batch spent; the poll will not say again for these
    }
}
