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
    if shared.draining.load(Relaxed) {
        // Shutting down: the new address is not opened (the listeners are dropped).
        return;
    }
    // The copies kept for an upgrade follow (best effort: without them an upgrade hands over
    // fewer sockets and the new binary binds the rest).
    let dups: std::io::Result<Vec<_>> = listeners.iter().flatten().map(dup_listener).collect();
    if let Ok(dups) = dups {
        shared.handover.lock().data = dups;
    }
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

/// A copy of `l`'s descriptor, kept to hand the socket to a new binary.
pub(crate) fn dup_listener(l: &Listener) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    match l {
        Listener::Tcp(t) => t.as_fd().try_clone_to_owned(),
        Listener::Unix(u) => u.as_fd().try_clone_to_owned(),
    }
}

/// The workers' data listeners made of the sockets inherited in an upgrade (see
/// `runtime::upgrade`): as many as there are workers (more are bound to the same address with
/// `SO_REUSEPORT` if this pen has more workers; a surplus is closed). Returns the TCP or Unix
/// listeners (one per worker), the UDP sockets, and the address.
pub(crate) fn adopt_data(
    fds: Vec<std::os::fd::OwnedFd>,
    config: &crate::runtime::config::Config,
    n: usize,
) -> std::io::Result<(Vec<Option<Listener>>, Vec<std::net::UdpSocket>, ListenAddr)> {
    let mut fds = fds.into_iter().take(n.max(1));
    match &config.listen {
        ListenAddr::Unix(_) => {
            let mut out: Vec<Option<Listener>> = fds
                .next()
                .map(|fd| Listener::Unix(fd.into()))
                .into_iter()
                .map(Some)
                .collect();
            out.resize_with(n, || None);
            Ok((out, Vec::new(), config.listen.clone()))
        }
        ListenAddr::Inet(_) if config.udp => {
            let mut socks: Vec<std::net::UdpSocket> = fds.map(Into::into).collect();
            let bound = first_addr(socks.first().map(std::net::UdpSocket::local_addr))?;
            while socks.len() < n {
                socks.push(sys::udp_socket(bound, true)?);
            }
            let none = std::iter::repeat_with(|| None).take(n).collect();
            Ok((none, socks, ListenAddr::Inet(bound)))
        }
        ListenAddr::Inet(_) => {
            let mut ls: Vec<std::net::TcpListener> = fds.map(Into::into).collect();
            let bound = first_addr(ls.first().map(std::net::TcpListener::local_addr))?;
            while ls.len() < n {
                ls.push(sys::tcp_listener(bound, config.backlog, true)?);
            }
            let out = ls.into_iter().map(|l| Some(Listener::Tcp(l))).collect();
            Ok((out, Vec::new(), ListenAddr::Inet(bound)))
        }
    }
}

/// The address of the first inherited socket.
fn first_addr(a: Option<std::io::Result<SocketAddr>>) -> std::io::Result<SocketAddr> {
    a.unwrap_or_else(|| {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no inherited socket",
        ))
    })
}

/// A control or metrics endpoint made of an inherited socket, if there is one.
pub(crate) fn adopt_endpoint(
    fd: Option<std::os::fd::OwnedFd>,
    addr: &ListenAddr,
) -> Option<std::io::Result<(Option<Listener>, ListenAddr)>> {
    let fd = fd?;
    Some(match addr {
        ListenAddr::Unix(_) => Ok((Some(Listener::Unix(fd.into())), addr.clone())),
        ListenAddr::Inet(_) => {
            let l = std::net::TcpListener::from(fd);
            l.local_addr()
                .map(|a| (Some(Listener::Tcp(l)), ListenAddr::Inet(a)))
        }
    })
}
