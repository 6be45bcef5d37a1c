//! UDP mode (`-U`, PEN-SPEC 3): one worker loop per thread, each with its own listening UDP
//! socket (`SO_REUSEPORT` on Linux, so the kernel sends one client's datagrams always to the
//! same worker) and its own flows.
//!
//! A *flow* is one client address (ip:port) with a connected upstream UDP socket to the server
//! chosen for it. Client datagrams go out through the flow's socket; the server's answers come
//! back on that socket and leave through the listening socket with `send_to` the client.
//! Selection is the TCP engine's: client ACL (a denied client's flow goes to the abuse server
//! `-B` if one is set, else its datagrams are dropped; a flow keeps the decision made when it
//! began, as a TCP connection does), tracking, round robin, hash, weight, prio, limits (a flow
//! counts as one connection of its server and of `-x`), stubborn, emergency, blacklisting: the
//! routing decisions are `engine::route`'s, shared with the TCP
//! engine, as are the slot scheme, admission against `-x` and the message loop.
//!
//! Failure: an ICMP "port unreachable" from the server makes the connected socket's next
//! `recv`/`send` fail with `ECONNREFUSED`. The server is then blacklisted for the `blacklist`
//! time, and the flow's next datagram fails over (the next available server after the failed
//! one, then the emergency server) on a fresh socket. A flow whose server an operator
//! blacklisted (`server N blacklist T`) moves the same way on its next datagram, so "all
//! blacklisted" means no datagram reaches any server. A datagram that cannot go anywhere is
//! dropped, and its flow closed.
//!
//! Lifetime: a flow ends after [`idle_secs`] without a datagram in either direction (the
//! `idle_timeout` setting when it is nonzero, else [`DEFAULT_IDLE_SECS`]), counted as an idle
//! timeout. Flows are bounded by `-x` (`conn_max`) over all workers.
//!
//! Admission (issue 11; docs/compatibility.md 8.3): no source can push out another source's
//! live flow. Each worker counts its flows per *source* (an IPv4 address, an IPv6 /64: see
//! [`source_key`]). At the `-x` limit, a new flow makes room only at the expense of the source
//! holding the most flows on this worker, and only if that source holds more than one (its
//! least recently active flow ends): a flood from one source, on any number of ports, rolls
//! over its own flows, and a client with a single flow keeps it, its upstream port unchanged.
//! When no source holds more than one flow, the datagram is dropped and counted
//! (`accept_pauses`, the `-x` limit counter). With `conn_per_client N`, a source that already
//! holds N flows on this worker ends its own least recently active one for the new one
//! (per worker: `SO_REUSEPORT` spreads one source's ports over the workers).
//!
//! Hot path: one 64 KiB receive buffer per worker, flows found by client address in a hash map;
//! relaying a datagram allocates nothing.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::domain::addr::ListenAddr;
use crate::domain::clients::{source_key, ClientHashBuilder};
use crate::domain::server::{ServerId, Target};
use crate::engine::net::canonical_ip;
use crate::engine::route::{self, target_name};
use crate::engine::slab::{key, unkey, Slab, LISTENER_KEY};
use crate::engine::state::{Shared, WorkerMsg};
use crate::poll::{Events, Poller};
use crate::sys;

/// Idle time after which a flow ends when `idle_timeout` is 0 (never, for TCP): UDP has no
/// close, so a flow needs some end. 60 s covers DNS, syslog and most request/answer protocols.
pub(crate) const DEFAULT_IDLE_SECS: u64 = 60;
/// The largest UDP payload (the receive buffer's size).
const MAX_DATAGRAM: usize = 65536;
/// Room kept in front of each received datagram for a PROXY v2 header (issue 14).
const HEADROOM: usize = crate::domain::proxy_header::V2_ADDR_MAX;
/// Datagrams read from one flow socket per turn (then others get theirs).
const FLOW_BUDGET: u32 = 64;
/// Datagrams read from the listening socket per turn.
const LISTEN_BUDGET: u32 = 256;
/// Errors (other than "drained") after which a socket's turn ends.
const MAX_ERRORS: u32 = 8;
/// How often idle flows are looked for.
const SWEEP_MS: u64 = 500;

/// The idle time of a flow, in seconds, for the `idle_timeout` setting `idle_timeout_secs`.
pub(crate) fn idle_secs(idle_timeout_secs: u64) -> u64 {
    if idle_timeout_secs == 0 {
        DEFAULT_IDLE_SECS
    } else {
        idle_timeout_secs
    }
}

/// Whether a connected socket's error means the server failed: ICMP port unreachable
/// (`ECONNREFUSED`), or host or network unreachable.
fn is_server_failure(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Binds one listening UDP socket per worker (`SO_REUSEPORT` on Linux), or a single one where
/// the platform cannot share a port (the other workers then have none). Returns the sockets and
/// the address bound (port 0 resolved).
pub(crate) fn bind(addr: &ListenAddr, n: usize) -> io::Result<(Vec<UdpSocket>, ListenAddr)> {
    let ListenAddr::Inet(a) = addr else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "UDP mode needs an IP address and port, not a Unix socket",
        ));
    };
    // SO_REUSEPORT on every socket, as C pen sets it: a second pen on the same port shares it.
    let reuse = cfg!(target_os = "linux");
    let first = sys::udp_socket(*a, reuse)?;
    let bound = first.local_addr()?;
    let mut out = vec![first];
    if reuse {
        for _ in 1..n {
            out.push(sys::udp_socket(bound, true)?);
        }
    }
    Ok((out, ListenAddr::Inet(bound)))
}

/// One client address's flow.
struct Flow {
    /// The client's address as seen (answers go back to it).
    client: SocketAddr,
    /// Its IP for tracking, hashing and ACLs (IPv4-mapped turned into IPv4).
    ip: IpAddr,
    /// Connected to the current target.
    sock: UdpSocket,
    target: Target,
    /// The first choice, where the failover round ends.
    first: Option<ServerId>,
    /// The server refused a datagram (ICMP port unreachable): already blacklisted; the next
    /// client datagram fails over.
    failed: bool,
    last_active: u64,
    /// Bytes sent to the server(s).
    sent: u64,
    /// Bytes received from the server(s).
    received: u64,
    /// `sent` and `received` as last added to the client table (`recent` shows a flow's bytes
    /// while it lives, as C pen's does: see [`UdpWorker::report_bytes`]).
    reported: (u64, u64),
    /// Its server takes a PROXY v2 header in front of each datagram (`server N proxy v2`).
    proxy: bool,
}

/// The flow's bytes not yet added to its client's counters, as (client, to the client, from the
/// client) (sx is the bytes sent to the client, as for TCP), marked as reported; `None` if none.
fn unreported(f: &mut Flow) -> Option<(IpAddr, u64, u64)> {
    let to_client = f.received.saturating_sub(f.reported.1);
    let from_client = f.sent.saturating_sub(f.reported.0);
    f.reported = (f.sent, f.received);
    (to_client > 0 || from_client > 0).then_some((f.ip, to_client, from_client))
}

/// A UDP worker: one thread, one poller, its own listening socket, its own flows.
pub(crate) struct UdpWorker {
    index: usize,
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    rx: mpsc::Receiver<WorkerMsg>,
    sock: UdpSocket,
    /// Keyed by client input: a keyed hasher (see [`ClientHashBuilder`]).
    flows: HashMap<SocketAddr, usize, ClientHashBuilder>,
    /// This worker's flows per source ([`source_key`]), for admission at the limits.
    sources: HashMap<IpAddr, u32, ClientHashBuilder>,
    slots: Slab<Flow>,
    /// The receive buffer (taken out while a datagram is handled, then put back); datagrams
    /// are read [`HEADROOM`] bytes in, so a PROXY header can go in front without a copy.
    buf: Vec<u8>,
    /// The listening socket's address: the destination a PROXY header announces.
    local: Option<SocketAddr>,
    /// The listening socket may hold more datagrams (the edge will not fire again).
    listen_more: bool,
    /// Flows whose socket may hold more datagrams after their turn's budget.
    runq: Vec<(usize, u32)>,
    next_sweep: u64,
}

impl crate::engine::messages::Engine for UdpWorker {
    fn listen(&mut self, listener: Option<crate::engine::net::Listener>) {
        // A TCP listener is of no use here; the UDP socket stays.
        drop(listener);
        log::warn!("listen: not supported in UDP mode; the UDP socket stays");
    }

    fn close_slot(&mut self, slot: usize) {
        self.close(slot);
    }

    fn find_socket(&self, fd: RawFd) -> Option<usize> {
        (self.slots.iter()).find_map(|(slot, f)| (f.sock.as_raw_fd() == fd).then_some(slot))
    }

    fn connections(&self) -> Vec<crate::engine::messages::ConnRow> {
        (self.slots.iter())
            .map(|(slot, f)| crate::engine::messages::ConnRow {
                slot,
                downfd: self.sock.as_raw_fd(),
                upfd: f.sock.as_raw_fd(),
                pending_down: 0,
                pending_up: 0,
                client: f.ip,
                target: f.target,
                to_client: f.received.saturating_sub(f.reported.1),
                from_client: f.sent.saturating_sub(f.reported.0),
            })
            .collect()
    }

    fn describe(&self, slot: usize) -> Option<String> {
        let f = self.slots.get(slot)?;
        Some(format!(
            "state = udp flow\ndownfd = {}, upfd = {}\nclient = {}:{}, server = {}\npend = 0 up, 0 down\nsx = {}, rx = {}\n",
            self.sock.as_raw_fd(),
            f.sock.as_raw_fd(),
            f.ip,
            f.client.port(),
            target_name(f.target),
            f.sent,
            f.received,
        ))
    }
}

impl UdpWorker {
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        poller: Arc<Poller>,
        rx: mpsc::Receiver<WorkerMsg>,
        sock: UdpSocket,
    ) -> io::Result<UdpWorker> {
        poller.add(&sock, LISTENER_KEY)?;
        let local = sock.local_addr().ok();
        Ok(UdpWorker {
            index,
            shared,
            poller,
            rx,
            sock,
            flows: HashMap::with_hasher(ClientHashBuilder::new()),
            sources: HashMap::with_hasher(ClientHashBuilder::new()),
            slots: Slab::default(),
            local,
            buf: vec![0; HEADROOM + MAX_DATAGRAM],
            listen_more: true,
            runq: Vec::new(),
            next_sweep: 0,
        })
    }

    /// Runs until the balancer stops, then closes every flow.
    pub(crate) fn run(mut self) {
        let mut events = Events::new();
        let mut runq = Vec::new();
        while !self.shared.stopping.load(Relaxed) {
            let now = self.shared.now_ms();
            let timeout = if self.listen_more || !self.runq.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_millis(self.next_sweep.saturating_sub(now).min(SWEEP_MS))
            };
            if let Err(e) = self.poller.wait(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("UDP worker {}: poll failed: {e}", self.index);
                    (self.shared.events)
                        .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            while let Ok(msg) = self.rx.try_recv() {
                crate::engine::messages::dispatch(msg, &mut self);
            }
            let now = self.shared.now_ms();
            for ev in events.iter() {
                if ev.key == LISTENER_KEY {
                    self.listen_more = true;
                    continue;
                }
                let (slot, gen, _) = unkey(ev.key);
                if self.slots.is_live(slot, gen) {
                    self.relay_server(slot, now);
                }
            }
            std::mem::swap(&mut runq, &mut self.runq);
            for (slot, gen) in runq.drain(..) {
                if self.slots.is_live(slot, gen) {
                    self.relay_server(slot, now);
                }
            }
            if self.listen_more {
                self.relay_clients(now);
            }
            if now >= self.next_sweep {
                self.next_sweep = now.saturating_add(SWEEP_MS);
                self.sweep(now);
            }
        }
        for slot in 0..self.slots.capacity() {
            self.close(slot);
        }
        self.poller.delete(&self.sock);
    }

    fn flow_mut(&mut self, slot: usize) -> Option<&mut Flow> {
        self.slots.get_mut(slot)
    }

    // ---- client to server -----------------------------------------------------------------

    /// Reads datagrams from clients until the socket is drained or the turn's budget is spent.
    fn relay_clients(&mut self, now: u64) {
        self.listen_more = false;
        let mut buf = std::mem::take(&mut self.buf);
        let mut drained = false;
        let mut errors = 0;
        for _ in 0..LISTEN_BUDGET {
            match self
                .sock
                .recv_from(buf.get_mut(HEADROOM..).unwrap_or_default())
            {
                Ok((n, from)) => self.relay_client(&mut buf, n, from, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // Interrupted, or a transient error: the next datagram may be fine. Errors
                // that keep coming end the turn (the next datagram's edge brings another).
                Err(_) => {
                    errors += 1;
                    if errors >= MAX_ERRORS {
                        drained = true;
                        break;
                    }
                }
            }
        }
        self.buf = buf;
        self.listen_more = !drained;
    }

    /// Relays one client datagram: finds or makes its flow, moves the flow off a failed or
    /// blacklisted server, sends (failing over when the server refuses at once).
    /// The datagram is the `n` bytes at [`HEADROOM`] in `buf`.
    fn relay_client(&mut self, buf: &mut [u8], n: usize, from: SocketAddr, now: u64) {
        let local = self.local;
        let slot = match self.flows.get(&from) {
            Some(&s) => s,
            None => match self.new_flow(from, now) {
                Some(s) => s,
                None => return,
            },
        };
        if !self.check_target(slot, now) {
            return;
        }
        // Each refusal blacklists a server, so this ends within the table's length.
        loop {
            let Some(flow) = self.flow_mut(slot) else {
                return;
            };
            let client = SocketAddr::new(flow.ip, flow.client.port());
            let data =
                crate::engine::udp_proxy::datagram(buf, HEADROOM, n, flow.proxy, client, local);
            match flow.sock.send(data) {
                Ok(_) => {
                    // The client's bytes (a PROXY header is not counted).
                    flow.sent = flow.sent.saturating_add(n as u64);
                    flow.last_active = now;
                    let target = flow.target;
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.sent.fetch_add(n as u64, Relaxed);
                    }
                    return;
                }
                Err(e) if is_server_failure(&e) => {
                    // An earlier datagram drew a port unreachable: the server is down.
                    let (target, first, ip) = (flow.target, flow.first, flow.ip);
                    let next = self.fail_target(target, first, ip, now, &e, true);
                    if !self.reroute(slot, next, now) {
                        return;
                    }
                }
                // Full socket buffer or a local error: UDP may drop, so this datagram goes.
                Err(e) => {
                    if self.shared.settings.read().debug > 1 {
                        log::trace!("UDP datagram from {from} dropped: {e}");
                    }
                    return;
                }
            }
        }
    }

    /// Moves the flow in `slot` off its server if that failed or is blacklisted now. Returns
    /// whether the flow is still there (with a usable target) for the datagram.
    fn check_target(&mut self, slot: usize, now: u64) -> bool {
        let Some(flow) = self.slots.get(slot) else {
            return false;
        };
        let usable = !flow.failed
            && self
                .shared
                .servers
                .read()
                .target(flow.target)
                .is_some_and(|s| s.keeps_flows(now));
        if usable {
            return true;
        }
        let (target, first, ip) = (flow.target, flow.first, flow.ip);
        // A failed server was blacklisted when it failed; an operator blacklisted this one.
        let next = self.fail_target(target, first, ip, now, &"blacklisted", false);
        self.reroute(slot, next, now)
    }

    /// Gives the flow in `slot` a socket to `next` (failing over further if that cannot be
    /// opened), or closes it when there is no next target. Returns whether it lives on.
    fn reroute(&mut self, slot: usize, next: Option<Target>, now: u64) -> bool {
        let Some(flow) = self.slots.get(slot) else {
            return false;
        };
        let (first, ip) = (flow.first, flow.ip);
        // The old target's count is released (by `fail_target`): close without releasing.
        let opened = next.and_then(|t| self.open(t, first, ip, now));
        let Some((target, sock, proxy)) = opened else {
            self.close_uncounted(slot);
            return false;
        };
        let gen = self.slots.gen(slot).unwrap_or(0);
        if let Err(e) = self.poller.add(&sock, key(slot, gen, false)) {
            log::warn!("cannot watch UDP server socket: {e}");
            self.close(slot);
            return false;
        }
        let poller = Arc::clone(&self.poller);
        if let Some(flow) = self.flow_mut(slot) {
            poller.delete(&flow.sock);
            flow.sock = sock;
            flow.target = target;
            flow.failed = false;
            flow.proxy = proxy;
        }
        true
    }

    /// Makes a flow for a new client address: client ACL, the per-source and `-x` bounds
    /// (see the module's admission rules), selection, the upstream socket. `None` when the
    /// datagram is to be dropped.
    fn new_flow(&mut self, client: SocketAddr, now: u64) -> Option<usize> {
        let shared = Arc::clone(&self.shared);
        let ip = canonical_ip(client.ip());
        let source = source_key(ip);
        let per_source = shared.settings.read().conn_per_client;
        let held = self.sources.get(&source).copied().unwrap_or(0);
        if per_source > 0 && held as usize >= per_source {
            // The source's own stalest flow makes room; never another source's.
            self.evict_oldest_of(source);
        }
        if !shared.admit() {
            // At the -x limit: only a source holding several flows here gives one up.
            if !self.evict_from_crowded(source) || !shared.admit() {
                shared.counters.accept_pauses.fetch_add(1, Relaxed);
                return None;
            }
        }
        let who = format_args!("UDP client {client}");
        let Some((target, first)) = route::choose(&shared, ip, client.port(), now, &who) else {
            self.shared.release();
            return None;
        };
        shared.counters.accepted.fetch_add(1, Relaxed);
        let Some((target, sock, proxy)) = self.open(target, first, ip, now) else {
            self.shared.release();
            return None;
        };
        let flow = Flow {
            client,
            ip,
            sock,
            target,
            first,
            failed: false,
            last_active: now,
            sent: 0,
            received: 0,
            reported: (0, 0),
            proxy,
        };
        let (slot, gen) = self.slots.insert(flow);
        let registered = match self.slots.get(slot) {
            Some(f) => self.poller.add(&f.sock, key(slot, gen, false)),
            None => Err(io::ErrorKind::NotFound.into()),
        };
        if let Err(e) = registered {
            log::warn!("cannot watch UDP server socket: {e}");
            if let Some(s) = shared.servers.read().target(target) {
                s.release();
            }
            drop(self.slots.remove(slot));
            self.shared.release();
            return None;
        }
        self.flows.insert(client, slot);
        let held = self.sources.entry(source).or_insert(0);
        *held = held.saturating_add(1);
        Some(slot)
    }

    /// At the `-x` limit: closes the least recently active flow of the source holding the most
    /// flows on this worker (the new datagram's own `source` first among equals), if it holds
    /// more than one. False when every source holds at most one: nothing is evicted. (Scans:
    /// they happen only at the limit.)
    fn evict_from_crowded(&mut self, source: IpAddr) -> bool {
        let crowded = (self.sources.iter())
            .map(|(&s, &n)| (n, s == source, s))
            .max_by_key(|&(n, own, _)| (n, own));
        match crowded {
            Some((n, _, s)) if n > 1 => self.evict_oldest_of(s),
            _ => false,
        }
    }

    /// Closes the least recently active flow of `source` on this worker; false if it has none.
    fn evict_oldest_of(&mut self, source: IpAddr) -> bool {
        let oldest = (self.slots.iter())
            .filter(|(_, f)| source_key(f.ip) == source)
            .map(|(i, f)| (f.last_active, i))
            .min();
        match oldest {
            Some((_, slot)) => {
                self.close(slot);
                true
            }
            None => false,
        }
    }

    /// Opens an upstream socket to `target`, failing over (blacklisting each server that
    /// cannot be reached) as a TCP connect would. Counts the flow on the server it returns,
    /// records tracking. `None`: nowhere to go (every count taken was released).
    fn open(
        &self,
        mut target: Target,
        first: Option<ServerId>,
        ip: IpAddr,
        now: u64,
    ) -> Option<(Target, UdpSocket, bool)> {
        let source = self.shared.settings.read().source;
        loop {
            let addr = {
                let servers = self.shared.servers.read();
                let srv = servers.target(target);
                if let Some(s) = srv {
                    s.conns.fetch_add(1, Relaxed);
                }
                srv.and_then(|s| s.addr)
            };
            let opened = addr
                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
                .and_then(|a| sys::udp_connect(a, source));
            match opened {
                Ok(sock) => {
                    use crate::domain::proxy_header::ProxyVersion;
                    let mut proxy = false;
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.total.fetch_add(1, Relaxed);
                        proxy = s.proxy == ProxyVersion::V2; // v1 has no datagram form
                    }
                    if let Target::Server(id) = target {
                        self.shared.clients.lock().record(ip, id, now);
                    }
                    return Some((target, sock, proxy));
                }
                Err(e) if sys::is_local_exhaustion(&e) => {
                    // Our shortage, not the server's fault: drop, blacklist nobody.
                    if let Some(s) = self.shared.servers.read().target(target) {
                        s.release();
                    }
                    return None;
                }
                Err(e) => target = self.fail_target(target, first, ip, now, &e, true)?,
            }
        }
    }

    /// `target` failed (or is blacklisted): releases the flow's count on it, blacklists it when
    /// `blacklist`, and picks where the flow goes next: the next available server after it,
    /// cyclically until the first choice comes round, then the emergency server; nowhere when
    /// stubborn or from the emergency server.
    fn fail_target(
        &self,
        target: Target,
        first: Option<ServerId>,
        ip: IpAddr,
        now: u64,
        why: &dyn std::fmt::Display,
        blacklist: bool,
    ) -> Option<Target> {
        route::fail_over(&self.shared, target, first, ip, now, why, blacklist)
    }

    // ---- server to client -----------------------------------------------------------------

    /// Relays the server's datagrams in `slot` to the client until its socket is drained or
    /// the turn's budget is spent. A refusal marks the flow failed and blacklists the server.
    fn relay_server(&mut self, slot: usize, now: u64) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut received = 0u64;
        let mut more = true;
        let mut refused = None;
        let mut errors = 0;
        let gen = self.slots.gen(slot).unwrap_or(0);
        if let Some(flow) = self.slots.get_mut(slot) {
            for _ in 0..FLOW_BUDGET {
                match flow.sock.recv(&mut buf) {
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default();
                        // A full client-side buffer drops the datagram, as UDP may.
                        let _ = self.sock.send_to(data, flow.client);
                        received = received.saturating_add(n as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        more = false;
                        break;
                    }
                    Err(e) if is_server_failure(&e) => {
                        if !flow.failed {
                            flow.failed = true;
                            refused = Some((flow.target, e));
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        if errors >= MAX_ERRORS {
                            more = false;
                            break;
                        }
                    }
                }
            }
            if received > 0 {
                flow.received = flow.received.saturating_add(received);
                flow.last_active = now;
            }
            let target = flow.target;
            if more {
                self.runq.push((slot, gen));
            }
            if received > 0 {
                if let Some(s) = self.shared.servers.read().target(target) {
                    s.received.fetch_add(received, Relaxed);
                }
            }
        }
        self.buf = buf;
        if let Some((target, e)) = refused {
            self.blacklist_failed(target, now, &e);
        }
    }

    /// Blacklists a server that refused a flow's datagram (its flows move on their next
    /// datagram, see [`UdpWorker::check_target`]).
    fn blacklist_failed(&self, target: Target, now: u64, why: &dyn std::fmt::Display) {
        let settings = self.shared.settings.read();
        let servers = self.shared.servers.read();
        route::server_failed(&self.shared, &settings, &servers, target, now, why);
    }

    // ---- expiry and closing ---------------------------------------------------------------

    /// Adds the bytes each flow relayed since its last report to its client's counters (one
    /// lock for all), so that `recent` counts a UDP client's bytes while its flow lives.
    fn report_bytes(&mut self) {
        let mut deltas = Vec::new();
        for slot in 0..self.slots.capacity() {
            if let Some(f) = self.slots.get_mut(slot) {
                if let Some(d) = unreported(f) {
                    deltas.push(d);
                }
            }
        }
        if deltas.is_empty() {
            return;
        }
        let mut clients = self.shared.clients.lock();
        for (ip, to_client, from_client) in deltas {
            clients.add_bytes(ip, to_client, from_client);
        }
    }

    /// Closes flows idle for the flow idle time.
    fn sweep(&mut self, now: u64) {
        self.report_bytes();
        let idle = idle_secs(self.shared.settings.read().idle_timeout_secs);
        let limit = idle.saturating_mul(1000);
        for slot in 0..self.slots.capacity() {
            let stale =
                (self.slots.get(slot)).is_some_and(|f| now.saturating_sub(f.last_active) >= limit);
            if stale {
                self.shared.counters.idle_timeouts.fetch_add(1, Relaxed);
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(flow) = self.slots.get(slot) else {
            return;
        };
        if let Some(s) = self.shared.servers.read().target(flow.target) {
            s.release();
        }
        self.close_uncounted(slot);
    }

    /// Closes without touching the target's flow count (already released).
    fn close_uncounted(&mut self, slot: usize) {
        let Some(mut flow) = self.slots.remove(slot) else {
            return;
        };
        self.flows.remove(&flow.client);
        let source = source_key(flow.ip);
        if let Some(n) = self.sources.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sources.remove(&source);
            }
        }
        self.poller.delete(&flow.sock);
        if let Some((ip, to_client, from_client)) = unreported(&mut flow) {
            self.shared
                .clients
                .lock()
                .add_bytes(ip, to_client, from_client);
        }
        self.shared.release();
    }
}
