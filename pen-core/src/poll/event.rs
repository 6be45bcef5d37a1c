//! What the backends report ([`Event`]) and the one switch between them ([`by_backend!`]):
//! kept apart from `poll/mod.rs`, which picks a backend from `sys`, so that the backends can
//! name these without importing their own selector.

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
    /// Only reported where `poll::REPORTS_HUP` says so.
    pub(crate) hup: bool,
    /// The peer's FIN is in, with no error and no urgent data pending: everything the peer
    /// sent before it is already queued, so a read that returns less than it asked for has
    /// drained the socket to its end of file (the read that would return 0 can be skipped).
    /// Only the epoll backend reports it.
    pub(crate) fin: bool,
}

/// Compiles the items of its `epoll { .. }` block with the Linux epoll backend and those of its
/// `portable { .. }` block with the `polling` crate's: epoll on Linux unless the
/// `portable-poller` feature is on, `polling` everywhere else. Anything that depends on the
/// backend (not on Linux as such: `splice` and `SO_REUSEPORT` do not) says so through this, or
/// through what the backend exports (`poll::REPORTS_HUP`).
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
