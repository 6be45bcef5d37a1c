//! The backends behind the two pens: TCP backends (an accept thread and a thread per
//! connection, speaking `gen`, `echo` and `half`) and UDP echo backends, each stopped and
//! started on demand; the bit flips of `--inject-corruption`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;
use socket2::SockRef;

use crate::checksum::Fnv;
use crate::context::Ctx;
use crate::wire::{
    dec_req, enc_rep, get_u32, read_header, recv_sum, send_stream, Op, Rep, CHUNK, DOWN_SALT, HDR,
    IO_TIMEOUT, UDP_HDR, UDP_MAGIC,
};

/// TCP backends behind the TCP pen.
pub(crate) const TCP_BACKENDS: usize = 3;
/// UDP backends behind the UDP pen.
pub(crate) const UDP_BACKENDS: usize = 2;

/// The accept thread and stop flag of a running backend.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A TCP backend: its port (kept across restarts), its accept thread while running and its
/// open connections (so that a stop can shut them down).
pub(crate) struct TcpBackend {
    idx: u32,
    port: AtomicU16,
    state: Mutex<Option<Running>>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
}

impl TcpBackend {
    pub(crate) fn new(idx: u32) -> TcpBackend {
        TcpBackend {
            idx,
            port: AtomicU16::new(0),
            state: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Relaxed)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.state.lock().is_some()
    }

    /// Binds `port` (0: a new ephemeral one) and starts accepting.
    pub(crate) fn start(self: &Arc<Self>, ctx: &Arc<Ctx>, port: u16) -> io::Result<()> {
        let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        self.port.store(l.local_addr()?.port(), Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (me, ctx, flag) = (Arc::clone(self), Arc::clone(ctx), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name(format!("soak-tcp{}", self.idx))
            .spawn(move || me.accept_loop(&l, &flag, &ctx))?;
        *self.state.lock() = Some(Running { stop, thread });
        Ok(())
    }

    fn accept_loop(self: &Arc<Self>, l: &TcpListener, stop: &AtomicBool, ctx: &Arc<Ctx>) {
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let id = self.next.fetch_add(1, Relaxed);
                    if let Ok(c) = s.try_clone() {
                        self.conns.lock().insert(id, c);
                    }
                    let (me, ctx) = (Arc::clone(self), Arc::clone(ctx));
                    let spawned = thread::Builder::new()
                        .name(format!("soak-tcp{}-conn", self.idx))
                        .spawn(move || {
                            // An error is expected after a stop; otherwise the client
                            // notices it.
                            let _ = serve_conn(s, me.idx, &ctx);
                            me.conns.lock().remove(&id);
                        });
                    if spawned.is_err() {
                        self.conns.lock().remove(&id);
                    }
                }
                Err(_) => {
                    if stop.load(Relaxed) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Closes the listener and shuts down every connection (`abortive`: with an RST at close).
    pub(crate) fn stop(&self, ctx: &Ctx, abortive: bool) -> bool {
        let Some(run) = self.state.lock().take() else {
            return false;
        };
        let gen = &ctx.gens[self.idx as usize];
        gen.fetch_add(1, SeqCst);
        run.stop.store(true, Relaxed);
        // Wake the accept thread.
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port()));
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        let _ = run.thread.join();
        let conns: Vec<TcpStream> = self.conns.lock().drain().map(|(_, s)| s).collect();
        for s in conns {
            if abortive {
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            let _ = s.shutdown(Shutdown::Both);
        }
        gen.fetch_add(1, SeqCst);
        true
    }
}

/// Serves one backend connection until the client closes it (or `half` ends it).
fn serve_conn(mut s: TcpStream, idx: u32, ctx: &Ctx) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut h = [0u8; HDR];
        if !read_header(&mut s, &mut h)? {
            return Ok(());
        }
        let Some(req) = dec_req(&h) else {
            ctx.stats.server_bad_header.fetch_add(1, Relaxed);
            ctx.note(format!(
                "CORRUPTION backend {idx}: bad request header {:02x?}",
                &h[..]
            ));
            return Ok(());
        };
        match req.op {
            Op::Gen => {
                let sum = recv_sum(&mut s, req.up, &mut buf)?;
                let rep = Rep {
                    server: idx,
                    up_sum: sum,
                    up_len: req.up,
                    down: req.down,
                };
                send_stream(
                    &mut s,
                    &enc_rep(&rep),
                    req.seed ^ DOWN_SALT,
                    req.down,
                    &mut buf,
                    inject(req.down > 0),
                )?;
            }
            Op::Echo => {
                let rep = Rep {
                    server: idx,
                    up_sum: 0,
                    up_len: 0,
                    down: req.up,
                };
                s.write_all(&enc_rep(&rep))?;
                let mut left = req.up;
                let mut flip = inject(req.up > 0);
                while left > 0 {
                    let want = left.min(CHUNK as u64) as usize;
                    let n = s.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if flip {
                        buf[n - 1] ^= 0x10;
                        flip = false;
                    }
                    s.write_all(&buf[..n])?;
                    left -= n as u64;
                }
            }
            Op::Half => {
                let mut sum = Fnv::new();
                loop {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sum.update(&buf[..n]);
                }
                let rep = Rep {
                    server: idx,
                    up_sum: sum.finish(),
                    up_len: sum.len,
                    down: req.down,
                };
                send_stream(
                    &mut s,
                    &enc_rep(&rep),
                    req.seed ^ DOWN_SALT,
                    req.down,
                    &mut buf,
                    inject(req.down > 0),
                )?;
                s.shutdown(Shutdown::Write)?;
                return Ok(());
            }
        }
    }
}

/// `--inject-corruption N`: backends corrupt one reply in N (0 = never).
pub(crate) static INJECT: AtomicU64 = AtomicU64::new(0);
/// Replies that could be corrupted, counted by `inject` while `INJECT` is set (one in N of
/// them is; the report divides by N).
pub(crate) static INJECTED: AtomicU64 = AtomicU64::new(0);

/// Whether to corrupt this reply (`eligible`: it has a payload to corrupt).
fn inject(eligible: bool) -> bool {
    let n = INJECT.load(Relaxed);
    n > 0 && eligible && INJECTED.fetch_add(1, Relaxed) % n == n - 1
}

/// A UDP echo backend: its port (kept across restarts) and its thread while running.
pub(crate) struct UdpBackend {
    idx: u8,
    port: AtomicU16,
    state: Mutex<Option<Running>>,
}

impl UdpBackend {
    pub(crate) fn new(idx: u8) -> UdpBackend {
        UdpBackend {
            idx,
            port: AtomicU16::new(0),
            state: Mutex::new(None),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Relaxed)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.state.lock().is_some()
    }

    pub(crate) fn start(&self, port: u16) -> io::Result<()> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        self.port.store(sock.local_addr()?.port(), Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let idx = self.idx;
        let thread = thread::Builder::new()
            .name(format!("soak-udp{idx}"))
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !flag.load(Relaxed) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if n >= UDP_HDR && get_u32(&buf, 0) == UDP_MAGIC {
                        buf[4] |= 0x80;
                        buf[5] = idx;
                        if inject(true) {
                            buf[n - 1] ^= 0x10;
                        }
                    }
                    let _ = sock.send_to(&buf[..n], peer);
                }
            })?;
        *self.state.lock() = Some(Running { stop, thread });
        Ok(())
    }

    pub(crate) fn stop(&self) -> bool {
        let Some(run) = self.state.lock().take() else {
            return false;
        };
        run.stop.store(true, Relaxed);
        let _ = run.thread.join();
        true
    }
}
