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
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::domain::server::{ServerId, Target};
use crate::domain::settings::Settings;
use crate::engine::admission::PerClientVerdict;
use crate::engine::lifecycle::{Lifecycle, Phase};
use crate::engine::net::{Listener, Peer, Stream};
use crate::engine::route::{self, target_name};
use crate::engine::slab::Slab;
use crate::engine::state::{Shared, WorkerMsg};
use crate::poll::{Events, Poller};
use crate::sys::uring::{Cqe, Op, Pool, Ring};

mod accept;
mod connect;
mod handoff;
mod relay;
mod switch;

/// Size of one provided buffer (as the epoll engine's relay buffer).
const BUF_SIZE: usize = crate::engine::relay::BUF_SIZE;
/// Provided buffers per worker: the most bytes in flight at once is this many buffers.
const BUFFERS: u16 = 256;
/// Size of one large buffer, for a direction that keeps filling small ones (bulk): as large
/// as the epoll engine's relay buffers grow.
const LARGE_SIZE: usize = 256 * 1024;
/// Large buffers per worker (4 MiB, resident once used): enough for a few bulk transfers at
/// once; a direction that finds none goes back to small buffers.
const LARGE_BUFFERS: u16 = 16;
/// Small buffers lent to the kernel at once (the rest wait, the most recently used on top):
/// what a burst of receives can take before the worker refills, and about what stays resident.
const LENT: u16 = 32;
/// Large buffers lent to the kernel at once.
const LARGE_LENT: u16 = 4;
/// Receives in a row that fill a small buffer before a direction moves to large buffers.
const PROMOTE: i8 = 2;
/// Receives in a row that would have fitted a small buffer before a direction moves back.
const DEMOTE: i8 = 4;
/// A direction that found the large pool empty: full receives before it tries it again.
const LARGE_BACKOFF: i8 = 32;
/// Submission queue entries per ring.
const RING_ENTRIES: u32 = 1024;
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
pub(crate) fn unsupported(
    s: &Settings,
    log_enabled: bool,
    sends_proxy: bool,
) -> Option<&'static str> {
    if s.http {
        Some("HTTP mode (-H)")
    } else if s.dummy {
        Some("dummy mode")
    } else if s.connect_on_data {
        Some("connect_on_data")
    } else if log_enabled {
        Some("the access log (-l)")
    } else if s.accept_proxy_acl >= 0 {
        Some("accept_proxy")
    } else if sends_proxy {
        Some("a server's PROXY header (server N proxy)")
    } else {
        None
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
    /// The pool the next receive picks from.
    pool: Pool,
    /// The pool of the receive in flight.
    armed: Pool,
    /// Receives in a row that argue for the other pool (negative: backing off the large one).
    streak: i8,
}

impl Dir {
    /// Adapts the pool to a receive of `n` bytes (`small`: the size of a small buffer): a
    /// direction that keeps filling small buffers moves to large ones, one whose receives fit
    /// small ones again moves back. True when the pool changed.
    fn adapt(&mut self, n: usize, small: usize) -> bool {
        let argues = match self.pool {
            Pool::Small => n >= small,
            Pool::Large => n <= small,
        };
        if !argues {
            self.streak = self.streak.min(0);
            return false;
        }
        self.streak = self.streak.saturating_add(1);
        let enough = if self.pool == Pool::Small {
            PROMOTE
        } else {
            DEMOTE
        };
        if self.streak < enough {
            return false;
        }
        self.pool = match self.pool {
            Pool::Small => Pool::Large,
            Pool::Large => Pool::Small,
        };
        self.streak = 0;
        true
    }

    /// The large pool was empty: back to small buffers, and stay there a while.
    fn large_pool_empty(&mut self) {
        self.pool = Pool::Small;
        self.streak = -LARGE_BACKOFF;
    }

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
    /// Bumped when the listener changes: the readiness poll of an older one is not re-armed.
    listener_gen: u64,
    /// The listener's readiness poll is armed.
    listen_armed: bool,
    /// More connections may be waiting in the listener's queue (its poll will not say again).
    accept_more: bool,
    ring: Ring,
    slots: Slab<Conn>,
    /// Stopped accepting at the `-x` limit; resumes when a slot frees (the closing worker
    /// wakes every worker).
    at_limit: bool,
    /// Out of descriptors: accept again at this time (0: not backing off).
    accept_retry: u64,
    /// Receives that found no free buffer: armed again when buffers come back.
    starved: Vec<(usize, u32, usize)>,
    /// Connects waiting for descriptors to free: (when, slot, generation bits).
    retries: Vec<(u64, usize, u32)>,
    /// The waker's poll is armed.
    wake_armed: bool,
    /// The waker's poll fired and its epoll instance is not drained yet.
    wake_pending: bool,
    /// Handing connections over: nothing is received or sent (see `handoff`).
    quiet: bool,
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
    ) -> io::Result<UringWorker> {
        let ring = Ring::new(
            RING_ENTRIES,
            [
                (BUFFERS, BUF_SIZE, LENT),
                (LARGE_BUFFERS, LARGE_SIZE, LARGE_LENT),
            ],
        )?;
        Ok(UringWorker {
            index,
            shared,
            poller,
            rx: Some(rx),
            listener,
            listener_gen: 0,
            listen_armed: false,
            accept_more: true,
            ring,
            slots: Slab::default(),
            at_limit: false,
            accept_retry: 0,
            starved: Vec::new(),
            retries: Vec::new(),
            wake_armed: false,
            wake_pending: false,
            quiet: false,
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
                self.ring
                    .poll_readable(self.poller.as_raw_fd(), Op::Wake, 0);
                self.wake_armed = true;
            }
            let now = self.shared.now_ms();
            self.arm_listener();
            let timeout = self.wait_timeout(now);
            cqes.clear();
            if let Err(e) = self.ring.submit_and_wait(timeout, &mut cqes) {
                log::error!("worker {}: io_uring wait failed: {e}", self.index);
                (self.shared.events)
                    .worker_error(crate::domain::event::Worker::Relay(self.index), &e);
                std::thread::sleep(Duration::from_millis(10));
            }
            for cqe in &cqes {
                self.on_completion(cqe);
            }
            // Also a wake-up reaped outside this loop (a listener change or a handoff waits
            // on the ring too): its drain is owed all the same, or the next notification
            // would not wake the poll and a stop could go unseen.
            let woken = std::mem::take(&mut self.wake_pending);
            if woken && self.rx.is_some() {
                // Drain the epoll instance the waker's eventfd is registered with, so that its
                // next notification wakes the poll again. (Never after a switch: the epoll
                // instance is then the epoll worker's, whose events this would take.)
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
            self.accept_if_due(now);
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
        if self.wake_pending {
            return Some(Duration::ZERO);
        }
        if self.accept_more && self.listener.is_some() && self.rx.is_some() {
            return Some(Duration::ZERO);
        }
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
            Op::Ready => self.on_listener_ready(cqe),
            Op::Connect => self.on_connect(cqe),
            Op::Recv => self.on_recv(cqe),
            Op::Send => self.on_send(cqe),
            Op::Wake => {
                self.wake_pending = true;
                self.wake_armed &= cqe.more;
            }
            Op::Timeout | Op::Housekeeping => {}
        }
    }

    // ---- starting a client ----------------------------------------------------------------

    /// A client just accepted (counted against `-x`): the per-client cap, routing, connect.
    fn start(&mut self, client: Stream, peer: Peer, now: u64) {
        // One lock at a time (never the settings' while taking the servers').
        let proxy = self.shared.servers.read().sends_proxy();
        let why = unsupported(
            &self.shared.settings.read(),
            self.shared.log.enabled(),
            proxy,
        );
        if let Some(why) = why {
            // Turned on since the last look: this client is the epoll engine's too.
            self.switch_to_epoll(why, Some((client, peer)));
            return;
        }
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
            // Not connecting yet: its server's count was not taken.
            self.close_uncounted(slot);
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
        // One lock at a time (never the settings' while taking the servers').
        let proxy = self.shared.servers.read().sends_proxy();
        let why = unsupported(
            &self.shared.settings.read(),
            self.shared.log.enabled(),
            proxy,
        );
        if let Some(why) = why {
            self.switch_to_epoll(why, None);
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.capacity() {
            self.close(slot);
        }
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
        self.listen_armed = false;
        self.accept_more = true;
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

    fn hand_off(&mut self) -> Vec<crate::engine::reactor::handoff::Moved> {
        self.give_up()
    }

    fn adopt(&mut self, moved: crate::engine::reactor::handoff::Moved) {
        self.take_in(moved);
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
    fn a_direction_moves_to_large_buffers_while_it_fills_small_ones_and_back() {
        let mut d = Dir::default();
        assert!(
            !d.adapt(BUF_SIZE, BUF_SIZE),
            "one full receive is not a stream"
        );
        assert!(!d.adapt(100, BUF_SIZE), "a short one breaks the run");
        assert!(!d.adapt(BUF_SIZE, BUF_SIZE));
        assert!(d.adapt(BUF_SIZE, BUF_SIZE), "two full ones in a row");
        assert_eq!(d.pool, Pool::Large);
        for _ in 1..DEMOTE {
            assert!(!d.adapt(10, BUF_SIZE));
        }
        assert!(!d.adapt(LARGE_SIZE, BUF_SIZE), "a large one breaks the run");
        for _ in 1..DEMOTE {
            assert!(!d.adapt(BUF_SIZE, BUF_SIZE));
        }
        assert!(d.adapt(BUF_SIZE, BUF_SIZE), "DEMOTE small ones in a row");
        assert_eq!(d.pool, Pool::Small);
    }

    #[test]
    fn a_direction_that_found_no_large_buffer_backs_off() {
        let mut d = Dir {
            pool: Pool::Large,
            ..Dir::default()
        };
        d.large_pool_empty();
        assert_eq!(d.pool, Pool::Small);
        let full = (0..100)
            .take_while(|_| !d.adapt(BUF_SIZE, BUF_SIZE))
            .count();
        assert_eq!(full, (LARGE_BACKOFF + PROMOTE - 1) as usize);
        assert_eq!(d.pool, Pool::Large);
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
