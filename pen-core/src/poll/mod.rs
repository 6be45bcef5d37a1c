//! The readiness poller behind one small API: on Linux a thin epoll backend, elsewhere the
//! `polling` crate (kqueue, event ports, IOCP). The `portable-poller` cargo feature makes Linux
//! use `polling` too, so that CI builds and tests that path (`.ci/run` runs the whole suite
//! with it); `event::by_backend!` is the one place that says which backend a build has.
//!
//! Why not `polling` on Linux by default: every `Poller::wait` there re-arms its timer and
//! notifier (`timerfd_settime` plus two `epoll_ctl`, plus a `read` of the eventfd), four system
//! calls per wait that the relay does not need; and it cannot register `EPOLLRDHUP`, without
//! which a short read cannot be trusted to mean "drained" (data and FIN arriving before one
//! wait give a single edge), so the relay reads on until `WouldBlock` ([`REPORTS_HUP`]). Both
//! backends live in `sys` (the only `unsafe` module): `sys::epoll` and `sys::portable`.

pub(crate) mod event;

pub(crate) use event::{by_backend, Event};

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
