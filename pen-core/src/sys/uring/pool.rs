//! The provided-buffer pools of a worker's ring: each pool's buffers sit in one arena and
//! are lent to the kernel through a buffer ring (`IORING_REGISTER_PBUF_RING`), a window of
//! them at a time (see [`Group`]).

use std::alloc::Layout;
use std::io;
use std::ptr::{addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU16, Ordering::Release};

use io_uring::IoUring;

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
pub(super) struct BufRing {
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
    pub(super) fn new(count: u16) -> io::Result<BufRing> {
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
pub(super) struct Group {
    arena: Box<[u8]>,
    /// The size of each buffer.
    pub(super) size: usize,
    /// The id of the first buffer (ids are unique across pools).
    pub(super) first: usize,
    /// How many buffers.
    pub(super) count: usize,
    bufs: BufRing,
    window: usize,
    /// Buffers in the ring (lent to the kernel, not yet picked by a receive).
    pub(super) lent: usize,
    /// Free buffers not lent (last in, first out).
    free: Vec<u16>,
}

impl Group {
    /// Pool `id` of `ring`: `count` buffers of `size` bytes with ids from `first` (all below
    /// `u16::MAX`), at most `window` of them lent at once, registered and lent.
    pub(super) fn new(
        ring: &IoUring,
        id: u16,
        first: usize,
        count: u16,
        size: usize,
        window: u16,
    ) -> io::Result<Group> {
        let ids = first..first + usize::from(count);
        if ids.end > usize::from(u16::MAX) || u32::try_from(size).is_err() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let bufs = BufRing::new(count)?;
        register(ring, &bufs, id)?;
        let mut g = Group {
            arena: vec![0u8; usize::from(count).saturating_mul(size)].into_boxed_slice(),
            size,
            first,
            count: usize::from(count),
            bufs,
            window: usize::from(window.clamp(1, count.max(1))),
            lent: 0,
            // The lowest ids on top: lent first.
            free: ids.rev().filter_map(|b| u16::try_from(b).ok()).collect(),
        };
        while g.lent < g.window {
            let Some(bid) = g.free.pop() else {
                break;
            };
            g.lend(bid);
        }
        Ok(g)
    }

    /// Buffer `bid`'s index in this pool, if it is one of this pool's.
    pub(super) fn index(&self, bid: usize) -> Option<usize> {
        bid.checked_sub(self.first).filter(|&i| i < self.count)
    }

    /// Buffer `bid`'s bytes, if it is one of this pool's.
    pub(super) fn slice(&self, bid: usize) -> Option<&[u8]> {
        let start = self.index(bid)?.saturating_mul(self.size);
        self.arena.get(start..start + self.size)
    }

    /// Takes free buffer `bid` (one of this pool's) back: lent to the kernel if the window has
    /// room, else kept on the stack.
    pub(super) fn give(&mut self, bid: u16) {
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
    pub(super) fn picked(&mut self) {
        self.lent = self.lent.saturating_sub(1);
        if let Some(bid) = self.free.pop() {
            self.lend(bid);
        }
    }

    /// Buffers a receive can still get (lent, or waiting to be).
    pub(super) fn available(&self) -> usize {
        self.lent + self.free.len()
    }
}

/// Registers `bufs` as the buffer ring of pool `group` of `ring`.
pub(super) fn register(ring: &IoUring, bufs: &BufRing, group: u16) -> io::Result<()> {
    let n = bufs.mask.wrapping_add(1);
    // SAFETY: `bufs` is page-aligned and `n` entries long, and stays allocated until the ring
    // is closed (`Ring` declares its `IoUring` before its groups, so drops it first; `probe`
    // declares its `BufRing` before its ring, so drops it last).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(bufs.entries.as_ptr() as u64, n, group, 0)
    }
}
