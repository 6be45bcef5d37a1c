//! The readiness poller behind one small API: on Linux a thin epoll backend, elsewhere the
//! `polling` crate (kqueue, event ports, IOCP).
//!
//! Why not `polling` on Linux too: every `Poller::wait` there re-arms its timer and notifier
//! (`timerfd_settime` plus two `epoll_ctl`, plus a `read` of the eventfd), four system calls
//! per wait that the relay does not need; and it cannot register `EPOLLRDHUP`, without which a
//! short read cannot be trusted to mean "drained" (data and FIN arriving before one wait give
//! a single edge). The epoll backend lives in `sys` (the only `unsafe` module).

/// One readiness report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// The key given at registration.
    pub(crate) key: usize,
    /// Readable (data, EOF, error).
    pub(crate) readable: bool,
    /// Writable (space, error).
    pub(crate) writable: bool,
    /// The peer has closed its write side (FIN seen), or the socket hung up/failed: a read
    /// will return end of file or the error, so it must happen even after a short read.
    pub(crate) hup: bool,
}

#[cfg(target_os = "linux")]
pub(crate) use crate::sys::epoll::{Events, Poller};

#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{Events, Poller};

#[cfg(not(target_os = "linux"))]
mod portable {
    //! `polling` behind the same API; `hup` is never reported, so short reads are not trusted.
    use super::Event;
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    /// A `polling::Poller`.
    pub(crate) struct Poller(polling::Poller);

    /// Reported events.
    pub(crate) struct Events(polling::Events, Vec<Event>);

    impl Events {
        pub(crate) fn new() -> Self {
            Events(polling::Events::new(), Vec::new())
        }
        pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
            self.1.iter().copied()
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Self> {
            polling::Poller::new().map(Poller)
        }
        pub(crate) fn add(&self, fd: &impl AsRawFd, key: usize) -> io::Result<()> {
            crate::sys::register(&self.0, fd, key)
        }
        pub(crate) fn delete(&self, fd: &impl AsFd) {
            crate::sys::deregister(&self.0, fd)
        }
        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<usize> {
            events.0.clear();
            events.1.clear();
            let n = self.0.wait(&mut events.0, timeout)?;
            events.1.extend(events.0.iter().map(|e| Event {
                key: e.key,
                readable: e.readable,
                writable: e.writable,
                hup: false,
            }));
            Ok(n)
        }
        pub(crate) fn notify(&self) -> io::Result<()> {
            self.0.notify()
        }
    }
}

/// Whether the platform's poller reports `hup` (so short reads may be trusted).
pub(crate) const REPORTS_HUP: bool = cfg!(target_os = "linux");
