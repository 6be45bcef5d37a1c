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
/// With `share` (the data port), on Linux every TCP listener has `SO_REUSEPORT`, as C pen's
/// does: a second pen started on the same port shares it, so "start the new one, then stop the
/// old one" keeps serving. The control and metrics ports are not shared (`share` false, one
/// listener): a second pen cannot answer for the first.
pub(crate) fn bind_listeners(
    addr: &ListenAddr,
    n: usize,
    backlog: i32,
    share: bool,
) -> std::io::Result<(Vec<Option<Listener>>, ListenAddr)> {
    match addr {
        ListenAddr::Inet(a) => {
            let reuse = share && cfg!(target_os = "linux");
            let first = sys::tcp_listener(*a, backlog, reuse)?;
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
            let l = sys::unix_listener(p, backlog, None)?;
            let mut out = vec![Some(Listener::Unix(l))];
            out.resize_with(n, || None);
            Ok((out, addr.clone()))
        }
    }
}

/// Binds a control or metrics endpoint: one listener, never shared with another process
/// (`SO_REUSEPORT` off); a Unix socket gets `access` (mode, owner, group) before it listens.
pub(crate) fn bind_endpoint(
    addr: &ListenAddr,
    access: Option<sys::SocketAccess>,
) -> std::io::Result<(Option<Listener>, ListenAddr)> {
    const BACKLOG: i32 = 16;
    match addr {
        ListenAddr::Unix(p) => Ok((
            Some(Listener::Unix(sys::unix_listener(p, BACKLOG, access)?)),
            addr.clone(),
        )),
        ListenAddr::Inet(_) => {
            let (mut ls, bound) = bind_listeners(addr, 1, BACKLOG, false)?;
            Ok((ls.pop().flatten(), bound))
        }
    }
}

/// Binds listeners for `addr` for the `listen` command, without installing them: if a later
/// command of the same change fails, they are simply dropped and the old listener serves on.
pub(crate) fn bind_for(
    shared: &Shared,
    addr: &ListenAddr,
) -> Result<(Vec<Option<Listener>>, ListenAddr), ApplyError> {
    bind_listeners(addr, shared.nworkers(), shared.backlog, true).map_err(|source| ApplyError::Io {
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
