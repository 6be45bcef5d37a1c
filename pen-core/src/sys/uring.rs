//! The io_uring layer of the opt-in uring engine (`engine::uring`): one ring per worker, its
//! provided buffers, and one safe method per operation the engine submits. Everything the
//! kernel reads or writes after a submission (connect addresses and timeouts, receive and
//! send buffers) is owned here, and stays owned until the kernel is
//! done with it:
//!
//! - receive buffers are fixed arenas lent to the kernel through buffer rings
//!   (`IORING_REGISTER_PBUF_RING`, one per [`Pool`]): a receive picks one only when bytes
//!   arrive, so an idle connection holds none, and giving one back is a write to memory shared
//!   with the kernel, not a submission. A buffer the engine holds is either given back
//!   ([`Ring::release`]) or sent from ([`Ring::send`]); one being sent is given back only when
//!   its send completes, whatever the engine asked meanwhile;
//! - connect addresses and their link timeouts are copied by the kernel when the submission is
//!   prepared (inside `io_uring_enter`), so they are kept until the next submission returns;
//! - closing a socket cancels every operation on it first (a hard link: the close runs
//!   whatever the cancel found), so no operation outlives its descriptor's number;
//! - dropping the ring cancels what is in flight and waits (bounded) for it; if the kernel
//!   still holds something, the buffers are leaked rather than freed under it.
//!
//! A completion's `user_data` packs the operation, a buffer index and the engine's
//! 44-bit token ([`Cqe`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod pool;
#[cfg(test)]
mod tests;

use pool::{BufRing, Group};

/// The provided-buffer pools a receive can pick from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Relay-sized buffers, for every connection.
    #[default]
    Small = 0,
    /// Large buffers, for a direction that keeps filling small ones (bulk transfers): fewer
    /// receives, sends and completions per byte.
    Large = 1,
}

impl Pool {
    fn from_index(i: u16) -> Pool {
        if i == Pool::Large as u16 {
            Pool::Large
        } else {
            Pool::Small
        }
    }
}
/// Bits of `user_data` the engine's token may use.
pub(crate) const TOKEN_BITS: u32 = 44;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;

/// What a submission was (the top 4 bits of its `user_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The listener's readiness poll (multishot).
    Ready = 1,
    /// A connect.
    Connect = 2,
    /// A connect's link timeout.
    Timeout = 3,
    /// A receive into a provided buffer (index: its [`Pool`]).
    Recv = 4,
    /// A send from a held buffer (index: the buffer).
    Send = 5,
    /// A cancel, a close, or a buffer handed back: nothing for the engine.
    Housekeeping = 6,
    /// The multishot poll of the worker's waker.
    Wake = 7,
}

impl Op {
    fn from_bits(b: u64) -> Option<Op> {
        Some(match b {
            1 => Op::Ready,
            2 => Op::Connect,
            3 => Op::Timeout,
            4 => Op::Recv,
            5 => Op::Send,
            6 => Op::Housekeeping,
            7 => Op::Wake,
            _ => return None,
        })
    }
}

fn user_data(op: Op, index: u16, token: u64) -> u64 {
    ((op as u64) << 60) | (u64::from(index) << TOKEN_BITS) | (token & TOKEN_MASK)
}

/// One completion, decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cqe {
    /// What completed.
    pub(crate) op: Op,
    /// The engine's token given at submission.
    pub(crate) token: u64,
    /// The result: a count, a descriptor, or `-errno`.
    pub(crate) res: i32,
    /// A receive's buffer (now held by the engine), or a send's.
    pub(crate) index: Option<u16>,
    /// The pool a receive picks from.
    pub(crate) pool: Pool,
    /// More completions will come for this submission (multishot).
    pub(crate) more: bool,
}

/// Where a buffer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BufState {
    /// Free: lent to the kernel (to be picked by a receive) or waiting in its pool.
    Provided,
    /// With the engine.
    Held,
    /// Being sent; `release` says the engine gave it back meanwhile.
    Sending { release: bool },
}

/// A connect's address and timeout, kept until the kernel has copied them.
struct ConnectArgs {
    addr: SockAddr,
    timeout: Timespec,
}

/// A worker's ring, its buffers and the memory its submissions point at.
pub(crate) struct Ring {
    // First: the ring is closed before the memory it points at is freed.
    ring: IoUring,
    /// The pools, indexed by [`Pool`]; their buffer ids follow each other from 0.
    groups: Vec<Group>,
    /// Provided buffers (ids below this); the ids from here on are `extras`.
    nbufs: usize,
    /// Buffers of the engine's own (bytes a connection brought with it when it was handed
    /// over by an upgrade), never provided to the kernel; freed when given back.
    extras: Vec<Option<Box<[u8]>>>,
    bufs: Vec<BufState>,
    /// Submissions waiting for room in the submission queue (a linked pair as one).
    backlog: Vec<(squeue::Entry, Option<squeue::Entry>)>,
    /// Connect arguments the kernel has not copied yet (until the next submission returns).
    /// Boxed: the kernel holds their addresses, which must not move when the vector grows.
    #[allow(clippy::vec_box)]
    staged: Vec<Box<ConnectArgs>>,
    /// Submissions whose last completion has not come yet.
    inflight: usize,
    /// Receives that found no small buffer since small buffers were last given back.
    pub(crate) starved: bool,
    /// Buffers whose send completed after they were released (reused, not reallocated).
    to_provide: Vec<u16>,
}

/// Whether the running kernel has what the uring engine needs (a ring with `EXT_ARG` waits
/// and provided buffers): `Err` says why not.
pub(crate) fn probe() -> io::Result<()> {
    // Declared first, so dropped after the ring it is registered with.
    let bufs = BufRing::new(1)?;
    let ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's io_uring lacks timed waits (IORING_FEAT_EXT_ARG, Linux 5.11)",
        ));
    }
    pool::register(&ring, &bufs, 0)
}

impl Ring {
    /// A ring of `entries` submissions and the buffer pools `pools` (count, size, how many
    /// lent to the kernel at most), indexed by [`Pool`].
    pub(crate) fn new(entries: u32, pools: [(u16, usize, u16); 2]) -> io::Result<Ring> {
        // Made disabled: the worker thread enables it ([`Ring::enable`]) and so becomes its
        // single issuer (the kernel then skips the locking a shared ring needs), with task
        // work run only when it enters the kernel (`DEFER_TASKRUN`: no interruption mid-turn).
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(4))
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .build(entries)?;
        let mut groups = Vec::with_capacity(pools.len());
        let mut first = 0usize;
        for (i, (count, size, window)) in pools.into_iter().enumerate() {
            let id = u16::try_from(i).map_err(|_| io::ErrorKind::InvalidInput)?;
            let g = Group::new(&ring, id, first, count, size, window)?;
            first += usize::from(count);
            groups.push(g);
        }
        Ok(Ring {
            ring,
            groups,
            nbufs: first,
            extras: Vec::new(),
            bufs: vec![BufState::Provided; first],
            backlog: Vec::new(),
            staged: Vec::new(),
            inflight: 0,
            starved: false,
            to_provide: Vec::new(),
        })
    }

    /// Buffers of `pool` a receive can still get.
    pub(crate) fn available(&self, pool: Pool) -> usize {
        self.groups.get(pool as usize).map_or(0, Group::available)
    }

    /// The size of the buffers of `pool` (0 if it has none).
    pub(crate) fn buf_size(&self, pool: Pool) -> usize {
        self.groups
            .get(pool as usize)
            .filter(|g| g.count > 0)
            .map_or(0, |g| g.size)
    }

    /// Enables the ring: called on the thread that will use it (its single issuer).
    pub(crate) fn enable(&self) -> io::Result<()> {
        self.ring.submitter().register_enable_rings()
    }

    fn push(&mut self, entry: squeue::Entry) {
        self.inflight += 1;
        if !self.backlog.is_empty() {
            self.backlog.push((entry, None));
            return;
        }
        let mut sq = self.ring.submission();
        // SAFETY: every pointer in `entry` is into memory this `Ring` owns and keeps until
        // the operation's completion (buffers) or until the next submission
        // has returned (connect arguments, copied by the kernel when prepared), as the module
        // documentation sets out.
        if unsafe { sq.push(&entry) }.is_err() {
            drop(sq);
            self.backlog.push((entry, None));
        }
    }

    /// Connects `fd` to `addr`, cancelled (`-ECANCELED`) after `timeout`.
    pub(crate) fn connect(&mut self, fd: RawFd, addr: SocketAddr, timeout: Duration, token: u64) {
        let args = Box::new(ConnectArgs {
            addr: addr.into(),
            timeout: Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos()),
        });
        let c = opcode::Connect::new(Fd(fd), args.addr.as_ptr().cast(), args.addr.len())
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(user_data(Op::Connect, 0, token));
        let t = opcode::LinkTimeout::new(&args.timeout)
            .build()
            .user_data(user_data(Op::Timeout, 0, token));
        self.staged.push(args);
        self.push_linked(c, t);
    }

    /// Receives from `fd` into provided buffers, repeatedly (multishot: one completion per
    /// chunk, each with its buffer, until cancelled, out of buffers, at end of file or on an
    /// error, which the last completion, without `more`, says).
    pub(crate) fn recv(&mut self, fd: RawFd, pool: Pool, token: u64) {
        let entry = opcode::RecvMulti::new(Fd(fd), pool as u16)
            .build()
            .user_data(user_data(Op::Recv, pool as u16, token));
        self.push(entry);
    }

    /// Cancels the receive of `token` from `pool` (its last completion says when it has
    /// ended).
    pub(crate) fn cancel_recv(&mut self, pool: Pool, token: u64) {
        let entry = opcode::AsyncCancel::new(user_data(Op::Recv, pool as u16, token))
            .build()
            .user_data(user_data(Op::Housekeeping, 0, 0));
        self.push(entry);
    }

    /// Sends bytes `from..to` of held buffer `bid` to `fd`. Returns false (nothing sent) if
    /// the buffer is not held or the range is outside it.
    pub(crate) fn send(&mut self, fd: RawFd, bid: u16, from: usize, to: usize, token: u64) -> bool {
        let i = usize::from(bid);
        if self.bufs.get(i) != Some(&BufState::Held) || from >= to {
            return false;
        }
        let Some(bytes) = self.slice(bid).get(from..to) else {
            return false;
        };
        let ptr = bytes.as_ptr();
        let len = u32::try_from(to - from).unwrap_or(u32::MAX);
        if let Some(b) = self.bufs.get_mut(i) {
            *b = BufState::Sending { release: false };
        }
        let entry = opcode::Send::new(Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Op::Send, bid, token));
        self.push(entry);
        true
    }

    /// The memory of buffer `bid` (a provided one's, or an extra's).
    fn slice(&self, bid: u16) -> &[u8] {
        let i = usize::from(bid);
        if i < self.nbufs {
            return (self.groups.iter())
                .find_map(|g| g.slice(i))
                .unwrap_or_default();
        }
        (self.extras.get(i - self.nbufs))
            .and_then(Option::as_deref)
            .unwrap_or_default()
    }

    /// Bytes `from..to` of held buffer `bid` (empty if it is not held or out of range).
    pub(crate) fn bytes(&self, bid: u16, from: usize, to: usize) -> &[u8] {
        if self.bufs.get(usize::from(bid)) != Some(&BufState::Held) {
            return &[];
        }
        self.slice(bid).get(from..to).unwrap_or_default()
    }

    /// Holds a copy of `data` in a buffer of the engine's own; its id, to send from and give
    /// back like a received one (`None` if there are no ids left).
    pub(crate) fn hold_bytes(&mut self, data: &[u8]) -> Option<u16> {
        let free = self.extras.iter().position(Option::is_none);
        let i = free.unwrap_or(self.extras.len());
        let bid = u16::try_from(self.nbufs + i).ok()?;
        let buf = Some(data.to_vec().into_boxed_slice());
        match self.extras.get_mut(i) {
            Some(e) => *e = buf,
            None => {
                self.extras.push(buf);
                self.bufs.push(BufState::Held);
            }
        }
        if let Some(b) = self.bufs.get_mut(usize::from(bid)) {
            *b = BufState::Held;
        }
        Some(bid)
    }

    /// Gives held buffer `bid` back to the kernel (once its send, if any, is over).
    pub(crate) fn release(&mut self, bid: u16) {
        match self.bufs.get_mut(usize::from(bid)) {
            Some(BufState::Held) => self.provide(bid),
            Some(s @ BufState::Sending { .. }) => *s = BufState::Sending { release: true },
            _ => {}
        }
    }

    fn provide(&mut self, bid: u16) {
        let i = usize::from(bid);
        if i >= self.nbufs {
            // An extra: freed (its id is reused by the next `hold_bytes`).
            if let Some(e) = self.extras.get_mut(i - self.nbufs) {
                *e = None;
            }
            if let Some(s) = self.bufs.get_mut(i) {
                *s = BufState::Provided;
            }
            return;
        }
        if let Some(s) = self.bufs.get_mut(i) {
            *s = BufState::Provided;
        }
        if let Some(g) = (self.groups.iter_mut()).find(|g| g.index(i).is_some()) {
            g.give(bid);
            // The small pool is the first one.
            self.starved &= g.first != 0;
        }
    }

    /// Polls `fd` for readability, repeatedly (multishot): the worker's waker ([`Op::Wake`])
    /// or its listener ([`Op::Ready`], with `token`).
    pub(crate) fn poll_readable(&mut self, fd: RawFd, op: Op, token: u64) {
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(op, 0, token));
        self.push(entry);
    }

    /// Cancels every operation on `fd`, then closes it.
    pub(crate) fn close(&mut self, fd: OwnedFd) {
        let fd = fd.into_raw_fd();
        // A hard link: the close runs whatever the cancel found.
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(user_data(Op::Housekeeping, 0, 0));
        let close = opcode::Close::new(Fd(fd))
            .build()
            .user_data(user_data(Op::Housekeeping, 0, 0));
        self.push_linked(cancel, close);
    }

    /// Cancels every operation on `fd` (the descriptor stays open).
    pub(crate) fn cancel_fd(&mut self, fd: RawFd) {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(user_data(Op::Housekeeping, 0, 0));
        self.push(entry);
    }

    /// Pushes two linked entries so that they reach the queue together and in order.
    fn push_linked(&mut self, first: squeue::Entry, second: squeue::Entry) {
        let room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if room < 2 || !self.backlog.is_empty() {
            self.backlog.push((first, Some(second)));
            self.inflight += 2;
            return;
        }
        self.push(first);
        self.push(second);
    }

    /// Submits what is queued and waits for at least one completion, at most `timeout`
    /// (`None`: no limit; zero: do not wait); appends the completions to `out`.
    pub(crate) fn submit_and_wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Cqe>,
    ) -> io::Result<()> {
        self.flush_backlog()?;
        let wait = !matches!(timeout, Some(t) if t.is_zero());
        let result = if !wait {
            self.ring.submit()
        } else if let Some(t) = timeout {
            let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
            let args = SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        } else {
            self.ring.submit_and_wait(1)
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        if self.ring.submission().is_empty() {
            self.staged.clear();
        }
        self.reap(out);
        Ok(())
    }

    /// Moves waiting submissions into the queue, submitting (without waiting) to make room.
    fn flush_backlog(&mut self) -> io::Result<()> {
        while !self.backlog.is_empty() {
            let backlog = std::mem::take(&mut self.backlog);
            let mut rest = backlog.into_iter();
            {
                let mut sq = self.ring.submission();
                for (first, second) in rest.by_ref() {
                    let need = if second.is_some() { 2 } else { 1 };
                    if sq.capacity() - sq.len() < need {
                        self.backlog.push((first, second));
                        break;
                    }
                    // SAFETY: as in `push`.
                    let _ = unsafe { sq.push(&first) };
                    if let Some(e) = second {
                        // SAFETY: as in `push`.
                        let _ = unsafe { sq.push(&e) };
                    }
                }
            }
            self.backlog.extend(rest);
            if !self.backlog.is_empty() {
                self.ring.submit()?;
            }
        }
        Ok(())
    }

    fn reap(&mut self, out: &mut Vec<Cqe>) {
        let mut provide = std::mem::take(&mut self.to_provide);
        for e in self.ring.completion() {
            let ud = e.user_data();
            let more = cqueue::more(e.flags());
            if !more {
                self.inflight = self.inflight.saturating_sub(1);
            }
            let Some(op) = Op::from_bits(ud >> 60) else {
                continue;
            };
            let index = ((ud >> TOKEN_BITS) & 0xffff) as u16;
            // A receive's index is its pool (a send's, its buffer: the pool is then moot).
            let pool = Pool::from_index(index);
            let res = e.result();
            let index = match op {
                Op::Recv => {
                    let bid = cqueue::buffer_select(e.flags());
                    if let Some(b) = bid.and_then(|b| self.bufs.get_mut(usize::from(b))) {
                        *b = BufState::Held;
                    }
                    if let Some(g) = bid.and_then(|b| {
                        let b = usize::from(b);
                        self.groups.iter_mut().find(|g| g.index(b).is_some())
                    }) {
                        g.picked();
                    }
                    if res == -libc::ENOBUFS && pool == Pool::Small {
                        self.starved = true;
                    }
                    bid
                }
                Op::Send => {
                    if let Some(b) = self.bufs.get_mut(usize::from(index)) {
                        if let BufState::Sending { release } = *b {
                            *b = BufState::Held;
                            if release {
                                provide.push(index);
                            }
                        }
                    }
                    Some(index)
                }
                _ => None,
            };
            if op == Op::Housekeeping {
                continue;
            }
            out.push(Cqe {
                op,
                token: ud & TOKEN_MASK,
                res,
                index,
                pool,
                more,
            });
        }
        for bid in provide.drain(..) {
            self.provide(bid);
        }
        self.to_provide = provide;
        // A receive can find the lent buffers gone while others wait in the pool (a burst took
        // them before the worker lent more): once lent again, it need not wait for a release.
        if self.groups.first().is_some_and(|g| g.lent > 0) {
            self.starved = false;
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Nothing may be left writing into the arena once it is freed.
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any().all())
            .build()
            .user_data(user_data(Op::Housekeeping, 0, 0));
        self.push(cancel);
        let mut out = Vec::new();
        for _ in 0..100 {
            if self.inflight == 0 {
                return;
            }
            out.clear();
            if self
                .submit_and_wait(Some(Duration::from_millis(10)), &mut out)
                .is_err()
            {
                break;
            }
        }
        if self.inflight > 0 {
            // Some operation the kernel is slow to end is still out: leak what it might touch.
            std::mem::forget(std::mem::take(&mut self.groups));
        }
    }
}

/// A TCP socket for a server at `addr`, non-blocking, with the options the epoll engine sets
/// (`TCP_NODELAY`, a `source` address, `transparent` binding), not yet connected.
pub(crate) fn server_socket(
    addr: SocketAddr,
    source: Option<IpAddr>,
    transparent: Option<IpAddr>,
    nodelay: bool,
) -> io::Result<OwnedFd> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if let Some(client) = transparent {
        super::bind_transparent(&sock, client, addr)?;
    } else if let Some(ip) = source {
        if ip.is_ipv4() == addr.is_ipv4() {
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
    }
    Ok(sock.into())
}
