//! The readiness poller behind one small API: on Linux a thin epoll backend, elsewhere the
//! `polling` crate (kqueue, event ports, IOCP). The `portable-poller` cargo feature makes Linux
//! use `polling` too, so that CI builds and tests that path (`.ci/run` runs the whole suite
//! with it); [`by_backend!`] is the one place that says which backend a build has.
//!
//! Why not `polling` on Linux by default: every `Poller::wait` there re-arms its timer and
//! notifier (`timerfd_settime` plus two `epoll_ctl`, plus a `read` of the eventfd), four system
//! calls per wait that the relay does not need; and it cannot register `EPOLLRDHUP`, without
//! which a short read cannot be trusted to mean "drained" (data and FIN arriving before one
//! wait give a single edge), so the relay reads on until `WouldBlock` ([`REPORTS_HUP`]). Both
//! backends live in `sys` (the only `unsafe` module): `sys::epoll` and `sys::portable`.

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
    /// Only reported where [`REPORTS_HUP`] says so.
    pub(crate) hup: bool,
}

/// Compiles the items of its `epoll { .. }` block with the Linux epoll backend and those of its
/// `portable { .. }` block with the `polling` crate's: epoll on Linux unless the
/// `portable-poller` feature is on, `polling` everywhere else. Anything that depends on the
/// backend (not on Linux as such: `splice` and `SO_REUSEPORT` do not) says so through this, or
/// through what the backend exports ([`REPORTS_HUP`]).
macro_rules! by_backend {
    (epoll { $($epoll:item)* } portable { $($portable:item)* }) => {
        $(
            #[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
            $epoll
        )*
        $(
            #[cfg(not(all(target_os = "linux", not(feature = "portable-poller"))))]
            $portable
        )*
    };
}
pub(crate) use by_backend;

by_backend! {
    epoll {
        /// Whether the poller reports `hup` (so short reads may be trusted).
        pub(crate) use crate::sys::epoll::{Events, Poller, REPORTS_HUP};
    }
    portable {
        /// Whether the poller reports `hup` (so short reads may be trusted).
        pub(crate) use crate::sys::portable::{Events, Poller, REPORTS_HUP};
    }
}
