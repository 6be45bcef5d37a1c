//! Handing over to the epoll engine when a feature the uring engine does not do is turned on
//! while it runs (`penctl http`, `dummy`, `connect_on_data`, `log`).

use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::UringWorker;
use crate::engine::net::{Peer, Stream};

impl UringWorker {
    /// Gives the listener and the control channel to an epoll worker on a new thread, from
    /// now on the worker of this index; this one stops accepting and relays the connections
    /// it has until they close (they are no longer listed by the control plane). `first` is a
    /// client accepted (and admitted) just now: the epoll worker starts it before anything
    /// else.
    pub(super) fn switch_to_epoll(&mut self, why: &str, first: Option<(Stream, Peer)>) {
        let Some(rx) = self.rx.take() else {
            return;
        };
        log::warn!(
            "worker {}: {why} is on, which the io_uring engine does not do: new connections \
             go to the epoll engine",
            self.index
        );
        let listener = self.listener.take();
        // The polls of the listener and of the waker end here (both descriptors stay open:
        // they are the epoll worker's now).
        if let Some(l) = &listener {
            self.ring.cancel_fd(l.as_raw_fd());
        }
        self.ring.cancel_fd(self.poller.as_raw_fd());
        self.at_limit = false;
        self.accept_more = false;
        let (i, sh, poller) = (
            self.index,
            Arc::clone(&self.shared),
            Arc::clone(&self.poller),
        );
        let mut worker = match crate::engine::reactor::Worker::new(i, sh, poller, rx, listener) {
            Ok(w) => w,
            Err(e) => {
                log::error!("worker {i}: cannot start the epoll worker: {e}");
                if let Some((_, peer)) = first {
                    let _ = peer;
                    self.shared.release();
                }
                return;
            }
        };
        if let Some((client, peer)) = first {
            worker.start(client, peer, self.shared.now_ms());
        }
        let t = std::thread::Builder::new()
            .name(format!("pen-worker-{i}"))
            .spawn(move || worker.run());
        match t {
            Ok(t) => self.successor = Some(t),
            Err(e) => log::error!("worker {i}: cannot start the epoll worker: {e}"),
        }
    }
}
