//! The `polling` crate (kqueue, event ports, IOCP; epoll on Linux with the `portable-poller`
//! feature) behind [`crate::poll`]'s API. Each socket is registered once, for read and write, in
//! edge mode where the poller supports it (level otherwise), never re-armed: the same contract
//! as the epoll backend, except that the peer's half-close is not reported (`polling` cannot ask
//! for `EPOLLRDHUP`, nor does it pass kqueue's `EV_EOF` on), so [`crate::poll::REPORTS_HUP`] is
//! false and short reads are not trusted.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use polling::PollMode;

use crate::poll::event::Event;

/// Whether this backend reports `hup` (so short reads may be trusted): no.
pub(crate) const REPORTS_HUP: bool = false;

/// A `polling::Poller`.
#[derive(Debug)]
pub(crate) struct Poller(polling::Poller);

/// Reported events.
pub(crate) struct Events(polling::Events, Vec<Event>);

impl Events {
    /// An empty buffer with room for a batch of events.
    pub(crate) fn new() -> Self {
        Events(polling::Events::new(), Vec::new())
    }

    /// The events of the last wait (the poller's own notifications are filtered out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.1.iter().copied()
    }
}

impl Poller {
    /// A new poller (with its notifier).
    pub(crate) fn new() -> io::Result<Self> {
        polling::Poller::new().map(Poller)
    }

    /// Registers `fd` once for both read and write readiness, in edge mode where the poller
    /// supports it (level otherwise); `polling`'s default, oneshot, would need a re-arm per
    /// event. Callers must [`Poller::delete`] the socket before closing it.
    pub(crate) fn add(&self, fd: &impl AsRawFd, key: usize) -> io::Result<()> {
        let mode = if self.0.supports_edge() {
            PollMode::Edge
        } else {
            PollMode::Level
        };
        // SAFETY: `polling` requires the source to be deleted before it is closed: every socket
        // registered here is owned by a worker (reactor, UDP, `oneshot`) that calls `delete`
        // before dropping it; see `reactor::Worker::close`.
        unsafe {
            self.0
                .add_with_mode(fd.as_raw_fd(), polling::Event::all(key), mode)
        }
    }

    /// Removes `fd` (errors ignored: the socket is about to be closed anyway).
    pub(crate) fn delete(&self, fd: &impl AsFd) {
        let _ = self.0.delete(fd.as_fd());
    }

    /// `fd` is about to be closed: `polling` requires it to be deleted first.
    pub(crate) fn closing(&self, fd: &impl AsFd) {
        self.delete(fd);
    }

    /// Waits for events (at most `timeout`).
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.0.clear();
        events.1.clear();
        self.0.wait(&mut events.0, timeout)?;
        events.1.extend(events.0.iter().map(|e| Event {
            key: e.key,
            readable: e.readable,
            writable: e.writable,
            hup: false,
            fin: false,
        }));
        Ok(events.1.len())
    }

    /// Wakes the thread waiting on this poller (or its next wait).
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.0.notify()
    }
}
