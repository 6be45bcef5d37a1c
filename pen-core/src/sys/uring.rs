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

use std::alloc::Layout;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU16, Ordering::Release};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

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

/// One buffer ring entry, as the kernel reads it (`struct io_uring_buf`). The `resv` field of
/// the first entry is the ring's tail.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// A ring of buffer entries shared with the kernel (page-aligned, a power of two long): the
/// engine adds buffers at the tail, the kernel takes them from its head.
struct BufRing {
    entries: NonNull<RawBuf>,
    layout: Layout,
    mask: u16,
    tail: u16,
}

// SAFETY: the entries are owned by the ring (only the kernel reads them meanwhile); the ring
// moves to its worker thread before use and is used by that thread alone.
unsafe impl Send for BufRing {}

impl BufRing {
    /// A ring with room for `count` buffers.
    fn new(count: u16) -> io::Result<BufRing> {
        let n = count.max(1).checked_next_power_of_two().unwrap_or(1 << 15);
        let layout = Layout::from_size_align(usize::from(n) * size_of::<RawBuf>(), 4096)
            .map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: the layout's size is not zero (at least one 16-byte entry).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let entries = NonNull::new(p.cast::<RawBuf>()).ok_or(io::ErrorKind::OutOfMemory)?;
        Ok(BufRing {
            entries,
            layout,
            mask: n - 1,
            tail: 0,
        })
    }

    /// Hands `len` bytes at `addr` to the kernel as buffer `bid`.
    fn add(&mut self, addr: *mut u8, len: u32, bid: u16) {
        let i = usize::from(self.tail & self.mask);
        // SAFETY: `i` is below the ring's length, so `e` is inside the allocation. The entry
        // is past the tail, which the kernel does not read; its fields are written one by one
        // through raw pointers because the first entry's `resv` is the tail the kernel reads.
        unsafe {
            let e = self.entries.as_ptr().add(i);
            addr_of_mut!((*e).addr).write(addr as u64);
            addr_of_mut!((*e).len).write(len);
            addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the first entry's `resv`, a 2-aligned u16 inside the allocation,
        // read by the kernel concurrently: written atomically, with release ordering so that
        // the entry above is visible before the tail that covers it.
        let tail = unsafe { &*addr_of_mut!((*self.entries.as_ptr()).resv).cast::<AtomicU16>() };
        tail.store(self.tail, Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once (the ring that read it is
        // closed first, or the whole `Ring` is leaked instead).
        unsafe { std::alloc::dealloc(self.entries.as_ptr().cast(), self.layout) }
    }
}

/// One pool: equal buffers in an arena, lent to the kernel through a [`BufRing`]. At most
/// `window` are lent at once; the others wait in a stack, the most recently given back on top,
/// so that the buffers in use are few and recently touched (cache-warm, and only those
/// resident), where a ring lending them all would cycle through the whole arena.
struct Group {
    arena: Box<[u8]>,
    size: usize,
    /// The id of the first buffer (ids are unique across pools).
    first: usize,
    count: usize,
    bufs: BufRing,
    window: usize,
    /// Buffers in the ring (lent to the kernel, not yet picked by a receive).
    lent: usize,
    /// Free buffers not lent (last in, first out).
    free: Vec<u16>,
}

impl Group {
    /// Buffer `bid`'s index in this pool, if it is one of this pool's.
    fn index(&self, bid: usize) -> Option<usize> {
        bid.checked_sub(self.first).filter(|&i| i < self.count)
    }

    /// Buffer `bid`'s bytes, if it is one of this pool's.
    fn slice(&self, bid: usize) -> Option<&[u8]> {
        let start = self.index(bid)?.saturating_mul(self.size);
        self.arena.get(start..start + self.size)
    }

    /// Takes free buffer `bid` (one of this pool's) back: lent to the kernel if the window has
    /// room, else kept on the stack.
    fn give(&mut self, bid: u16) {
        if self.lent < self.window {
            self.lend(bid);
        } else {
            self.free.push(bid);
        }
    }

    fn lend(&mut self, bid: u16) {
        let Some(i) = self.index(usize::from(bid)) else {
            return;
        };
        let start = i.saturating_mul(self.size);
        let len = u32::try_from(self.size).unwrap_or(u32::MAX);
        if let Some(b) = self.arena.get_mut(start..start + self.size) {
            let ptr = b.as_mut_ptr();
            self.bufs.add(ptr, len, bid);
            self.lent += 1;
        }
    }

    /// A receive picked one of the lent buffers: lend the top of the stack in its place.
    fn picked(&mut self) {
        self.lent = self.lent.saturating_sub(1);
        if let Some(bid) = self.free.pop() {
            self.lend(bid);
        }
    }

    /// Buffers a receive can still get (lent, or waiting to be).
    fn available(&self) -> usize {
        self.lent + self.free.len()
    }
}

/// Whether the running kernel has what the uring engine needs (a ring with `EXT_ARG` waits
/// and provided buffers): `Err` says why not.
pub(crate) fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's io_uring lacks timed waits (IORING_FEAT_EXT_ARG, Linux 5.11)",
        ));
    }
    let bufs = BufRing::new(1)?;
    register(&ring, &bufs, 0)
}

/// Registers `bufs` as the buffer ring of pool `group` of `ring`.
fn register(ring: &IoUring, bufs: &BufRing, group: u16) -> io::Result<()> {
    let n = bufs.mask.wrapping_add(1);
    // SAFETY: `bufs` is page-aligned and `n` entries long, and stays allocated until the ring
    // is closed (`Ring` declares its `IoUring` before its groups; the probe's ring is dropped
    // before its `BufRing`, declared earlier).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(bufs.entries.as_ptr() as u64, n, group, 0)
    }
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
            if first + usize::from(count) > usize::from(u16::MAX) || u32::try_from(size).is_err() {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            let bufs = BufRing::new(count)?;
            register(&ring, &bufs, id)?;
            let mut g = Group {
                arena: vec![0u8; usize::from(count).saturating_mul(size)].into_boxed_slice(),
                size,
                first,
                count: usize::from(count),
                bufs,
                window: usize::from(window.clamp(1, count.max(1))),
                lent: 0,
                free: Vec::with_capacity(usize::from(count)),
            };
            // Ids below u16::MAX (checked above); the lowest ids are lent first.
            for bid in (first..first + usize::from(count)).rev() {
                g.free.push(bid as u16);
            }
            while g.lent < g.window {
                let Some(bid) = g.free.pop() else {
                    break;
                };
                g.lend(bid);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Waits for the completions of `op` until `n` have come (bounded).
    fn wait_for(ring: &mut Ring, op: Op, n: usize) -> Vec<Cqe> {
        let mut got = Vec::new();
        for _ in 0..100 {
            let mut out = Vec::new();
            ring.submit_and_wait(Some(Duration::from_millis(20)), &mut out)
                .expect("wait");
            got.extend(out.into_iter().filter(|c| c.op == op));
            if got.len() >= n {
                break;
            }
        }
        got
    }

    fn ring() -> Option<Ring> {
        // A kernel without io_uring (or with it disabled) has nothing to test here.
        let r = Ring::new(16, [(2, 16, 2), (1, 64, 1)]).ok()?;
        r.enable().ok()?;
        Some(r)
    }

    #[test]
    fn a_received_buffer_sent_and_released_meanwhile_goes_back_once_sent() {
        let Some(mut r) = ring() else {
            return;
        };
        let (mut a, b) = UnixStream::pair().expect("pair");
        a.write_all(b"hello").expect("write");
        r.recv(b.as_raw_fd(), Pool::Small, 1);
        let c = wait_for(&mut r, Op::Recv, 1);
        let c = c.first().expect("a receive");
        assert_eq!((c.res, c.token), (5, 1));
        let bid = c.index.expect("a provided buffer");
        assert_eq!(r.bytes(bid, 0, 5), b"hello");
        assert!(r.send(b.as_raw_fd(), bid, 1, 5, 2), "held: may be sent");
        assert!(!r.send(b.as_raw_fd(), bid, 0, 5, 3), "one send at a time");
        r.release(bid);
        assert!(r.bytes(bid, 0, 5).is_empty(), "being sent: not held");
        let s = wait_for(&mut r, Op::Send, 1);
        assert_eq!(s.first().map(|c| (c.res, c.index)), Some((4, Some(bid))));
        let mut echo = [0u8; 4];
        a.read_exact(&mut echo).expect("read");
        assert_eq!(&echo, b"ello");
        // Back with the kernel: the next receive may pick it again.
        assert!(!r.send(b.as_raw_fd(), bid, 0, 1, 4));
        a.write_all(b"x").expect("write");
        let c = wait_for(&mut r, Op::Recv, 1);
        assert_eq!(c.first().map(|c| c.res), Some(1));
    }

    #[test]
    fn a_receive_that_found_the_lent_buffers_gone_does_not_wait_for_a_release() {
        // One small buffer lent at a time, of three.
        let Some(mut r) = Ring::new(16, [(3, 16, 1), (0, 64, 1)]).ok() else {
            return;
        };
        if r.enable().is_err() {
            return;
        }
        let (mut a1, b1) = UnixStream::pair().expect("pair");
        let (mut a2, b2) = UnixStream::pair().expect("pair");
        a1.write_all(b"one").expect("write");
        a2.write_all(b"two").expect("write");
        r.recv(b1.as_raw_fd(), Pool::Small, 1);
        r.recv(b2.as_raw_fd(), Pool::Small, 2);
        let got = wait_for(&mut r, Op::Recv, 2);
        let res: Vec<i32> = got.iter().map(|c| c.res).collect();
        assert!(res.contains(&3), "{res:?}");
        assert!(
            res.contains(&-libc::ENOBUFS),
            "the second found none lent: {res:?}"
        );
        // The worker lent the next one as it reaped: the starved receive may go again now.
        assert!(!r.starved);
        assert_eq!(r.available(Pool::Small), 2);
        r.recv(b2.as_raw_fd(), Pool::Small, 2);
        let again = wait_for(&mut r, Op::Recv, 1);
        assert_eq!(again.first().map(|c| c.res), Some(3));
    }

    #[test]
    fn the_most_recently_given_back_buffer_is_lent_first() {
        let Some(mut r) = Ring::new(16, [(3, 16, 1), (0, 64, 1)]).ok() else {
            return;
        };
        if r.enable().is_err() {
            return;
        }
        let (mut a, b) = UnixStream::pair().expect("pair");
        let mut next = || {
            a.write_all(b"x").expect("write");
            r.recv(b.as_raw_fd(), Pool::Small, 1);
            let c = wait_for(&mut r, Op::Recv, 1);
            let c = c.iter().find(|c| c.res > 0).expect("a receive");
            let bid = c.index.expect("a buffer");
            r.cancel_recv(Pool::Small, 1);
            let _ = wait_for(&mut r, Op::Recv, 1);
            r.release(bid);
            bid
        };
        let first = next();
        // Lent in its place: the next on the stack; `first` went back on top of the stack.
        let second = next();
        assert_ne!(first, second);
        assert_eq!(
            next(),
            first,
            "reused while warm, not the third, never-touched one"
        );
    }

    #[test]
    fn held_bytes_get_ids_past_the_provided_ones_and_are_freed_for_reuse() {
        let Some(mut r) = ring() else {
            return;
        };
        let first = r.hold_bytes(b"abc").expect("an id");
        assert!(usize::from(first) >= 3, "past the 3 provided buffers");
        assert_eq!(r.bytes(first, 0, 3), b"abc");
        let second = r.hold_bytes(b"de").expect("an id");
        assert_ne!(first, second);
        r.release(first);
        assert!(r.bytes(first, 0, 3).is_empty());
        assert_eq!(r.hold_bytes(b"f"), Some(first), "the freed id is reused");
        assert_eq!(r.bytes(second, 0, 2), b"de");
    }

    #[test]
    fn a_connect_to_a_closed_port_fails_and_its_timeout_is_cancelled() {
        let Some(mut r) = ring() else {
            return;
        };
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let sock = server_socket(addr, None, None, true).expect("socket");
        r.connect(sock.as_raw_fd(), addr, Duration::from_secs(5), 9);
        let mut all = Vec::new();
        for _ in 0..100 {
            let mut out = Vec::new();
            r.submit_and_wait(Some(Duration::from_millis(20)), &mut out)
                .expect("wait");
            all.extend(out.into_iter().map(|c| (c.op, c.res, c.token)));
            if all.len() >= 2 {
                break;
            }
        }
        assert!(
            all.contains(&(Op::Connect, -libc::ECONNREFUSED, 9)),
            "{all:?}"
        );
        assert!(all.contains(&(Op::Timeout, -libc::ECANCELED, 9)), "{all:?}");
        r.close(sock);
    }
}
