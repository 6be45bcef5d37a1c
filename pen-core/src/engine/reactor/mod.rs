//! The TCP worker event loop: one poller per worker thread, a [`Slab`] of connections, accept,
//! dispatch, and timers. Connecting and failover are in `connect`, relaying in `drive`, TLS
//! termination in `tls`; each connection's phase and named timers are a
//! [`Lifecycle`](crate::engine::lifecycle::Lifecycle).
//!
//! Every socket is registered once, edge-triggered, for both directions; readiness is cached in
//! the connection and cleared on `WouldBlock`, so interest never changes and nothing is
//! re-armed. Keys carry the slot, a generation (so a stale event for a reused slot is ignored)
//! and the side (client or server): see [`crate::engine::slab`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::poll::{Event, Events, Poller};

use crate::domain::server::{ServerId, Target};
use crate::engine::accesslog::LogBuf;
use crate::engine::admission::PerClientVerdict;
use crate::engine::lifecycle::{Expiry, Lifecycle, Phase, Timer};
use crate::engine::net::{Listener, Peer, Stream};
use crate::engine::relay::{BufPool, Pipe, Readiness};
use crate::engine::route::{self, target_name};
use crate::engine::slab::{key, unkey, Slab, LISTENER_KEY};
use crate::engine::state::{Shared, WorkerMsg};

mod connect;
mod drive;
mod dummy;
pub(crate) mod handoff;
pub(crate) mod proxy;
mod tls;
mod waiting;

/// Out of descriptors (or memory): how long until accepting or a connect is tried again.
const STARVED_RETRY_MS: u64 = 100;

/// One relayed connection.
struct Conn {
    client: Stream,
    peer: Peer,
    server: Option<Stream>,
    target: Target,
    /// The first choice, where the failover round ends.
    first: Option<ServerId>,
    /// Relay with `splice` (decided when the server connection is up).
    splice: bool,
    /// The address being connected to (the current target's).
    server_addr: Option<std::net::SocketAddr>,
    /// HTTP mode: the client-to-server rewriter (set when the server connection is up).
    http: Option<Box<crate::engine::http::HttpCarrier>>,
    /// TLS termination: the client side's TLS session.
    tls: Option<Box<crate::engine::tls_session::TlsConn>>,
    /// Phase (handshake, connecting, established), named timers, last activity.
    life: Lifecycle,
    up: Pipe,
    down: Pipe,
    /// Cached readiness of the client and server sockets.
    c: Readiness,
    s: Readiness,
    /// `dummy` mode: no server; the client gets the built-in page (see `dummy`).
    dummy: bool,
    /// Counted by the `conn_per_client` cap (released on close).
    per_client: bool,
    // ---- PROXY protocol (issue 14; see `proxy`) ----
    /// Waiting for the client's PROXY header (phase `Handshake`, its timer the deadline).
    proxy_wait: bool,
    /// Its first bytes must not be a PROXY header (a source `accept_proxy` does not name);
    /// cleared once they are seen not to be.
    sniff: bool,
    /// Where the client connected to, as its PROXY header announced (else pen's own address).
    proxied_dst: Option<std::net::SocketAddr>,
}

impl Conn {
    /// A connection about to connect to `target` (or, with a handshake `life`, a TLS client).
    fn new(
        client: Stream,
        peer: Peer,
        target: Target,
        first: Option<ServerId>,
        life: Lifecycle,
    ) -> Conn {
        Conn {
            client,
            peer,
            server: None,
            target,
            first,
            splice: false,
            server_addr: None,
            http: None,
            tls: None,
            life,
            up: Pipe::default(),
            down: Pipe::default(),
            c: Readiness::default(),
            s: Readiness::default(),
            dummy: false,
            per_client: false,
            proxy_wait: false,
            sniff: false,
            proxied_dst: None,
        }
    }
}

/// A worker: one thread, one poller, its own listener, its own connections.
pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    rx: mpsc::Receiver<WorkerMsg>,
    listener: Option<Listener>,
    slots: Slab<Conn>,
    pool: BufPool,
    /// Armed timers: (when, slot, generation, which).
    timers: BinaryHeap<Reverse<(u64, usize, u32, Timer)>>,
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
    /// PROXY protocol: (sniff, announced destination) for the connection `start_as` is about
    /// to install (taken by `install`).
    accepting: (bool, Option<std::net::SocketAddr>),
}

impl crate::engine::messages::Engine for Worker {
    fn listen(&mut self, listener: Option<Listener>) {
        if let Some(old) = self.listener.take() {
            self.poller.delete(&old);
        }
        if let Some(l) = listener {
            match self.poller.add(&l, LISTENER_KEY) {
                Ok(()) => self.listener = Some(l),
                Err(e) => {
                    log::error!("worker {}: cannot watch listener: {e}", self.index);
                    (self.shared.events)
                        .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                }
            }
        }
        self.accept_more = true;
    }

    fn close_slot(&mut self, slot: usize) {
        self.close(slot);
    }

    fn find_socket(&self, fd: RawFd) -> Option<usize> {
        self.slots.iter().find_map(|(slot, c)| {
            let mine = c.client.as_raw_fd() == fd
                || c.server.as_ref().is_some_and(|s| s.as_raw_fd() == fd);
            mine.then_some(slot)
        })
    }

    fn connections(&self) -> Vec<crate::engine::messages::ConnRow> {
        (self.slots.iter())
            .map(|(slot, c)| crate::engine::messages::ConnRow {
                slot,
                downfd: c.client.as_raw_fd(),
                upfd: c.server.as_ref().map_or(-1, |s| s.as_raw_fd()),
                pending_down: c.down.pending(),
                pending_up: c.up.pending(),
                client: c.peer.ip,
                target: c.target,
                // A connection's bytes go into the client table when it closes.
                to_client: c.down.bytes,
                from_client: c.up.bytes,
            })
            .collect()
    }

    fn hand_off(&mut self) -> Vec<handoff::Moved> {
        Worker::hand_off(self)
    }

    fn adopt(&mut self, moved: handoff::Moved) {
        Worker::adopt(self, moved);
    }

    fn describe(&self, slot: usize) -> Option<String> {
        let c = self.slots.get(slot)?;
        let state = match c.life.phase() {
            Phase::Handshake if c.proxy_wait => "proxy header",
            Phase::Handshake => "handshake",
            Phase::Waiting => "waiting",
            Phase::Connecting => "connecting",
            Phase::Established => "established",
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
        let splice = shared.splice;
        Ok(Worker {
            index,
            shared,
            poller,
            rx,
            listener,
            slots: Slab::default(),
            pool: BufPool::new(64),
            timers: BinaryHeap::new(),
            runq: Vec::new(),
            at_limit: false,
            accept_more: true,
            accept_retry: 0,
            next_sweep: 0,
            splice,
            log: LogBuf::default(),
            accepting: (false, None),
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
                    log::error!("worker {}: poll failed: {e}", self.index);
                    (self.shared.events)
                        .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // A reopened log (SIGHUP): what this worker holds goes to the old file first.
            self.log.sync(&self.shared.log);
            while let Ok(msg) = self.rx.try_recv() {
                crate::engine::messages::dispatch(msg, &mut self);
            }
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
                if self.slots.is_live(slot, gen) {
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
        let mut until: Option<u64> = self.timers.peek().map(|Reverse((t, ..))| *t);
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

    // ---- accepting ------------------------------------------------------------------------

    fn accept(&mut self, now: u64) {
        self.accept_more = false;
        self.at_limit = false;
        self.accept_retry = 0;
        if self.listener.is_none() {
            return;
        }
        for _ in 0..self.shared.accept_batch.max(1) {
            if !self.shared.admit() {
                // At the -x limit: leave new connections in the kernel's queue until a slot frees
                // (the closing worker wakes everyone).
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
                    self.shared.release();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => {}
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {
                            self.accept_more = true;
                        }
                        _ => {
                            // Out of descriptors or memory: retry in 100 ms rather than spin.
                            self.accept_retry = now.saturating_add(STARVED_RETRY_MS);
                        }
                    }
                    return;
                }
            }
        }
        self.accept_more = true; // batch spent; the edge will not fire again for these
    }

    /// A client just accepted (counted against `-x`): the per-client cap, then the client ACL
    /// before anything is spent on it (a TLS handshake, a wait for its first bytes), then the
    /// way in for its kind.
    pub(crate) fn start(&mut self, client: Stream, peer: Peer, now: u64) {
        match self.proxy_gate(&client, peer) {
            proxy::Gate::Open => self.start_as(client, peer, now, false, None),
            proxy::Gate::Sniff => self.start_as(client, peer, now, true, None),
            proxy::Gate::Header => self.start_proxied(client, peer, now),
        }
    }

    /// [`Worker::start`] for the client `peer` (the real one, or the one its PROXY header
    /// announced, then with the address it connected to, `dst`); `sniff`: its first bytes
    /// must not be a PROXY header.
    fn start_as(
        &mut self,
        client: Stream,
        peer: Peer,
        now: u64,
        sniff: bool,
        dst: Option<std::net::SocketAddr>,
    ) {
        self.accepting = (sniff, dst);
        let per_client = match self.shared.admit_client(peer.ip) {
            PerClientVerdict::Refused => {
                self.shared.release();
                return; // dropping the socket closes it
            }
            v => v == PerClientVerdict::Counted,
        };
        let (nodelay, dummy, on_data, http) = {
            let s = self.shared.settings.read();
            (s.tcp_nodelay, s.dummy, s.connect_on_data, s.http)
        };
        let early = self.shared.tls.is_some() || (on_data && !dummy);
        if early && self.shared.denied_at_accept(peer.ip, now) {
            self.unadmit(peer, per_client);
            return;
        }
        if self.shared.tls.is_some() {
            self.start_tls(client, peer, now, per_client);
            return;
        }
        if dummy {
            self.start_dummy(client, peer, now, per_client);
            return;
        }
        if nodelay {
            let _ = client.set_nodelay(true);
        }
        if on_data {
            // No server until the client sends: the target is a placeholder (the phase says so).
            let mut conn = Conn::new(client, peer, Target::Abuse, None, Lifecycle::waiting(now));
            conn.per_client = per_client;
            if let Some(slot) = self.install(conn) {
                self.arm_request(slot, now);
                // The first bytes may be in already.
                if let Some(c) = self.slots.get_mut(slot) {
                    c.c.read = true;
                }
                self.first_data(slot, now);
            }
            return;
        }
        let shared = Arc::clone(&self.shared);
        let who = format_args!("client {}:{}", peer.ip, peer.port);
        let Some((target, first)) = route::choose(&shared, peer.ip, peer.port, now, &who) else {
            self.unadmit(peer, per_client);
            return;
        };
        let mut conn = Conn::new(client, peer, target, first, Lifecycle::connecting(now));
        conn.per_client = per_client;
        if let Some(slot) = self.install(conn) {
            if http {
                self.arm_request(slot, now);
            }
            self.connect(slot, now);
        }
    }

    /// Uncounts a client dropped before it got a slot (`-x` and the per-client cap).
    fn unadmit(&self, peer: Peer, per_client: bool) {
        if per_client {
            self.shared.release_client(peer.ip);
        }
        self.shared.release();
    }

    /// Gives `conn` a slot and registers its client socket; `None` (and the connection
    /// dropped) if the poller refuses it.
    fn install(&mut self, mut conn: Conn) -> Option<usize> {
        (conn.sniff, conn.proxied_dst) = std::mem::take(&mut self.accepting);
        let (slot, gen) = self.slots.insert(conn);
        let registered = match self.slots.get(slot) {
            Some(c) => self.poller.add(&c.client, key(slot, gen, false)),
            None => Err(io::ErrorKind::NotFound.into()),
        };
        if let Err(e) = registered {
            log::warn!("cannot watch client socket: {e}");
            (self.shared.events).worker_error(crate::domain::event::Worker::Relay(self.index), &e);
            if let Some(c) = self.slots.remove(slot) {
                self.unadmit(c.peer, c.per_client);
            }
            return None;
        }
        Some(slot)
    }

    /// Arms `timer` for `slot`'s connection at `at`.
    fn arm(&mut self, slot: usize, timer: Timer, at: u64) {
        if let Some(gen) = self.slots.gen(slot) {
            self.timers.push(Reverse((at, slot, gen, timer)));
        }
    }

    /// Queues `slot` for another turn (its read budget ran out with work left).
    fn requeue(&mut self, slot: usize) {
        if let Some(gen) = self.slots.gen(slot) {
            self.runq.push((slot, gen));
        }
    }

    // ---- events ---------------------------------------------------------------------------

    fn on_event(&mut self, slot: usize, gen: u32, server_side: bool, ev: &Event) {
        if !self.slots.is_live(slot, gen) {
            return;
        }
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let phase = conn.life.phase();
        if server_side {
            conn.s.update(ev);
            if phase == Phase::Connecting {
                self.on_connect_event(slot, ev);
                return;
            }
        } else {
            conn.c.update(ev);
            match phase {
                Phase::Handshake => {
                    let now = self.shared.now_ms();
                    if conn.proxy_wait {
                        self.proxy_header(slot, now);
                    } else {
                        self.handshake(slot, now);
                    }
                    return;
                }
                Phase::Waiting => {
                    let now = self.shared.now_ms();
                    self.first_data(slot, now);
                    return;
                }
                // Client data waits until the server side is up (a dummy connection has none).
                Phase::Connecting => {
                    if conn.dummy {
                        self.dummy_turn(slot);
                    }
                    return;
                }
                Phase::Established => {}
            }
        }
        self.drive(slot);
    }

    // ---- timers ---------------------------------------------------------------------------

    fn expire_timers(&mut self, now: u64) {
        while let Some(&Reverse((t, slot, gen, timer))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if !self.slots.is_live(slot, gen) {
                continue;
            }
            let Some(expiry) = self
                .slots
                .get_mut(slot)
                .and_then(|c| c.life.expire(timer, t))
            else {
                continue;
            };
            match expiry {
                Expiry::RetryConnect => self.connect(slot, now), // descriptors may have freed
                Expiry::HandshakeTimedOut if self.slots.get(slot).is_some_and(|c| c.proxy_wait) => {
                    self.proxy_failed(slot, proxy::Refusal::Timeout)
                }
                Expiry::HandshakeTimedOut => {
                    self.handshake_failed(slot, crate::tls::stats::Failure::Timeout)
                }
                Expiry::RequestDue => self.request_due(slot, now),
                Expiry::ConnectTimedOut => {
                    self.shared.counters.connect_timeouts.fetch_add(1, Relaxed);
                    if self.fail_over(slot, now, &"connect timed out") {
                        self.connect(slot, now);
                    }
                }
            }
        }
        let idle = self.shared.settings.read().idle_timeout_secs;
        if idle > 0 && now >= self.next_sweep {
            self.next_sweep = now.saturating_add(1000);
            let stale: Vec<usize> = (self.slots.iter())
                .filter(|(_, c)| c.life.idle(now, idle))
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
        let Some(conn) = self.slots.get(slot) else {
            return;
        };
        // A connection still in its TLS handshake or waiting for its first bytes has no target
        // yet, a dummy one never has.
        let targeted = matches!(conn.life.phase(), Phase::Connecting | Phase::Established);
        if targeted && !conn.dummy {
            if let Some(s) = self.shared.servers.read().target(conn.target) {
                s.release();
            }
        }
        self.close_uncounted(slot);
    }

    /// Closes without touching the target's connection count (already released).
    fn close_uncounted(&mut self, slot: usize) {
        let Some(mut conn) = self.slots.remove(slot) else {
            return;
        };
        if let Some(t) = conn.tls.as_mut() {
            t.close(&conn.client, &mut self.pool); // close_notify (or an alert), best effort
        }
        self.poller.closing(&conn.client);
        if let Some(srv) = conn.server.as_ref() {
            self.poller.closing(srv);
        }
        conn.up.release(&mut self.pool);
        conn.down.release(&mut self.pool);
        if conn.up.bytes + conn.down.bytes > 0 {
            self.shared
                .clients
                .lock()
                .add_bytes(conn.peer.ip, conn.down.bytes, conn.up.bytes); // sx: to the client
        }
        let (peer, per_client) = (conn.peer, conn.per_client);
        drop(conn);
        self.unadmit(peer, per_client);
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.capacity() {
            self.close(slot);
        }
        if let Some(l) = self.listener.take() {
            self.poller.delete(&l);
        }
    }
}
