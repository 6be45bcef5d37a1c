//! A worker's free relay buffers, in four sizes, and its kernel pipes for `splice`.
//!
//! A connection reads into the smallest size first and moves up one size each time a read
//! fills its buffer while the destination keeps up (a bulk stream: fewer system calls per MiB),
//! down one when a read fills less than a quarter, and back to the smallest after a short write
//! (a slow reader gains nothing from a bigger buffer: the socket's own is full). Buffers are
//! checked out only while bytes are in flight, so idle connections hold none of any size.

use std::io;

/// The size every connection starts with (and the most a binary upgrade moves per direction).
pub(crate) const BUF_SIZE: usize = 32 * 1024;

/// The largest size.
pub(crate) const MAX_BUF: usize = 256 * 1024;

/// The buffer sizes, smallest first: 32, 64, 128 and 256 KiB.
pub(crate) const SIZES: [usize; 4] = [BUF_SIZE, 2 * BUF_SIZE, 4 * BUF_SIZE, MAX_BUF];

/// Which size a connection reads with next: an index into [`SIZES`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SizeClass(u8);

impl SizeClass {
    /// The size in bytes.
    pub(crate) fn bytes(self) -> usize {
        SIZES.get(usize::from(self.0)).copied().unwrap_or(BUF_SIZE)
    }

    /// After a read of `got` bytes into a buffer of `len`: one size up when it filled the buffer,
    /// one down when it filled less than a quarter.
    pub(crate) fn after_read(&mut self, got: usize, len: usize) {
        if got == len && usize::from(self.0) + 1 < SIZES.len() {
            self.0 += 1;
        } else if got < len / 4 && self.0 > 0 {
            self.0 -= 1;
        }
    }

    /// After a short write: back to the smallest size.
    pub(crate) fn after_short_write(&mut self) {
        self.0 = 0;
    }

    /// The smallest class whose buffers hold `n` bytes, if any does.
    #[cfg(test)]
    pub(crate) fn fitting(n: usize) -> Option<SizeClass> {
        let i = SIZES.iter().position(|&s| s >= n)?;
        u8::try_from(i).ok().map(SizeClass)
    }
}

/// Free relay buffers of one worker. Buffers beyond `keep` (of the smallest size; a quarter as
/// many of each bigger size, at least two) are freed rather than cached, so memory shrinks back
/// after a burst.
#[derive(Debug)]
pub(crate) struct BufPool {
    free: [Vec<Box<[u8]>>; 4],
    #[cfg(target_os = "linux")]
    pipes: Vec<crate::sys::KernelPipe>,
    keep: usize,
    /// Buffers and pipes currently checked out (for the status page and tests).
    pub(crate) out: usize,
}

impl BufPool {
    /// A pool caching at most `keep` free buffers of the smallest size (and pipes).
    pub(crate) fn new(keep: usize) -> Self {
        BufPool {
            free: Default::default(),
            #[cfg(target_os = "linux")]
            pipes: Vec::new(),
            keep,
            out: 0,
        }
    }

    #[cfg(target_os = "linux")]
    pub(super) fn get_pipe(&mut self) -> io::Result<crate::sys::KernelPipe> {
        let p = match self.pipes.pop() {
            Some(p) => p,
            None => crate::sys::KernelPipe::new()?,
        };
        self.out += 1;
        Ok(p)
    }

    #[cfg(target_os = "linux")]
    pub(super) fn put_pipe(&mut self, p: crate::sys::KernelPipe) {
        self.out = self.out.saturating_sub(1);
        if self.pipes.len() < self.keep {
            self.pipes.push(p);
        }
    }

    /// Checks a buffer of the smallest size out (a cached one, or a new one).
    pub(crate) fn get(&mut self) -> Box<[u8]> {
        self.get_sized(SizeClass::default())
    }

    /// Checks a buffer of `class`'s size out.
    pub(crate) fn get_sized(&mut self, class: SizeClass) -> Box<[u8]> {
        self.out += 1;
        let size = class.bytes();
        let cached = (self.free.get_mut(usize::from(class.0))).and_then(Vec::pop);
        cached.unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
    }

    /// Gives a buffer back.
    pub(crate) fn put(&mut self, b: Box<[u8]>) {
        self.out = self.out.saturating_sub(1);
        let Some(i) = SIZES.iter().position(|&s| s == b.len()) else {
            return;
        };
        let keep = if i == 0 {
            self.keep
        } else {
            (self.keep / 4).max(2)
        };
        if let Some(list) = self.free.get_mut(i) {
            if list.len() < keep {
                list.push(b);
            }
        }
    }

    /// Free buffers cached, of each size (for tests).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for (c, list) in n.iter_mut().zip(&self.free) {
            *c = list.len();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_climbs_one_size_per_full_read_and_falls_back() {
        let mut c = SizeClass::default();
        let mut seen = vec![c.bytes()];
        for _ in 0..5 {
            let len = c.bytes();
            c.after_read(len, len);
            seen.push(c.bytes());
        }
        assert_eq!(
            seen,
            vec![SIZES[0], SIZES[1], SIZES[2], SIZES[3], MAX_BUF, MAX_BUF]
        );
        c.after_read(MAX_BUF / 2, MAX_BUF); // half full: stays
        assert_eq!(c.bytes(), MAX_BUF);
        c.after_read(100, MAX_BUF); // a trickle: one down
        assert_eq!(c.bytes(), SIZES[2]);
        c.after_short_write();
        assert_eq!(c.bytes(), BUF_SIZE);
        c.after_read(10, BUF_SIZE);
        assert_eq!(c.bytes(), BUF_SIZE, "never below the smallest");
    }

    #[test]
    fn the_pool_caches_each_size_apart_and_bounds_the_big_ones() {
        let mut pool = BufPool::new(8);
        let big = SizeClass::fitting(MAX_BUF).expect("fits");
        let bufs: Vec<_> = (0..5).map(|_| pool.get_sized(big)).collect();
        assert!(bufs.iter().all(|b| b.len() == MAX_BUF));
        let small = pool.get();
        assert_eq!(small.len(), BUF_SIZE);
        assert_eq!(pool.out, 6);
        for b in bufs {
            pool.put(b);
        }
        pool.put(small);
        pool.put(vec![0; 1000].into_boxed_slice()); // no size of ours: dropped
        assert_eq!(pool.out, 0);
        assert_eq!(pool.cached(), [1, 0, 0, 2], "big ones kept: a quarter of 8");
        assert_eq!(pool.get_sized(big).len(), MAX_BUF);
        assert_eq!(SizeClass::fitting(MAX_BUF + 1), None);
        assert_eq!(SizeClass::fitting(1).map(SizeClass::bytes), Some(BUF_SIZE));
        assert_eq!(
            SizeClass::fitting(BUF_SIZE + 1).map(SizeClass::bytes),
            Some(SIZES[1])
        );
    }
}
