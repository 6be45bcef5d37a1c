//! Backend servers as threads in the test process, on loopback ephemeral ports.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::harness::{read_sum, write_stream, Fnv};

type Handler = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// A listening backend; each accepted connection is handled on its own thread.
pub(crate) struct Backend {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// [`Backend::crowd`]: the connections being echoed, by number.
    crowd: Arc<Mutex<HashMap<usize, TcpStream>>>,
}

impl Backend {
    fn spawn(listener: TcpListener, handler: Handler, held: Arc<Mutex<Vec<TcpStream>>>) -> Self {
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, st) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let h = handler.clone();
                thread::spawn(move || h(conn));
            }
        });
        Backend {
            addr,
            accepted,
            stop,
            held,
            crowd: Arc::default(),
        }
    }

    fn bind(at: &str) -> TcpListener {
        TcpListener::bind(at).unwrap_or_else(|e| panic!("bind backend {at}: {e}"))
    }

    fn with(at: &str, handler: Handler) -> Self {
        Self::spawn(Self::bind(at), handler, Arc::new(Mutex::new(Vec::new())))
    }

    /// Echoes everything back; passes EOF on (shutdown write) and closes.
    pub(crate) fn echo() -> Self {
        Self::with("127.0.0.1:0", Arc::new(echo_conn))
    }

    /// Replies with `name` and closes.
    pub(crate) fn name(name: &str) -> Self {
        Self::name_at("127.0.0.1:0", name)
    }

    /// A name server on a given bind address (e.g. `[::1]:0`).
    pub(crate) fn name_at(at: &str, name: &str) -> Self {
        Self::name_on(Self::bind(at), name)
    }

    fn name_on(l: TcpListener, name: &str) -> Self {
        let name = name.to_string();
        Self::spawn(
            l,
            Arc::new(move |mut s: TcpStream| {
                let _ = s.write_all(name.as_bytes());
                let _ = s.shutdown(Shutdown::Both);
            }),
            Arc::new(Mutex::new(Vec::new())),
        )
    }

    /// Reads to EOF, then replies `CHECKSUM LENGTH\n` (checksum as 16 hex digits) and closes.
    pub(crate) fn sink() -> Self {
        Self::with(
            "127.0.0.1:0",
            Arc::new(|mut s: TcpStream| {
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                if let Ok((h, n)) = read_sum(&mut s) {
                    let _ = s.write_all(format!("{:016x} {n}\n", h.0).as_bytes());
                }
                let _ = s.shutdown(Shutdown::Write);
            }),
        )
    }

    /// Reads to EOF (checksum h, length n), then sends n bytes of the stream seeded with h, closes.
    pub(crate) fn sink_then_send() -> Self {
        Self::with(
            "127.0.0.1:0",
            Arc::new(|mut s: TcpStream| {
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                if let Ok((h, n)) = read_sum(&mut s) {
                    let _ = write_stream(&mut s, h.0, n);
                }
                let _ = s.shutdown(Shutdown::Write);
            }),
        )
    }

    /// Accepts and holds every connection open without reading.
    pub(crate) fn hold() -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let h2 = held.clone();
        Self::spawn(
            Self::bind("127.0.0.1:0"),
            Arc::new(move |s: TcpStream| h2.lock().expect("lock").push(s)),
            held,
        )
    }

    /// Reads to EOF, then keeps the connection open (neither writing nor closing) until the
    /// backend is dropped.
    pub(crate) fn linger() -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let h2 = held.clone();
        Self::spawn(
            Self::bind("127.0.0.1:0"),
            Arc::new(move |mut s: TcpStream| {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                h2.lock().expect("lock").push(s);
            }),
            held,
        )
    }

    /// Sends `greeting`, half-closes (shutdown write), then reads to EOF and records the
    /// checksum and length of what it received in `results`.
    pub(crate) fn greet_then_count(greeting: &str, results: Arc<Mutex<Vec<(Fnv, usize)>>>) -> Self {
        let greeting = greeting.to_string();
        Self::with(
            "127.0.0.1:0",
            Arc::new(move |mut s: TcpStream| {
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                let _ = s.write_all(greeting.as_bytes());
                let _ = s.shutdown(Shutdown::Write);
                if let Ok(r) = read_sum(&mut s) {
                    results.lock().expect("lock").push(r);
                }
            }),
        )
    }

    /// Runs `handler` on its own thread for each accepted connection (on 127.0.0.1).
    pub(crate) fn custom(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        Self::with("127.0.0.1:0", Arc::new(handler))
    }

    /// A backend for a crowd of connections: small-stack threads and a long accept queue
    /// (4096), so thousands of connections can arrive at once. A connection whose first
    /// message is `ping` gets `ping` back and is closed by the server; any other connection is
    /// echoed until EOF, and [`Backend::close_all`] closes them all from the server side. (The
    /// server closing first leaves TIME_WAIT on the listening ports, not on thousands of
    /// ephemeral ports that other tests need.)
    pub(crate) fn crowd() -> Self {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        sock.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind");
        sock.listen(4096).expect("listen");
        let listener: TcpListener = sock.into();
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let crowd: Arc<Mutex<HashMap<usize, TcpStream>>> = Arc::default();
        let (acc, st, cr) = (accepted.clone(), stop.clone(), crowd.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let n = acc.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = conn.try_clone() {
                    cr.lock().expect("lock").insert(n, c);
                }
                let cr = cr.clone();
                let spawned = thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || crowd_conn(conn, n, &cr));
                if spawned.is_err() {
                    eprintln!("crowd backend: cannot start a thread; connection dropped");
                }
            }
        });
        Backend {
            addr,
            accepted,
            stop,
            held: Arc::default(),
            crowd,
        }
    }

    /// Shuts down (both ways) every connection a [`Backend::crowd`] server is echoing.
    pub(crate) fn close_all(&self) {
        for (_, s) in self.crowd.lock().expect("lock").drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Sends `len` bytes of the stream seeded with `seed` to each connection, records the
    /// checksum of what it wrote in `sent` (once written), and closes. Gives up on a peer that
    /// stops reading for 30 s.
    pub(crate) fn send_stream(seed: u64, len: usize, sent: Arc<Mutex<Vec<Fnv>>>) -> Self {
        Self::with(
            "127.0.0.1:0",
            Arc::new(move |mut s: TcpStream| {
                s.set_write_timeout(Some(Duration::from_secs(30))).ok();
                if let Ok(h) = write_stream(&mut s, seed, len) {
                    sent.lock().expect("lock").push(h);
                }
                let _ = s.shutdown(Shutdown::Write);
            }),
        )
    }

    /// Sends `len` bytes of the stream seeded with `seed`, then closes with SO_LINGER 0: the
    /// peer gets a reset (RST) instead of an orderly FIN.
    pub(crate) fn send_then_reset(seed: u64, len: usize) -> Self {
        Self::with(
            "127.0.0.1:0",
            Arc::new(move |mut s: TcpStream| {
                s.set_write_timeout(Some(Duration::from_secs(10))).ok();
                let _ = write_stream(&mut s, seed, len);
                abort(s);
            }),
        )
    }

    /// Reads `len` bytes (or to EOF), then closes with SO_LINGER 0 (a reset), reporting the
    /// number of bytes it read in `got`.
    pub(crate) fn read_then_reset(len: usize, got: Arc<Mutex<Vec<usize>>>) -> Self {
        Self::with(
            "127.0.0.1:0",
            Arc::new(move |mut s: TcpStream| {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0;
                while n < len {
                    let want = (len - n).min(buf.len());
                    match s.read(&mut buf[..want]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                got.lock().expect("lock").push(n);
                abort(s);
            }),
        )
    }

    /// Clones of the connections a [`Backend::hold`] server holds (to watch them from the test).
    pub(crate) fn held(&self) -> Vec<TcpStream> {
        self.held
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|s| s.try_clone().ok())
            .collect()
    }

    /// How many connections it has accepted.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The backend's `host:port` as a pen server spec prefix (`[::1]:p` for IPv6).
    pub(crate) fn spec(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        self.held.lock().map(|mut v| v.clear()).ok();
    }
}

fn echo_conn(mut s: TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

fn crowd_conn(mut s: TcpStream, n: usize, crowd: &Mutex<HashMap<usize, TcpStream>>) {
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut buf = [0u8; 4096];
    let mut first = true;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                if first && &buf[..k] == b"ping" {
                    let _ = s.write_all(b"ping");
                    let _ = s.shutdown(Shutdown::Both);
                    break;
                }
                first = false;
                if s.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    crowd.lock().expect("lock").remove(&n);
}

/// Closes `s` with SO_LINGER 0: the peer gets a reset (RST), unsent data is discarded.
pub(crate) fn abort(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// A port that is bound but not listening: connects to it are refused, and nobody else can take
/// it. Can later be turned into a listening name backend.
pub(crate) struct Dormant {
    sock: Socket,
    /// The bound address.
    pub(crate) addr: SocketAddr,
}

impl Dormant {
    pub(crate) fn new() -> Self {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        sock.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind");
        let addr = sock
            .local_addr()
            .expect("local_addr")
            .as_socket()
            .expect("inet");
        Dormant { sock, addr }
    }

    pub(crate) fn spec(&self) -> String {
        self.addr.to_string()
    }

    /// Starts listening as a name backend on the same port.
    pub(crate) fn wake_as_name(self, name: &str) -> Backend {
        self.sock.listen(128).expect("listen");
        Backend::name_on(self.sock.into(), name)
    }
}

/// A listener with backlog 0 whose accept queue is full and never drained: a connect to it gets
/// no answer (the SYN is dropped), so the connect times out.
pub(crate) struct FullQueue {
    _listener: Socket,
    _fillers: Vec<Socket>,
    /// The listening address.
    pub(crate) addr: SocketAddr,
}

impl FullQueue {
    pub(crate) fn new() -> Self {
        let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        l.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind");
        l.listen(0).expect("listen");
        let addr = l
            .local_addr()
            .expect("local_addr")
            .as_socket()
            .expect("inet");
        let mut fillers = Vec::new();
        for _ in 0..16 {
            let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
            match c.connect_timeout(&SockAddr::from(addr), Duration::from_millis(300)) {
                Ok(()) => fillers.push(c),
                Err(_) => break,
            }
        }
        assert!(!fillers.is_empty(), "could not fill the accept queue");
        FullQueue {
            _listener: l,
            _fillers: fillers,
            addr,
        }
    }

    pub(crate) fn spec(&self) -> String {
        self.addr.to_string()
    }
}

/// Parses a sink reply `HHHHHHHHHHHHHHHH N\n`.
pub(crate) fn parse_sink_reply(reply: &str) -> (Fnv, usize) {
    let mut it = reply.split_whitespace();
    let h = it.next().and_then(|h| u64::from_str_radix(h, 16).ok());
    let n = it.next().and_then(|n| n.parse().ok());
    match (h, n) {
        (Some(h), Some(n)) => (Fnv(h), n),
        _ => panic!("bad sink reply {reply:?}"),
    }
}
