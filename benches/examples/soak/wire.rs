//! The wire format between clients and backends: the 32-byte request and reply headers, the
//! UDP query header, and writing or reading a checksummed payload after a header.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::checksum::Fnv;
use crate::rng::Stream;

/// Scratch buffer and write size.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Request and reply header size.
pub(crate) const HDR: usize = 32;
const REQ_MAGIC: u32 = 0x5045_4e51; // "PENQ"
const REP_MAGIC: u32 = 0x5045_4e52; // "PENR"
pub(crate) const UDP_MAGIC: u32 = 0x5045_4e55; // "PENU"
/// UDP query header: magic, flags, backend, 2 bytes padding, id, seed.
pub(crate) const UDP_HDR: usize = 24;
/// The download stream's seed is the request's seed xor this.
pub(crate) const DOWN_SALT: u64 = 0x6a09_e667_f3bc_c908;
/// Client read and write timeout.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// Read `up` bytes, reply, send `down` bytes of the download stream.
    Gen = 1,
    /// Reply, then echo `up` bytes as they arrive.
    Echo = 2,
    /// Read until EOF, reply, send `down` bytes, close.
    Half = 3,
}

/// A request header: the operation, the seed, the upload and download lengths.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Req {
    pub(crate) op: Op,
    pub(crate) seed: u64,
    pub(crate) up: u64,
    pub(crate) down: u64,
}

pub(crate) fn enc_req(r: &Req) -> [u8; HDR] {
    let mut b = [0u8; HDR];
    put_u32(&mut b, 0, REQ_MAGIC);
    b[4] = r.op as u8;
    put_u64(&mut b, 8, r.seed);
    put_u64(&mut b, 16, r.up);
    put_u64(&mut b, 24, r.down);
    b
}

pub(crate) fn dec_req(b: &[u8; HDR]) -> Option<Req> {
    if get_u32(b, 0) != REQ_MAGIC || b[5..8] != [0, 0, 0] {
        return None;
    }
    let op = match b[4] {
        1 => Op::Gen,
        2 => Op::Echo,
        3 => Op::Half,
        _ => return None,
    };
    Some(Req {
        op,
        seed: get_u64(b, 8),
        up: get_u64(b, 16),
        down: get_u64(b, 24),
    })
}

/// A reply header: the backend, the checksum and length of the upload as received (0 for
/// `echo`), and the download length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rep {
    pub(crate) server: u32,
    pub(crate) up_sum: u64,
    pub(crate) up_len: u64,
    pub(crate) down: u64,
}

pub(crate) fn enc_rep(r: &Rep) -> [u8; HDR] {
    let mut b = [0u8; HDR];
    put_u32(&mut b, 0, REP_MAGIC);
    put_u32(&mut b, 4, r.server);
    put_u64(&mut b, 8, r.up_sum);
    put_u64(&mut b, 16, r.up_len);
    put_u64(&mut b, 24, r.down);
    b
}

pub(crate) fn dec_rep(b: &[u8; HDR]) -> Option<Rep> {
    if get_u32(b, 0) != REP_MAGIC {
        return None;
    }
    Some(Rep {
        server: get_u32(b, 4),
        up_sum: get_u64(b, 8),
        up_len: get_u64(b, 16),
        down: get_u64(b, 24),
    })
}

/// Reads a whole header; `Ok(false)` on EOF before its first byte.
pub(crate) fn read_header(s: &mut TcpStream, h: &mut [u8; HDR]) -> io::Result<bool> {
    let mut got = 0;
    while got < HDR {
        match s.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes the header and then `len` bytes of `seed`'s stream (small ones in one write);
/// returns the checksum of the bytes after the header. `flip` (`--inject-corruption`) flips a
/// bit of the first write after the checksum has seen it.
pub(crate) fn send_stream(
    s: &mut TcpStream,
    hdr: &[u8; HDR],
    seed: u64,
    len: u64,
    buf: &mut [u8],
    flip: bool,
) -> io::Result<u64> {
    let mut gen = Stream::new(seed);
    let mut sum = Fnv::new();
    let first = len.min((buf.len() - HDR) as u64) as usize;
    buf[..HDR].copy_from_slice(hdr);
    gen.fill(&mut buf[HDR..HDR + first]);
    sum.update(&buf[HDR..HDR + first]);
    if flip && first > 0 {
        buf[HDR + first - 1] ^= 0x10;
    }
    s.write_all(&buf[..HDR + first])?;
    let mut left = len - first as u64;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        gen.fill(&mut buf[..n]);
        sum.update(&buf[..n]);
        s.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(sum.finish())
}

/// Reads exactly `len` bytes and returns their checksum.
pub(crate) fn recv_sum(s: &mut TcpStream, len: u64, buf: &mut [u8]) -> io::Result<u64> {
    let mut sum = Fnv::new();
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                sum.update(&buf[..n]);
                left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sum.finish())
}
