//! The checksum both ends compute over every payload byte ([`Fnv`]: 64-bit FNV-1a over
//! 8-byte words, with a fold) and the checksum of a seed's stream ([`stream_sum`]).

use crate::rng::Stream;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over 8-byte words of the stream (the tail byte by byte), with a fold after
/// each multiplication so that every input bit reaches every output bit; the length is mixed
/// in at the end. Independent of how the stream is split into pieces.
pub(crate) struct Fnv {
    h: u64,
    pend: [u8; 8],
    n: usize,
    pub(crate) len: u64,
}

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv {
            h: FNV_OFFSET,
            pend: [0; 8],
            n: 0,
            len: 0,
        }
    }

    fn word(&mut self, w: u64) {
        let h = (self.h ^ w).wrapping_mul(FNV_PRIME);
        self.h = h ^ (h >> 29);
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.n > 0 {
            let take = (8 - self.n).min(data.len());
            self.pend[self.n..self.n + take].copy_from_slice(&data[..take]);
            self.n += take;
            data = &data[take..];
            if self.n < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pend));
            self.n = 0;
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let r = chunks.remainder();
        self.pend[..r.len()].copy_from_slice(r);
        self.n = r.len();
    }

    pub(crate) fn finish(&self) -> u64 {
        let mut h = self.h;
        for &b in &self.pend[..self.n] {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        (h ^ self.len).wrapping_mul(FNV_PRIME)
    }
}

/// The checksum of the first `len` bytes of `seed`'s stream (`buf` is scratch).
pub(crate) fn stream_sum(seed: u64, len: u64, buf: &mut [u8]) -> u64 {
    let mut s = Stream::new(seed);
    let mut f = Fnv::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.fill(&mut buf[..n]);
        f.update(&buf[..n]);
        left -= n as u64;
    }
    f.finish()
}
