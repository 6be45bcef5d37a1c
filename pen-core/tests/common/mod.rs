//! Helpers shared by the library's integration tests: loopback backends, a balancer on an
//! ephemeral port, bounded waits.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a part

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use pen_core::addr::{ListenAddr, ServerSpec};
use pen_core::{Balancer, Config};

/// Echo backend: copies everything back, passes the half-close back.
pub(crate) fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || {
                let mut r = c.try_clone().unwrap();
                let mut w = c;
                let _ = std::io::copy(&mut r, &mut w);
                let _ = w.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A server spec with no limits, weight or priority.
pub(crate) fn spec(addr: SocketAddr) -> ServerSpec {
    ServerSpec {
        addr,
        max: 0,
        hard: 0,
        weight: 0,
        prio: 0,
    }
}

/// A config listening on 127.0.0.1 (ephemeral port), two workers, over `servers`.
pub(crate) fn config(servers: &[SocketAddr]) -> Config {
    let mut c = Config::new(
        ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 0))),
        servers.iter().copied().map(spec).collect(),
    );
    c.workers = 2;
    c
}

/// The TCP address a balancer listens on.
pub(crate) fn addr_of(b: &Balancer) -> SocketAddr {
    match b.listen_addr() {
        ListenAddr::Inet(a) => a,
        ListenAddr::Unix(p) => panic!("listening on {}", p.display()),
    }
}

/// Waits (at most 10 s, looking every 10 ms) until `f` holds; panics naming `what` if it does
/// not. The only pause of these tests' waits.
pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let within = Duration::from_secs(10);
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// TCP states of `/proc/net/tcp`.
pub(crate) const TCP_ESTABLISHED: u8 = 0x01;
pub(crate) const TCP_LISTEN: u8 = 0x0A;

/// A TCP socket bound to a local port, as `/proc/net/tcp` shows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpSocket {
    /// [`TCP_ESTABLISHED`], [`TCP_LISTEN`], ...
    pub(crate) state: u8,
    /// Established: bytes not yet read by the owner. Listening: connections waiting to be
    /// accepted.
    pub(crate) rx_queue: u64,
    /// The socket's inode: which socket this is, whatever port it has.
    pub(crate) inode: u64,
}

/// The IPv4 TCP sockets whose local port is `port` (a listener and the connections it took).
/// Only the lines naming the port are parsed: `/proc/net/tcp` may list tens of thousands.
pub(crate) fn tcp_sockets_on(port: u16) -> Vec<TcpSocket> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let pat = format!(":{port:04X} ");
    text.lines()
        .filter(|l| l.contains(&pat))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let local = u16::from_str_radix(w.get(1)?.rsplit(':').next()?, 16).ok()?;
            let (_, rx) = w.get(4)?.split_once(':')?;
            (local == port).then_some(TcpSocket {
                state: u8::from_str_radix(w.get(3)?, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
                inode: w.get(9)?.parse().ok()?,
            })
        })
        .collect()
}
