//! The opt-in io_uring engine (`--engine uring`, Linux): a worker that relays plain TCP
//! connections with one `io_uring_enter` per loop iteration (submit and wait together), where
//! the epoll engine makes one system call per read, write, accept and connect. Connecting is
//! in `connect`, relaying and closing in `relay`; the ring, its provided buffers and all the
//! memory the kernel touches are in [`crate::sys::uring`].
//!
//! It reuses what the epoll engine decides with: routing and failover (`engine::route`),
//! admission (`-x`, the per-client cap), the connection [`Lifecycle`] (phase and idle time),
//! the counters and the client table. What it does not do (TLS, HTTP mode, UDP, `dummy`,
//! `connect_on_data`, the access log) is left to the epoll engine: the balancer starts the
//! epoll engine when one of them is on at start ([`unsupported`]), and a worker that sees one
//! turned on later hands its listener and its control channel to an epoll worker and finishes
//! the connections it has (see [`UringWorker::switch_to_epoll`]).
//!
//! A completion's token packs the slot, its generation and the direction
//! ([`token`]/[`untoken`]); a stale completion for a reused slot is recognised by the
//! generation, and only its buffer matters (the ring takes it back).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::domain::server::{ServerId, Target};
use crate::domain::settings::Settings;
use crate::engine::admission::PerClientVerdict;
use crate::engine::lifecycle::{Lifecycle, Phase};
use crate::engine::net::{canonical_ip, Listener, Peer, Stream};
use crate::engine::route::{self, target_name};
use crate::engine::slab::Slab;
use crate::engine::state::{Shared, WorkerMsg};
use crate::poll::{Events, Poller};
use crate::sys::uring::{Cqe, Op, Ring};

mod connect;
mod relay;

/// Size of one provided buffer (as the epoll engine's relay buffer).
const BUF_SIZE: usize = crate::engine::relay::BUF_SIZE;
/// Provided buffers per worker: the most bytes in flight at once is this many buffers.
const BUFFERS: u16 = 256;
/// Submission queue entries per ring.
const RING_ENTRIES: u32 = 1024;
/// Accepts kept in flight (each with its own address entry).
const ACCEPTS: u16 = 8;
/// Out of descriptors: how long until accepting is tried again.
const STARVED_RETRY_MS: u64 = 100;

/// Bits of a token for the slot (so at most 2^20 connections per worker).
const SLOT_BITS: u32 = 20;
/// Bits of a token for the slot's generation.
const GEN_BITS: u32 = 23;

/// The token of `slot` (generation `gen`) for direction `dir` (0: client to server).
fn token(slot: usize, gen: u32, dir: usize) -> u64 {
    (slot as u64 & ((1 << SLOT_BITS) - 1))
        | (u64::from(gen & ((1 << GEN_BITS) - 1)) << SLOT_BITS)
        | ((dir as u64 & 1) << (SLOT_BITS + GEN_BITS))
}

/// (slot, generation bits, direction) from a [`token`].
fn untoken(t: u64) -> (usize, u32, usize) {
    (
        (t & ((1 << SLOT_BITS) - 1)) as usize,
        ((t >> SLOT_BITS) & ((1 << GEN_BITS) - 1)) as u32,
        ((t >> (SLOT_BITS + GEN_BITS)) & 1) as usize,
    )
}

/// What of the settings `s` this engine does not do (`None`: it does them all). The balancer
/// starts the epoll engine instead when this says something at start.
pub(crate) fn unsupported(s: &Settings, log_enabled: bool) -> Option<&'static str> {
    if s.http {
        Some("HTTP mode (-H)")
    } else if s.dummy {
        Some("dummy mode")
    } else if s.connect_on_data {
        Some("connect_on_data")
    } else if log_enabled {
        Some("the access log (-l)")
    } else {
        None
    }
}

/// A client socket as a [`Stream`] and who it is (a Unix-domain client has no address).
fn client_of(fd: OwnedFd, addr: Option<SocketAddr>) -> (Stream, Peer) {
    match addr {
        None => (
            Stream::Unix(UnixStream::from(fd)),
            Peer {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
            },
        ),
        Some(a) => (
            Stream::Tcp(TcpStream::from(fd)),
            Peer {
                ip: canonical_ip(a.ip()),
                port: a.port(),
            },
        ),
    }
}

/// Chunks one direction may hold (received, not yet sent) before its receive is cancelled:
/// reading from its source stops there until the destination takes them (back-pressure). A
/// multishot receive posts what it has taken already, so a burst may exceed this until the
/// cancel lands: the worker's provided buffers bound it in any case.
const QUEUE: usize = 4;

/// One chunk held in a provided buffer: bytes `start..end` of buffer `bid` are still to send.
#[derive(Clone, Copy, Debug, Default)]
struct Chunk {
    bid: u16,
    start: u32,
    end: u32,
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Dir {
    queue: VecDeque<Chunk>,
    /// A (multishot) receive from the source is in flight.
    recv: bool,
    /// Its cancel has been asked for (back-pressure).
    cancelling: bool,
    /// A send to the destination is in flight.
    send: bool,
    /// The source has reached end of file.
    eof: bool,
    /// The end of file has been passed on.
    shut: bool,
    /// Bytes delivered to the destination.
    bytes: u64,
}

impl Dir {
    /// Bytes held (received, not yet sent).
    fn pending(&self) -> usize {
        self.queue.iter().map(|c| (c.end - c.start) as usize).sum()
    }

    /// Finished: end of file seen, everything sent, the half-close passed on.
    fn done(&self) -> bool {
        self.shut && self.queue.is_empty() && !self.send
    }
}

/// One relayed connection.
struct Conn {
    client: Option<Stream>,
    peer: Peer,
    server: Option<TcpStream>,
    target: Target,
    /// The first choice, where the failover round ends.
    first: Option<ServerId>,
    server_addr: Option<SocketAddr>,
    life: Lifecycle,
    /// Client to server (0) and server to client (1).
    dirs: [Dir; 2],
    /// Counted by the `conn_per_client` cap.
    per_client: bool,
}

impl Conn {
    fn client_fd(&self) -> RawFd {
        self.client.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn server_fd(&self) -> RawFd {
        self.server.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

/// A uring worker: one thread, one ring, its own listener and connections.
pub(crate) struct UringWorker {
    index: usize,
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    rx: Option<mpsc::Receiver<WorkerMsg>>,
    listener: Option<Listener>,
    /// Bumped when the listener changes: accepts of an older one are not re-armed.
    listener_gen: u64,
    ring: Ring,
    slots: Slab<Conn>,
    /// Free accept address entries.
    accept_free: Vec<u16>,
    /// Accepted connections waiting for room under `-x`.
    pending: VecDeque<(OwnedFd, Option<SocketAddr>)>,
    at_limit: bool,
    /// Out of descriptors: accept again at this time (0: not backing off).
    accept_retry: u64,
    /// Receives that found no free buffer: armed again when buffers come back.
    starved: Vec<(usize, u32, usize)>,
    /// Connects waiting for descriptors to free: (when, slot, generation bits).
    retries: Vec<(u64, usize, u32)>,
    /// `-x` room held by the accepts in flight of all uring workers: an accept is armed only
    /// within the room left, so that clients beyond `-x` wait in the kernel's accept queue.
    reserved: Arc<AtomicUsize>,
    /// Accepts in flight (each holding one unit of `reserved`).
    armed: usize,
    /// The waker's poll is armed.
    wake_armed: bool,
    next_sweep: u64,
    /// The epoll worker that took over (see [`UringWorker::switch_to_epoll`]).
    successor: Option<std::thread::JoinHandle<()>>,
    events: Events,
}

impl UringWorker {
    /// A worker with its own ring; fails if the kernel refuses the ring.
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        poller: Arc<Poller>,
        rx: mpsc::Receiver<WorkerMsg>,
        listener: Option<Listener>,
        reserved: Arc<AtomicUsize>,
    ) -> io::Result<UringWorker> {
        let ring = Ring::new(RING_ENTRIES, BUFFERS, BUF_SIZE, ACCEPTS)?;
        Ok(UringWorker {
            index,
            shared,
            poller,
            rx: Some(rx),
            listener,
            listener_gen: 0,
            ring,
            slots: Slab::default(),
            accept_free: (0..ACCEPTS).rev().collect(),
            pending: VecDeque::new(),
            at_limit: false,
            accept_retry: 0,
            starved: Vec::new(),
            retries: Vec::new(),
            reserved,
            armed: 0,
            wake_armed: false,
            next_sweep: 0,
            successor: None,
            events: Events::new(),
        })
    }

    /// Runs until the balancer stops.
    pub(crate) fn run(mut self) {
        if let Err(e) = self.ring.enable() {
            log::error!("worker {}: cannot enable its io_uring: {e}", self.index);
            (self.shared.events).worker_error(crate::domain::event::Worker::Relay(self.index), &e);
            return;
        }
        let mut cqes = Vec::with_capacity(256);
        while !self.shared.stopping.load(Relaxed) {
            if !self.wake_armed && self.rx.is_some() {
                self.ring.poll_readable(self.poller.as_raw_fd());
                self.wake_armed = true;
            }
            let now = self.shared.now_ms();
            self.arm_accepts(now);
            let timeout = self.wait_timeout(now);
            cqes.clear();
            if let Err(e) = self.ring.submit_and_wait(timeout, &mut cqes) {
                log::error!("worker {}: io_uring wait failed: {e}", self.index);
                (self.shared.events)
                    .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut woken = false;
            for cqe in &cqes {
                match cqe.op {
                    Op::Wake => {
                        woken = true;
                        self.wake_armed &= cqe.more;
                    }
                    _ => self.on_completion(cqe),
                }
            }
            if woken {
                // Drain the epoll instance the waker's eventfd is registered with, so that its
                // next notification wakes the poll again.
                let _ = self.poller.wait(&mut self.events, Some(Duration::ZERO));
            }
            self.messages();
            if !self.starved.is_empty() && !self.ring.starved {
                for (slot, gen, dir) in std::mem::take(&mut self.starved) {
                    if self.live(slot, gen) {
                        if let Some(d) = self.slots.get_mut(slot).and_then(|c| c.dirs.get_mut(dir))
                        {
                            d.recv = false;
                        }
                        self.pump(slot, dir);
                    }
                }
            }
            let now = self.shared.now_ms();
            self.admit_pending(now);
            self.retry_connects(now);
            self.sweep(now);
            self.check_settings();
        }
        self.close_all();
        if let Some(t) = self.successor.take() {
            let _ = t.join();
        }
    }

    fn wait_timeout(&self, now: u64) -> Option<Duration> {
        let mut until = None::<u64>;
        let mut at = |t: u64| until = Some(until.map_or(t, |u| u.min(t)));
        if self.shared.settings.read().idle_timeout_secs > 0 {
            at(self.next_sweep);
        }
        if self.accept_retry != 0 {
            at(self.accept_retry);
        }
        if self.rx.is_none() {
            // No waker after a switch: look at `stopping` now and then.
            at(now.saturating_add(100));
        }
        if self.at_limit || !self.pending.is_empty() {
            // Room may free without a wake-up (another worker's accepts ending).
            at(now.saturating_add(STARVED_RETRY_MS));
        }
        if let Some(t) = self.retries.iter().map(|r| r.0).min() {
            at(t);
        }
        until.map(|t| Duration::from_millis(t.saturating_sub(now)))
    }

    fn messages(&mut self) {
        let Some(rx) = self.rx.take() else {
            return;
        };
        while let Ok(msg) = rx.try_recv() {
            crate::engine::messages::dispatch(msg, self);
        }
        if self.rx.is_none() {
            self.rx = Some(rx);
        }
    }

    fn on_completion(&mut self, cqe: &Cqe) {
        match cqe.op {
            Op::Accept => self.on_accept(cqe),
            Op::Connect => self.on_connect(cqe),
            Op::Recv => self.on_recv(cqe),
            Op::Send => self.on_send(cqe),
            Op::Timeout | Op::Housekeeping | Op::Wake => {}
        }
    }

    // ---- accepting ------------------------------------------------------------------------

    /// Keeps up to [`ACCEPTS`] accepts in flight, each within the room left under `-x`
    /// (reserved until it completes), so that clients beyond the limit stay in the kernel's
    /// accept queue.
    fn arm_accepts(&mut self, now: u64) {
        if !self.pending.is_empty() || self.rx.is_none() {
            return;
        }
        if self.accept_retry != 0 {
            if now < self.accept_retry {
                return;
            }
            self.accept_retry = 0;
        }
        let Some(fd) = self.listener.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        while !self.accept_free.is_empty() {
            if !self.reserve() {
                if self.armed == 0 && !self.at_limit {
                    // At the -x limit: new clients wait in the kernel's queue until a slot
                    // frees (the closing worker wakes everyone).
                    self.shared.counters.accept_pauses.fetch_add(1, Relaxed);
                    self.at_limit = true;
                }
                return;
            }
            if let Some(i) = self.accept_free.pop() {
                self.armed += 1;
                self.ring.accept(fd, i, self.listener_gen);
            }
        }
        self.at_limit = false;
    }

    /// Reserves room under `-x` for one accept.
    fn reserve(&self) -> bool {
        let max = self.shared.conn_max.load(Relaxed);
        let reserved = self.reserved.fetch_add(1, Relaxed);
        if self.shared.active.load(Relaxed).saturating_add(reserved) >= max {
            self.reserved.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    fn on_accept(&mut self, cqe: &Cqe) {
        if let Some(i) = cqe.index {
            self.accept_free.push(i);
        }
        if self.armed > 0 {
            self.armed -= 1;
            self.reserved.fetch_sub(1, Relaxed);
        }
        if cqe.res < 0 {
            match -cqe.res {
                libc::ECANCELED | libc::EINTR | libc::ECONNABORTED | libc::EAGAIN => {}
                _ => {
                    // Out of descriptors or memory: try again in 100 ms rather than spin.
                    let now = self.shared.now_ms();
                    self.accept_retry = now.saturating_add(STARVED_RETRY_MS);
                }
            }
            return;
        }
        let Some((fd, addr)) = self.ring.accepted(cqe) else {
            return;
        };
        self.shared.counters.accepted.fetch_add(1, Relaxed);
        if !self.pending.is_empty() || !self.shared.admit() {
            // Only when -x was lowered meanwhile: hold it (it is accepted already) until a
            // slot frees.
            self.shared.counters.accept_pauses.fetch_add(1, Relaxed);
            self.pending.push_back((fd, addr));
            return;
        }
        let now = self.shared.now_ms();
        self.start(fd, addr, now);
    }

    /// Starts the connections held at the `-x` limit as slots free.
    fn admit_pending(&mut self, now: u64) {
        while !self.pending.is_empty() {
            if !self.shared.admit() {
                return;
            }
            if let Some((fd, addr)) = self.pending.pop_front() {
                self.start(fd, addr, now);
            }
        }
    }

    /// A client just accepted (counted against `-x`): the per-client cap, routing, connect.
    fn start(&mut self, fd: OwnedFd, addr: Option<SocketAddr>, now: u64) {
        let why = unsupported(&self.shared.settings.read(), self.shared.log.enabled());
        if let Some(why) = why {
            // Turned on since the last look: this client is the epoll engine's too.
            self.switch_to_epoll(why, Some((fd, addr)));
            return;
        }
        let (client, peer) = client_of(fd, addr);
        let per_client = match self.shared.admit_client(peer.ip) {
            PerClientVerdict::Refused => {
                self.shared.release();
                return;
            }
            v => v == PerClientVerdict::Counted,
        };
        if self.shared.settings.read().tcp_nodelay {
            let _ = client.set_nodelay(true);
        }
        let shared = Arc::clone(&self.shared);
        let who = format_args!("client {}:{}", peer.ip, peer.port);
        let Some((target, first)) = route::choose(&shared, peer.ip, peer.port, now, &who) else {
            self.unadmit(peer, per_client);
            return;
        };
        let conn = Conn {
            client: Some(client),
            peer,
            server: None,
            target,
            first,
            server_addr: None,
            life: Lifecycle::connecting(now),
            dirs: Default::default(),
            per_client,
        };
        let (slot, _) = self.slots.insert(conn);
        if slot >= 1 << SLOT_BITS {
            log::warn!(
                "worker {}: more than 2^20 connections: dropping one",
                self.index
            );
            self.close(slot);
            return;
        }
        self.connect(slot, now);
    }

    /// Uncounts a client dropped before it got a slot.
    fn unadmit(&self, peer: Peer, per_client: bool) {
        if per_client {
            self.shared.release_client(peer.ip);
        }
        self.shared.release();
    }

    // ---- idle timeout and settings --------------------------------------------------------

    fn sweep(&mut self, now: u64) {
        let idle = self.shared.settings.read().idle_timeout_secs;
        if idle == 0 || now < self.next_sweep {
            return;
        }
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

    /// A setting this engine does not do was turned on: hand over to the epoll engine.
    fn check_settings(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let why = unsupported(&self.shared.settings.read(), self.shared.log.enabled());
        if let Some(why) = why {
            self.switch_to_epoll(why, None);
        }
    }

    /// Gives the listener and the control channel to an epoll worker on a new thread, from
    /// now on the worker of this index; this one stops accepting and relays the connections
    /// it has until they close (they are no longer listed by the control plane). `first` is a
    /// client accepted (and admitted) just now; the clients of the accepts still in flight and
    /// those held at the `-x` limit go to the epoll worker too.
    fn switch_to_epoll(&mut self, why: &str, first: Option<(OwnedFd, Option<SocketAddr>)>) {
        let Some(rx) = self.rx.take() else {
            return;
        };
        log::warn!(
            "worker {}: {why} is on, which the io_uring engine does not do: new connections \
             go to the epoll engine",
            self.index
        );
        let listener = self.listener.take();
        // The accepts in flight end (cancelled, or with a client: handed over below).
        let mut clients: Vec<(OwnedFd, Option<SocketAddr>, bool)> = Vec::new();
        clients.extend(first.map(|(fd, a)| (fd, a, true)));
        clients.extend(
            std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(fd, a)| (fd, a, false)),
        );
        if let Some(l) = &listener {
            self.ring.cancel_fd(l.as_raw_fd());
        }
        let mut out = Vec::new();
        for _ in 0..100 {
            if self.armed == 0 {
                break;
            }
            out.clear();
            let _ = self
                .ring
                .submit_and_wait(Some(Duration::from_millis(10)), &mut out);
            for cqe in &out {
                if cqe.op != Op::Accept {
                    self.on_completion(cqe);
                    continue;
                }
                if let Some(i) = cqe.index {
                    self.accept_free.push(i);
                }
                if self.armed > 0 {
                    self.armed -= 1;
                    self.reserved.fetch_sub(1, Relaxed);
                }
                if let Some((fd, a)) = self.ring.accepted(cqe) {
                    self.shared.counters.accepted.fetch_add(1, Relaxed);
                    clients.push((fd, a, false));
                }
            }
        }
        self.at_limit = false;
        // The waker belongs to the epoll worker now; its poll here is cancelled (it is on the
        // epoll instance's descriptor, which stays open).
        self.ring.cancel_fd(self.poller.as_raw_fd());
        let (i, sh, poller) = (
            self.index,
            Arc::clone(&self.shared),
            Arc::clone(&self.poller),
        );
        let mut worker = match crate::engine::reactor::Worker::new(i, sh, poller, rx, listener) {
            Ok(w) => w,
            Err(e) => {
                log::error!("worker {i}: cannot start the epoll worker: {e}");
                return;
            }
        };
        let now = self.shared.now_ms();
        for (fd, addr, admitted) in clients {
            if admitted || self.shared.admit() {
                let (client, peer) = client_of(fd, addr);
                worker.start(client, peer, now);
            }
        }
        let t = std::thread::Builder::new()
            .name(format!("pen-worker-{i}"))
            .spawn(move || worker.run());
        match t {
            Ok(t) => self.successor = Some(t),
            Err(e) => log::error!("worker {i}: cannot start the epoll worker: {e}"),
        }
    }

    /// Drops the clients held at the `-x` limit (never admitted: dropping closes them).
    fn pending_to_drop(&mut self) {
        self.pending.clear();
        self.at_limit = false;
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.capacity() {
            self.close(slot);
        }
        self.pending_to_drop();
        if let Some(l) = self.listener.take() {
            self.ring.cancel_fd(l.as_raw_fd());
        }
        let mut out = Vec::new();
        let _ = self.ring.submit_and_wait(Some(Duration::ZERO), &mut out);
    }
}

impl crate::engine::messages::Engine for UringWorker {
    fn listen(&mut self, listener: Option<Listener>) {
        if let Some(old) = self.listener.take() {
            self.ring.cancel_fd(old.as_raw_fd());
            // Kept open until the cancel is submitted (the next loop iteration).
            let mut out = Vec::new();
            let _ = self.ring.submit_and_wait(Some(Duration::ZERO), &mut out);
            for cqe in &out {
                self.on_completion(cqe);
            }
        }
        self.listener = listener;
        self.listener_gen = self.listener_gen.wrapping_add(1);
    }

    fn close_slot(&mut self, slot: usize) {
        self.close(slot);
    }

    fn find_socket(&self, fd: RawFd) -> Option<usize> {
        (self.slots.iter())
            .find_map(|(slot, c)| (c.client_fd() == fd || c.server_fd() == fd).then_some(slot))
    }

    fn connections(&self) -> Vec<crate::engine::messages::ConnRow> {
        (self.slots.iter())
            .map(|(slot, c)| crate::engine::messages::ConnRow {
                slot,
                downfd: c.client_fd(),
                upfd: c.server_fd(),
                pending_down: c.dirs[1].pending(),
                pending_up: c.dirs[0].pending(),
                client: c.peer.ip,
                target: c.target,
                to_client: c.dirs[1].bytes,
                from_client: c.dirs[0].bytes,
            })
            .collect()
    }

    fn describe(&self, slot: usize) -> Option<String> {
        let c = self.slots.get(slot)?;
        let state = match c.life.phase() {
            Phase::Handshake => "handshake",
            Phase::Waiting => "waiting",
            Phase::Connecting => "connecting",
            Phase::Established => "established",
        };
        Some(format!(
            "state = {state}\ndownfd = {}, upfd = {}\nclient = {}:{}, server = {}\npend = {} up, {} down\nsx = {}, rx = {}\n",
            c.client_fd(),
            c.server_fd(),
            c.peer.ip,
            c.peer.port,
            target_name(c.target),
            c.dirs[0].pending(),
            c.dirs[1].pending(),
            c.dirs[0].bytes,
            c.dirs[1].bytes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (slot, gen, dir) in [(0, 0, 0), (5, 7, 1), ((1 << 20) - 1, (1 << 23) - 1, 1)] {
            let t = token(slot, gen, dir);
            assert!(t < 1 << crate::sys::uring::TOKEN_BITS);
            assert_eq!(untoken(t), (slot, gen, dir));
        }
    }

    #[test]
    fn a_direction_is_done_only_when_drained_and_shut() {
        let mut d = Dir::default();
        d.queue.push_back(Chunk {
            bid: 1,
            start: 2,
            end: 10,
        });
        assert_eq!(d.pending(), 8);
        d.eof = true;
        d.shut = true;
        assert!(!d.done(), "bytes still held");
        d.queue.pop_front();
        d.send = true;
        assert!(!d.done(), "a send in flight");
        d.send = false;
        assert!(d.done());
    }
}
