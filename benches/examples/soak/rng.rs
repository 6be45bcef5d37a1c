//! Seeded randomness: [`Rng`] (splitmix64) for every random choice, and [`Stream`], the
//! deterministic byte stream of a seed that clients and backends send and regenerate.

use std::net::Ipv4Addr;

/// splitmix64.
#[derive(Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for n = 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num/den`.
    pub(crate) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A size in `0..=max`, roughly log-uniform: many small ones, some large.
    pub(crate) fn size(&mut self, max: u64) -> u64 {
        let bits = u64::from(64 - max.leading_zeros());
        let b = self.below(bits + 1);
        self.below(1u64 << b).min(max)
    }

    /// A loopback source address 127.0.0.1-254.
    pub(crate) fn source(&mut self) -> Ipv4Addr {
        let last = u8::try_from(self.range(1, 254)).unwrap_or(1);
        Ipv4Addr::new(127, 0, 0, last)
    }
}

/// The byte stream of a seed: the little-endian bytes of successive `Rng` words, the same
/// whatever the sizes of the pieces it is read in.
pub(crate) struct Stream {
    rng: Rng,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    pub(crate) fn new(seed: u64) -> Stream {
        Stream {
            rng: Rng(seed),
            word: [0; 8],
            used: 8,
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while self.used < 8 && i < out.len() {
            out[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut chunks = out[i..].chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.word = self.rng.next().to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }
}
