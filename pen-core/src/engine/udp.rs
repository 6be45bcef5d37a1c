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
//! [`source_key`](crate::domain::clients::source_key)). At the `-x` limit, a new flow makes
//! room only at the expense of the source holding the most flows on this worker, and only if
//! that source holds more than one (its least recently active flow ends): a flood from one
//! source, on any number of ports, rolls over its own flows, and a client with a single flow
//! keeps it, its upstream port unchanged.
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
use crate::domain::clients::ClientHashBuilder;
use crate::domain::server::{ServerId, Target};
use crate::engine::route::target_name;
use crate::engine::slab::{unkey, Slab, LISTENER_KEY};
use crate::engine::state::{Shared, WorkerMsg};
use crate::poll::{Events, Poller};
use crate::sys;

mod admission;
mod downstream;
mod expiry;
mod upstream;

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
    /// This worker's flows per source ([`source_key`](crate::domain::clients::source_key)), for
    /// admission at the limits.
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
}
