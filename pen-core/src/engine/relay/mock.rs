//! Test doubles for the relay's `Read`/`Write` sides: short reads and writes, `WouldBlock`.

use super::HalfClose;
use std::io::{self, Read, Write};

/// A source that yields `data` in chunks of the given sizes, with WouldBlock between them.
pub(crate) struct Src {
    pub(crate) data: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) chunks: Vec<usize>,
    pub(crate) turn: usize,
}
impl Read for &mut Src {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.data.len() {
            return Ok(0);
        }
        self.turn += 1;
        let c = self.chunks[self.turn % self.chunks.len()];
        if c == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = c.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
/// A destination accepting writes of the given sizes (0 = WouldBlock).
pub(crate) struct Dst {
    pub(crate) out: Vec<u8>,
    pub(crate) sizes: Vec<usize>,
    pub(crate) turn: usize,
    pub(crate) shut: bool,
}
impl Write for &mut Dst {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(!self.shut, "write after shutdown");
        self.turn += 1;
        let c = self.sizes[self.turn % self.sizes.len()];
        if c == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = c.min(buf.len());
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl HalfClose for &mut Dst {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
}
