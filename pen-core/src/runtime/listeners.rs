//! Listening sockets: one per worker for TCP (`SO_REUSEPORT` on Linux, so the kernel spreads
//! connections), one for a Unix socket; bound at start and by `listen ADDR`, which hands the
//! new ones to the workers only when the whole change has succeeded.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;

use crate::domain::addr::ListenAddr;
use crate::engine::net::Listener;
use crate::engine::state::{Shared, WorkerMsg};
use crate::error::ApplyError;
use crate::sys;

/// Binds one listener per worker for TCP (each its own `SO_REUSEPORT` socket on Linux, so the
/// kernel spreads connections), or a single one for a Unix socket (worker 0 serves it).
/// Returns the listeners and the address actually bound (port 0 resolved).
///
/// `ours` says the address is the one this balancer already listens on (a `listen` to the same
/// address), where the exclusivity check would only find our own sockets.
pub(crate) fn bind_listeners(
    addr: &ListenAddr,
    n: usize,
    backlog: i32,
    ours: bool,
) -> std::io::Result<(Vec<Option<Listener>>, ListenAddr)> {
    match addr {
        ListenAddr::Inet(a) => {
            let reuse = cfg!(target_os = "linux") && n > 1;
            let mut a = *a;
            if reuse && !ours {
                // Claim the address with a plain socket first: SO_REUSEPORT alone would let a
                // second pen (same user) bind the same port and silently take part of the
                // traffic instead of failing with "address in use".
                a = sys::tcp_listener(a, 1, false)?.local_addr()?;
            }
            let first = sys::tcp_listener(a, backlog, reuse)?;
            let bound: SocketAddr = first.local_addr()?;
            let mut out = vec![Some(Listener::Tcp(first))];
            for _ in 1..n {
                out.push(if reuse {
                    Some(Listener::Tcp(sys::tcp_listener(bound, backlog, true)?))
                } else {
                    None
                });
            }
            Ok((out, ListenAddr::Inet(bound)))
        }
        ListenAddr::Unix(p) => {
            let l = sys::unix_listener(p, backlog)?;
            let mut out = vec![Some(Listener::Unix(l))];
            out.resize_with(n, || None);
            Ok((out, addr.clone()))
        }
    }
}

/// Binds listeners for `addr` for the `listen` command, without installing them: if a later
/// command of the same change fails, they are simply dropped and the old listener serves on.
pub(crate) fn bind_for(
    shared: &Shared,
    addr: &ListenAddr,
) -> Result<(Vec<Option<Listener>>, ListenAddr), ApplyError> {
    let ours = *shared.listen.lock() == *addr;
    bind_listeners(addr, shared.nworkers(), shared.backlog, ours).map_err(|source| ApplyError::Io {
        context: format!("cannot listen on '{addr}'"),
        source,
    })
}

/// Hands new listeners to the workers and, once they run, waits (boundedly) until each has
/// closed its old one: when `listen` replies, the old address no longer accepts.
pub(crate) fn install_listeners(
    shared: &Shared,
    listeners: Vec<Option<Listener>>,
    bound: ListenAddr,
) {
    let running = shared.running.load(Relaxed);
    let mut acks = Vec::new();
    for (link, l) in shared.workers.iter().zip(listeners) {
        let (tx, rx) = mpsc::channel();
        if link.send(WorkerMsg::Listen(l, running.then_some(tx))) {
            acks.push(rx);
        }
    }
    if running {
        for rx in acks {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
    *shared.listen.lock() = bound;
}
