//! The worker event loop: the only user of the poller ([`crate::poll`]). One poller per worker thread, a slab of
//! connections, accept, dispatch, and timers (connect timeout, idle timeout).
//!
//! Every socket is registered once, edge-triggered, for both directions; readiness is cached in
//! the connection and cleared on `WouldBlock`, so interest never changes and nothing is
//! re-armed. Keys carry the slot, a generation (so a stale event for a reused slot is ignored)
//! and the side (client or server).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::poll::{Event, Events, Poller};

use crate::domain::server::{ServerId, Target};
use crate::engine::accesslog::LogBuf;
use crate::engine::net::{Listener, Peer, Stream};
use crate::engine::relay::{BufPool, OnRead, Pipe, Readiness, READS_PER_TURN};
use crate::engine::route::{self, target_name};
use crate::engine::state::{Shared, WorkerMsg};
use crate::sys;

mod tls;

const LISTENER_KEY: usize = usize::MAX - 1;
/// Out of descriptors (or memory): how long until accepting or a connect is tried again.
const STARVED_RETRY_MS: u64 = 100;
const GEN_BITS: u32 = 24;

fn key(slot: usize, gen: u32, server_side: bool) -> usize {
    (slot << (GEN_BITS + 1))
        | ((gen as usize & ((1 << GEN_BITS) - 1)) << 1)
        | usize::from(server_side)
}

fn unkey(k: usize) -> (usize, u32, bool) {
    (
        k >> (GEN_BITS + 1),
        ((k >> 1) & ((1 << GEN_BITS) - 1)) as u32,
        k & 1 == 1,
    )
}

/// One direction's turn: zero-copy `splice` between TCP sockets where the OS offers it (unless
/// this direction could not get a kernel pipe), copying through a pooled buffer otherwise.
#[allow(clippy::too_many_arguments)]
fn pump(
    pipe: &mut Pipe,
    splice: bool,
    (src, dst): (&Stream, &Stream),
    ready: (&mut Readiness, &mut Readiness),
    other_done: bool,
    pool: &mut BufPool,
    budget: &mut u32,
    on_read: OnRead<'_>,
) -> io::Result<u64> {
    // The access log needs to see the bytes: no splice while it is on.
    #[cfg(target_os = "linux")]
    if splice && on_read.is_none() && !pipe.no_splice {
        let (r, w) = (&mut *ready.0, &mut *ready.1);
        let moved = pipe.pump_splice(src, dst, (r, w), other_done, pool, budget)?;
        if !pipe.no_splice {
            return Ok(moved);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = splice;
    pipe.pump(src, dst, ready, other_done, pool, budget, on_read)
}

/// One relayed connection.
struct Conn {
    client: Stream,
    peer: Peer,
    server: Option<Stream>,
    target: Target,
    /// The first choice, where the failover round ends.
    first: Option<ServerId>,
    connecting: bool,
    /// Relay with `splice` (decided when the server connection is up).
    splice: bool,
    /// The address being connected to (the current target's).
    server_addr: Option<std::net::SocketAddr>,
    /// HTTP mode: the client-to-server rewriter (set when the server connection is up).
    http: Option<Box<crate::engine::http::HttpCarrier>>,
    /// TLS termination: the client side's TLS session.
    tls: Option<Box<crate::engine::tls_session::TlsConn>>,
    /// The TLS handshake is in progress: no target chosen yet, no server connection.
    handshaking: bool,
    /// When the connect (or the TLS handshake) times out.
    deadline: u64,
    /// Since when the connect could not even start for want of descriptors (0: it could).
    starved: u64,
    up: Pipe,
    down: Pipe,
    /// Cached readiness of the client and server sockets.
    c: Readiness,
    s: Readiness,
    last_active: u64,
}

impl Conn {
    /// A connection about to connect to `target`.
    fn new(client: Stream, peer: Peer, target: Target, first: Option<ServerId>, now: u64) -> Conn {
        Conn {
            client,
            peer,
            server: None,
            target,
            first,
            connecting: true,
            splice: false,
            server_addr: None,
            http: None,
            tls: None,
            handshaking: false,
            deadline: 0,
            starved: 0,
            up: Pipe::default(),
            down: Pipe::default(),
            c: Readiness::default(),
            s: Readiness::default(),
            last_active: now,
        }
    }
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

/// A worker: one thread, one poller, its own listener, its own connections.
pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    rx: mpsc::Receiver<WorkerMsg>,
    listener: Option<Listener>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    pool: BufPool,
    timers: BinaryHeap<Reverse<(u64, usize, u32)>>,
    /// Connections with readiness left over after their turn's budget.
    runq: Vec<(usize, u32)>,
    /// Stopped accepting at the `-x` limit; resumes when a slot frees (the closing worker
    /// wakes every worker).
    at_limit: bool,
    /// More connections may be waiting in the listener's queue (the edge will not fire again).
    accept_more: bool,
    /// Out of descriptors or memory: retry accepting at this time (0 = not backing off).
    accept_retry: u64,
    next_sweep: u64,
    /// When to use `splice` between TCP sockets.
    splice: crate::domain::settings::Splice,
    /// Access-log lines not yet written.
    log: LogBuf,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        poller: Arc<Poller>,
        rx: mpsc::Receiver<WorkerMsg>,
        listener: Option<Listener>,
    ) -> io::Result<Worker> {
        if let Some(l) = &listener {
            poller.add(l, LISTENER_KEY)?;
        }
        let shared_splice = shared.splice;
        Ok(Worker {
            index,
            shared,
            poller,
            rx,
            listener,
            slots: Vec::new(),
            free: Vec::new(),
            pool: BufPool::new(64),
            timers: BinaryHeap::new(),
            runq: Vec::new(),
            at_limit: false,
            accept_more: true,
            accept_retry: 0,
            next_sweep: 0,
            splice: shared_splice,
            log: LogBuf::default(),
        })
    }

    /// Runs until the balancer stops.
    pub(crate) fn run(mut self) {
        let mut events = Events::new();
        let mut runq = Vec::new();
        while !self.shared.stopping.load(Relaxed) {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poller.wait(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("pen: worker {}: poll failed: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.handle_messages();
            for ev in events.iter() {
                if ev.key == LISTENER_KEY {
                    self.accept_more = true;
                    continue;
                }
                let (slot, gen, server_side) = unkey(ev.key);
                self.on_event(slot, gen, server_side, &ev);
            }
            std::mem::swap(&mut runq, &mut self.runq);
            for (slot, gen) in runq.drain(..) {
                if self.slots.get(slot).is_some_and(|s| s.gen == gen) {
                    self.drive(slot);
                }
            }
            let now = self.shared.now_ms();
            let slot_free = self.at_limit
                && self.shared.active.load(Relaxed) < self.shared.conn_max.load(Relaxed);
            let retry = self.accept_retry != 0 && now >= self.accept_retry;
            if self.accept_more || slot_free || retry {
                self.accept(now);
            }
            self.expire_timers(now);
            if self.log.due(now) {
                self.log.flush(&self.shared.log);
            }
        }
        self.close_all();
        self.log.flush(&self.shared.log);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.runq.is_empty() || (self.accept_more && self.listener.is_some()) {
            return Some(Duration::ZERO);
        }
        let now = self.shared.now_ms();
        let mut until: Option<u64> = self.timers.peek().map(|Reverse((t, _, _))| *t);
        if self.shared.settings.read().idle_timeout_secs > 0 {
            until = Some(until.map_or(self.next_sweep, |u| u.min(self.next_sweep)));
        }
        if let Some(d) = self.log.deadline() {
            until = Some(until.map_or(d, |u| u.min(d)));
        }
        if self.accept_retry != 0 {
            until = Some(until.map_or(self.accept_retry, |u| u.min(self.accept_retry)));
        }
        until.map(|t| Duration::from_millis(t.saturating_sub(now)))
    }

    fn handle_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                WorkerMsg::Listen(l, done) => {
                    if let Some(old) = self.listener.take() {
                        self.poller.delete(&old);
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    if let Some(l) = l {
                        match self.poller.add(&l, LISTENER_KEY) {
                            Ok(()) => self.listener = Some(l),
                            Err(e) => {
                                eprintln!("pen: worker {}: cannot watch listener: {e}", self.index)
                            }
                        }
                    }
                    self.accept_more = true;
                }
                WorkerMsg::Close(slot) => {
                    if self.slots.get(slot).is_some_and(|s| s.conn.is_some()) {
                        self.close(slot);
                    }
                }
                WorkerMsg::Describe(slot, reply) => {
                    let _ = reply.send(self.describe(slot));
                }
                WorkerMsg::FindSocket(fd, reply) => {
                    let found = self.slots.iter().position(|s| {
                        s.conn.as_ref().is_some_and(|c| {
                            c.client.as_raw_fd() == fd
                                || c.server.as_ref().is_some_and(|s| s.as_raw_fd() == fd)
                        })
                    });
                    let _ = reply.send(found);
                }
            }
        }
    }

    fn describe(&self, slot: usize) -> Option<String> {
        let c = self.slots.get(slot)?.conn.as_ref()?;
        let state = if c.handshaking {
            "handshake"
        } else if c.connecting {
            "connecting"
        } else {
            "established"
        };
        let target = target_name(c.target);
        Some(format!(
            "state = {state}\ndownfd = {}, upfd = {}\nclient = {}:{}, server = {target}\npend = {} up, {} down\nsx = {}, rx = {}\n",
            c.client.as_raw_fd(),
            c.server.as_ref().map_or(-1, |s| s.as_raw_fd()),
            c.peer.ip,
            c.peer.port,
            c.up.pending(),
            c.down.pending(),
            c.up.bytes,
            c.down.bytes,
        ))
    }

    // ---- accepting ------------------------------------------------------------------------

    fn accept(&mut self, now: u64) {
        self.accept_more = false;
        self.at_limit = false;
        self.accept_retry = 0;
        if self.listener.is_none() {
            return;
        }
        for _ in 0..self.shared.accept_batch.max(1) {
            let max = self.shared.conn_max.load(Relaxed);
            if self.shared.active.fetch_add(1, Relaxed) >= max {
                // At the -x limit: leave new connections in the kernel's queue until a slot frees
                // (the closing worker wakes everyone).
                self.shared.active.fetch_sub(1, Relaxed);
                self.shared.counters.accept_pauses.fetch_add(1, Relaxed);
                self.at_limit = true;
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.shared.counters.accepted.fetch_add(1, Relaxed);
                    self.start(stream, peer, now);
                    if self.accept_retry != 0 {
                        return; // no descriptor for its server socket: the rest stay queued
                    }
                }
                Err(e) => {
                    self.shared.active.fetch_sub(1, Relaxed);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => {}
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {
                            self.accept_more = true;
                        }
                        _ => {
                            // Out of descriptors or memory: retry in 100 ms rather than spin.
                            self.accept_retry = now + STARVED_RETRY_MS;
                        }
                    }
                    return;
                }
            }
        }
        self.accept_more = true; // batch spent; the edge will not fire again for these
    }

    fn start(&mut self, client: Stream, peer: Peer, now: u64) {
        if self.shared.tls.is_some() {
            self.start_tls(client, peer, now);
            return;
        }
        let shared = Arc::clone(&self.shared);
        let who = format_args!("client {}:{}", peer.ip, peer.port);
        let Some((target, first)) = route::choose(&shared, peer.ip, peer.port, now, &who) else {
            self.release_active();
            return;
        };
        if shared.settings.read().tcp_nodelay {
            let _ = client.set_nodelay(true);
        }
        let conn = Conn::new(client, peer, target, first, now);
        if let Some(slot) = self.install(conn) {
            self.connect(slot, now);
        }
    }

    /// Gives `conn` a slot and registers its client socket; `None` (and the connection
    /// dropped) if the poller refuses it.
    fn install(&mut self, conn: Conn) -> Option<usize> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                self.slots.len() - 1
            }
        };
        let Some(s) = self.slots.get_mut(slot) else {
            // Not reached: `free` only holds existing slots, and a new one was just pushed.
            self.release_active();
            return None;
        };
        if let Err(e) = self.poller.add(&conn.client, key(slot, s.gen, false)) {
            eprintln!("pen: cannot watch client socket: {e}");
            self.free.push(slot);
            self.release_active();
            return None;
        }
        s.conn = Some(conn);
        Some(slot)
    }

    /// Queues `slot` for another turn (its read budget ran out with work left).
    fn requeue(&mut self, slot: usize) {
        if let Some(s) = self.slots.get(slot) {
            self.runq.push((slot, s.gen));
        }
    }

    fn release_active(&self) {
        let prev = self.shared.active.fetch_sub(1, Relaxed);
        if prev >= self.shared.conn_max.load(Relaxed) {
            self.shared.wake_all();
        }
    }

    // ---- connecting and failover ----------------------------------------------------------

    /// Starts connecting slot's connection to its current target; on an immediate failure,
    /// fails over at once.
    fn connect(&mut self, slot: usize, now: u64) {
        loop {
            let shared = Arc::clone(&self.shared);
            let (source, nodelay, timeout) = {
                let s = shared.settings.read();
                (s.source, s.tcp_nodelay, s.connect_timeout_secs)
            };
            let Some((gen, conn)) = self
                .slots
                .get_mut(slot)
                .and_then(|s| Some((s.gen, s.conn.as_mut()?)))
            else {
                return;
            };
            let addr = {
                let servers = shared.servers.read();
                let srv = servers.target(conn.target);
                if let Some(s) = srv {
                    s.conns.fetch_add(1, Relaxed);
                }
                srv.and_then(|s| s.addr)
            };
            let started = addr
                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
                .and_then(|a| sys::connect_start(a, source, nodelay));
            match started {
                Ok(stream) => {
                    let stream = Stream::Tcp(stream);
                    if let Err(e) = self.poller.add(&stream, key(slot, gen, true)) {
                        eprintln!("pen: cannot watch server socket: {e}");
                        self.close(slot);
                        return;
                    }
                    let deadline = now + timeout.max(1).saturating_mul(1000);
                    if let Some(conn) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) {
                        conn.server = Some(stream);
                        conn.server_addr = addr;
                        conn.connecting = true;
                        conn.deadline = deadline;
                        conn.starved = 0;
                    }
                    self.timers.push(Reverse((deadline, slot, gen)));
                    return;
                }
                Err(e) if sys::is_local_exhaustion(&e) => {
                    // Our shortage, not the server's fault: blacklist nobody. The client waits
                    // (and accepting pauses, so the queue waits too): the connect is retried
                    // every 100 ms, up to the connect timeout, then the client is dropped.
                    if let Some(s) = shared.servers.read().target(conn.target) {
                        s.release();
                    }
                    let since = if conn.starved == 0 { now } else { conn.starved };
                    if now.saturating_sub(since) >= timeout.max(1).saturating_mul(1000) {
                        self.close_uncounted(slot);
                        return;
                    }
                    conn.starved = since;
                    conn.deadline = now + STARVED_RETRY_MS;
                    let Some(gen) = self.slots.get(slot).map(|s| s.gen) else {
                        return;
                    };
                    self.timers
                        .push(Reverse((now + STARVED_RETRY_MS, slot, gen)));
                    self.accept_retry = now + STARVED_RETRY_MS;
                    return;
                }
                Err(e) => {
                    if !self.fail_over(slot, now, &e) {
                        return;
                    }
                }
            }
        }
    }

    /// The current target failed: blacklist it and pick the next one. Returns whether there is
    /// a next target to connect to (the caller connects); otherwise the connection is closed.
    fn fail_over(&mut self, slot: usize, now: u64, why: &dyn std::fmt::Display) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(conn) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) else {
            return false;
        };
        if let Some(s) = conn.server.take() {
            self.poller.delete(&s);
        }
        conn.s = Readiness::default(); // the next server's socket starts afresh
        let next = route::fail_over(
            &shared,
            conn.target,
            conn.first,
            conn.peer.ip,
            now,
            why,
            true,
        );
        match next {
            Some(t) => {
                conn.target = t;
                true
            }
            None => {
                // The failed target's count was released above.
                self.close_uncounted(slot);
                false
            }
        }
    }

    fn on_connected(&mut self, slot: usize, now: u64) {
        let Some(conn) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        conn.connecting = false;
        conn.s.write = true;
        if self.shared.settings.read().http {
            let https = conn.tls.is_some();
            conn.http = Some(Box::new(crate::engine::http::HttpCarrier::new(
                conn.peer.ip,
                https,
            )));
        }
        let server_loopback = conn.server_addr.is_none_or(|a| a.ip().is_loopback());
        conn.splice = cfg!(target_os = "linux")
            && matches!(conn.client, Stream::Tcp(_))
            && conn.tls.is_none()
            && match self.splice {
                crate::domain::settings::Splice::Always => true,
                crate::domain::settings::Splice::Never => false,
                crate::domain::settings::Splice::Auto => !server_loopback,
            };
        conn.last_active = now;
        if let Some(s) = self.shared.servers.read().target(conn.target) {
            s.total.fetch_add(1, Relaxed);
        }
        if let Target::Server(id) = conn.target {
            self.shared.clients.lock().record(conn.peer.ip, id, now);
        }
        self.drive(slot);
    }

    // ---- events and relaying --------------------------------------------------------------

    fn on_event(&mut self, slot: usize, gen: u32, server_side: bool, ev: &Event) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.gen != gen & ((1 << GEN_BITS) - 1) {
            return;
        }
        let Some(conn) = s.conn.as_mut() else { return };
        if server_side {
            conn.s.update(ev);
            if conn.connecting {
                let Some(Stream::Tcp(tcp)) = conn.server.as_ref() else {
                    return;
                };
                let now = self.shared.now_ms();
                match sys::connect_result(tcp, ev.writable) {
                    Ok(true) => self.on_connected(slot, now),
                    Ok(false) => {}
                    Err(e) => {
                        if self.fail_over(slot, now, &e) {
                            self.connect(slot, now);
                        }
                    }
                }
                return;
            }
        } else {
            conn.c.update(ev);
            if conn.handshaking {
                self.handshake(slot, self.shared.now_ms());
                return;
            }
            if conn.connecting {
                return; // client data waits until the server side is up
            }
        }
        self.drive(slot);
    }

    /// Moves bytes both ways as far as readiness allows; closes when both directions are done
    /// (or one is, under `tcp_fastclose`), or on an error.
    fn drive(&mut self, slot: usize) {
        let Some(conn) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        if conn.tls.is_some() {
            self.drive_tls(slot);
            return;
        }
        let Some(server) = conn.server.as_ref() else {
            return;
        };
        let mut budget = READS_PER_TURN;
        let (splice, pool) = (conn.splice, &mut self.pool);
        // Access log: one line per chunk read from the client (checked once per turn).
        let (log, peer, server_addr) = (&mut self.log, conn.peer.ip, conn.server_addr);
        let clock = &*self.shared.clock;
        let mut record = |chunk: &[u8]| log.record(peer, server_addr, chunk, &*clock);
        let on_read: OnRead<'_> = if self.shared.log.enabled() {
            Some(&mut record)
        } else {
            None
        };
        let sockets = (&conn.client, server);
        let ready = (&mut conn.c, &mut conn.s);
        let done = conn.down.done();
        let b = &mut budget;
        let up = match conn.http.as_deref_mut() {
            // HTTP mode rewrites the requests: through its own carrier, never spliced.
            Some(h) => {
                let (src, dst) = sockets;
                let r = conn
                    .up
                    .pump_with(h, src, dst, ready, done, pool, b, on_read);
                if h.take_oversized() {
                    self.shared.counters.http_oversized.fetch_add(1, Relaxed);
                }
                r
            }
            None => pump(&mut conn.up, splice, sockets, ready, done, pool, b, on_read),
        };
        let sockets = (server, &conn.client);
        let ready = (&mut conn.s, &mut conn.c);
        let done = conn.up.done();
        let b = &mut budget;
        let down = pump(&mut conn.down, splice, sockets, ready, done, pool, b, None);
        let (sent, received) = (*up.as_ref().unwrap_or(&0), *down.as_ref().unwrap_or(&0));
        if sent + received > 0 {
            conn.last_active = self.shared.now_ms();
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.sent.fetch_add(sent, Relaxed);
                s.received.fetch_add(received, Relaxed);
            }
        }
        let fastclose = self.shared.settings.read().tcp_fastclose;
        use crate::domain::settings::Fastclose;
        let fast = match fastclose {
            Fastclose::Off => false,
            Fastclose::Up => conn.up.eof,
            Fastclose::Down => conn.down.eof,
            Fastclose::Both => conn.up.eof || conn.down.eof,
        };
        if up.is_err() || down.is_err() || fast || (conn.up.done() && conn.down.done()) {
            self.close(slot);
            return;
        }
        if budget == 0 && ((conn.c.read && conn.s.write) || (conn.s.read && conn.c.write)) {
            self.requeue(slot);
        }
    }

    // ---- timers ---------------------------------------------------------------------------

    fn expire_timers(&mut self, now: u64) {
        while let Some(&Reverse((t, slot, gen))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self
                .slots
                .get(slot)
                .filter(|s| s.gen == gen)
                .and_then(|s| s.conn.as_ref())
            else {
                continue;
            };
            if conn.starved != 0 && conn.server.is_none() && conn.deadline == t {
                self.connect(slot, now); // out of descriptors a moment ago: try again
                continue;
            }
            if conn.handshaking && conn.deadline == t {
                self.handshake_failed(slot, crate::tls::stats::Failure::Timeout);
                continue;
            }
            if conn.connecting && conn.deadline == t {
                self.shared.counters.connect_timeouts.fetch_add(1, Relaxed);
                if self.fail_over(slot, now, &"connect timed out") {
                    self.connect(slot, now);
                }
            }
        }
        let idle = self.shared.settings.read().idle_timeout_secs;
        if idle > 0 && now >= self.next_sweep {
            self.next_sweep = now + 1000;
            let limit = idle.saturating_mul(1000);
            let stale: Vec<usize> = (self.slots.iter().enumerate())
                .filter(|(_, s)| {
                    s.conn.as_ref().is_some_and(|c| {
                        !c.connecting && now.saturating_sub(c.last_active) >= limit
                    })
                })
                .map(|(i, _)| i)
                .collect();
            for i in stale {
                self.shared.counters.idle_timeouts.fetch_add(1, Relaxed);
                self.close(i);
            }
        }
    }

    // ---- closing --------------------------------------------------------------------------

    fn close(&mut self, slot: usize) {
        let Some(conn) = self.slots.get(slot).and_then(|s| s.conn.as_ref()) else {
            return;
        };
        // A connection still in its TLS handshake has no target yet.
        if !conn.handshaking {
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.release();
            }
        }
        self.close_uncounted(slot);
    }

    /// Closes without touching the target's connection count (already released).
    fn close_uncounted(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(mut conn) = s.conn.take() else {
            return;
        };
        s.gen = (s.gen + 1) & ((1 << GEN_BITS) - 1);
        self.free.push(slot);
        if let Some(t) = conn.tls.as_mut() {
            t.close(&conn.client, &mut self.pool); // close_notify (or an alert), best effort
        }
        self.poller.delete(&conn.client);
        if let Some(srv) = conn.server.as_ref() {
            self.poller.delete(srv);
        }
        conn.up.release(&mut self.pool);
        conn.down.release(&mut self.pool);
        if conn.up.bytes + conn.down.bytes > 0 {
            self.shared
                .clients
                .lock()
                .add_bytes(conn.peer.ip, conn.down.bytes, conn.up.bytes); // sx: to the client
        }
        drop(conn);
        self.release_active();
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.close(slot);
        }
        if let Some(l) = self.listener.take() {
            self.poller.delete(&l);
        }
    }
}
