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

/// Waits (at most 10 s) until `f` holds.
pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
