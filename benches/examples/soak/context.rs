//! The context shared by the client and backend threads ([`Ctx`]): the run flag, pen's
//! addresses, the statistics and the backends' stop generations; how an exchange's outcome
//! is counted (broken by a server stop, a client-seen error, corruption); connecting to pen.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::backends::TCP_BACKENDS;
use crate::rng::Rng;
use crate::stats::{ErrKind, Kind, Stats, ERR_NAMES};
use crate::wire::IO_TIMEOUT;

/// Notes (errors, corruption) kept for the report.
const MAX_NOTES: usize = 200;

/// What the client and backend threads share.
pub(crate) struct Ctx {
    pub(crate) t0: Instant,
    pub(crate) running: AtomicBool,
    pub(crate) pen_tcp: SocketAddrV4,
    pub(crate) pen_udp: SocketAddrV4,
    pub(crate) stats: Stats,
    /// Per TCP backend: incremented when a stop begins (before anything is closed) and again
    /// when it has ended (listener closed, connections shut down): odd while stopping.
    pub(crate) gens: [AtomicU64; TCP_BACKENDS],
    /// UDP backends currently stopped.
    pub(crate) udp_down: AtomicUsize,
    /// Milliseconds since t0 of the last UDP backend stop or start (`u64::MAX`: none yet).
    pub(crate) udp_event_ms: AtomicU64,
}

/// Why an exchange failed: an I/O error (of a kind) or corruption, each described.
pub(crate) enum Fail {
    Io(ErrKind, String),
    Corrupt(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        let k = match e.kind() {
            io::ErrorKind::UnexpectedEof => ErrKind::Eof,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrKind::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrKind::Timeout,
            _ => ErrKind::Other,
        };
        Fail::Io(k, e.to_string())
    }
}

/// A completed, verified exchange.
pub(crate) struct Done {
    pub(crate) server: u32,
    pub(crate) up: u64,
    pub(crate) down: u64,
}

impl Ctx {
    pub(crate) fn running(&self) -> bool {
        self.running.load(Relaxed)
    }

    pub(crate) fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    pub(crate) fn note(&self, s: String) {
        let mut notes = self.stats.notes.lock();
        if notes.len() < MAX_NOTES {
            notes.push(format!("[{:8.1} s] {s}", self.t0.elapsed().as_secs_f64()));
        } else {
            self.stats.notes_dropped.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn snap(&self) -> [u64; TCP_BACKENDS] {
        std::array::from_fn(|i| self.gens[i].load(SeqCst))
    }

    /// Whether the backend `server` (any backend when unknown) has been stopping or stopped
    /// since `snap` was taken. A connection that pen makes to a backend while the backend is
    /// being stopped (its listener not yet closed) breaks too, so a client that took its
    /// snapshot during the stop must see it: hence the check for a stop in progress.
    pub(crate) fn stopped_since(&self, snap: &[u64; TCP_BACKENDS], server: Option<u32>) -> bool {
        let hit = |i: usize| {
            let g = self.gens[i].load(SeqCst);
            g != snap[i] || g % 2 == 1
        };
        match server.map(|s| s as usize) {
            Some(i) if i < TCP_BACKENDS => hit(i),
            _ => (0..TCP_BACKENDS).any(hit),
        }
    }

    /// Sleeps up to `d` in small steps; false if the run ended meanwhile.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while self.running() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(100)));
        }
        false
    }

    pub(crate) fn connect(&self, kind: Kind, rng: &mut Rng) -> Option<TcpStream> {
        let ks = &self.stats.kinds[kind as usize];
        match connect_from(self.pen_tcp, rng.source()) {
            Ok(s) => {
                ks.conns.fetch_add(1, Relaxed);
                Some(s)
            }
            Err(e) => {
                ks.errs[ErrKind::Connect as usize].fetch_add(1, Relaxed);
                self.note(format!("{}: connect to pen: {e}", kind.name()));
                self.sleep(Duration::from_millis(100));
                None
            }
        }
    }

    /// Counts an exchange's outcome; returns whether it succeeded (and learns the server).
    pub(crate) fn record(
        &self,
        kind: Kind,
        res: Result<Done, Fail>,
        snap: &[u64; TCP_BACKENDS],
        server: &mut Option<u32>,
        what: &dyn Fn() -> String,
    ) -> bool {
        let ks = &self.stats.kinds[kind as usize];
        match res {
            Ok(d) => {
                ks.requests.fetch_add(1, Relaxed);
                ks.up.fetch_add(d.up, Relaxed);
                ks.down.fetch_add(d.down, Relaxed);
                *server = Some(d.server);
                true
            }
            Err(f) => {
                self.fail(kind, f, snap, *server, what);
                false
            }
        }
    }

    pub(crate) fn fail(
        &self,
        kind: Kind,
        f: Fail,
        snap: &[u64; TCP_BACKENDS],
        server: Option<u32>,
        what: &dyn Fn() -> String,
    ) {
        let ks = &self.stats.kinds[kind as usize];
        match f {
            Fail::Corrupt(d) => {
                ks.corrupt.fetch_add(1, Relaxed);
                self.note(format!("CORRUPTION {} {}: {d}", kind.name(), what()));
            }
            Fail::Io(e, msg) => {
                if self.stopped_since(snap, server) {
                    ks.broken.fetch_add(1, Relaxed);
                } else {
                    ks.errs[e as usize].fetch_add(1, Relaxed);
                    let on = server.map_or("server unknown".to_string(), |s| format!("server {s}"));
                    self.note(format!(
                        "{} error ({}), {on}, {}: {msg}",
                        kind.name(),
                        ERR_NAMES[e as usize],
                        what()
                    ));
                }
            }
        }
    }
}

/// A TCP connection to `to` from `src` (port chosen by the kernel), with no Nagle and the
/// client timeouts.
fn connect_from(to: SocketAddrV4, src: Ipv4Addr) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())?;
    sock.connect_timeout(&SocketAddr::V4(to).into(), Duration::from_secs(10))?;
    let s = TcpStream::from(sock);
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// A progress line on stderr, with the time since the start.
pub(crate) fn log(ctx: &Ctx, msg: &str) {
    eprintln!("[{:7.1} s] {msg}", ctx.t0.elapsed().as_secs_f64());
}
