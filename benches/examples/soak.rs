//! Soak test driver for pen: hours of mixed, verified traffic through a TCP pen and a UDP pen
//! while backends are stopped and started, the `-F` file is reloaded with SIGHUP and control
//! commands are sent; reports what the clients saw and whether pen's memory and descriptors
//! stay flat. Not part of the CI tests; `benches/soak/run.sh [DURATION]` builds and runs it.
//!
//! ```text
//! soak --pen PATH [--penctl PATH] [--duration 10m] [--dir DIR] [--mix short=4,...]
//!      [--warmup D] [--sample-every D] [--toggle-every D] [--hup-every D] [--control-every D]
//!      [--workers N] [--conn-max N] [--rss-tolerance-mib N] [--fd-tolerance N]
//!      [--inject-corruption N]
//! soak PEN DURATION                 # the same as --pen PEN --duration DURATION
//! ```
//!
//! Durations are `90`, `90s`, `10m` or `1.5h`. Everything runs on loopback with ephemeral
//! ports. The driver owns:
//!
//! - three TCP backends (threads, one per connection) speaking a small verifiable protocol: a
//!   32-byte request header (operation, seed, upload length, download length), the upload, a
//!   32-byte reply header (backend number, checksum and length of the upload as received,
//!   download length), the download. The bytes are a deterministic stream of the seed; both
//!   ends checksum every byte (64-bit FNV-1a over 8-byte words, with a fold so that high bits
//!   reach the low ones) and the client compares: the upload's checksum as the backend received
//!   it, and the download's against the stream it regenerates itself. Operations: `gen`
//!   (read the upload, then send the download; keep-alive), `echo` (echo the upload back as it
//!   arrives; keep-alive) and `half` (read the upload until the client's FIN, reply, close);
//! - two UDP echo backends (queries carry an id and a seed; the reply must be the query with
//!   the response flag and the backend's number set, byte for byte);
//! - a TCP pen (`pen -f -r -x N --workers N -b 2 -C CTL -F FILE -p PIDFILE LISTEN S0 S1 S2`)
//!   and a UDP pen (`pen -U -f ...` in front of the two UDP backends), as child processes.
//!
//! Client threads (`--mix`, default `short=4,keepalive=3,long=8,bulk=2,half=2,idle=2,udp=2`),
//! each from a random 127.0.0.x source address so that hash and tracking modes spread them:
//!
//! | kind | what one connection does |
//! |---|---|
//! | short | one request-reply (up to 16 KiB each way), then close |
//! | keepalive | 50-500 request-replies back to back (up to 4 KiB each way) |
//! | long | lives 30-120 s: a request-reply (up to 64 KiB) every 0.2-5 s |
//! | bulk | 1-3 transfers of 1-8 MiB each way: sequential (`gen`) or full duplex (`echo`) |
//! | half | `half`: upload up to 256 KiB, shut down writing, read the reply and the EOF |
//! | idle | one request-reply, then idle until pen's `idle_timeout` (20-30 s) closes it |
//! | udp | a socket (a pen flow) sends 20-2,000 queries of up to 1,200 bytes, one in flight |
//!
//! Meanwhile the main thread: every `--toggle-every` (20 s) stops one TCP backend for 3-12 s
//! (closing its listener and shutting down its connections, every other time with an abortive
//! RST) and starts it again on the same port (if the port was taken meanwhile: on a new one,
//! moved with `server N port P`); every third toggle period stops a UDP backend the same way;
//! every `--hup-every` (15 s) rewrites both `-F` files (three variants: round robin, hash,
//! tracking; `blacklist`, `idle_timeout`, the servers' current ports), sends SIGHUP and checks
//! with `mode` and `idle_timeout` that the reload took; every `--control-every` (3 s) sends a
//! control command (`servers`, `mode`, `metrics`, `status`, `server N blacklist 1`,
//! `idle_timeout`, `idle_timeout N`, `recent`, `pid`; every third one through `penctl`) and
//! checks the reply; every `--sample-every` (10 s) samples both pens' VmRSS, open descriptors
//! and utime+stime from /proc.
//!
//! A client whose connection breaks while the backend it was on (or, before its first reply,
//! any backend) has been stopped counts it as "broken by a server stop". Any other failure is a
//! client-seen error, and any checksum, length or header mismatch on an exchange is corruption.
//!
//! At the end the clients stop, every backend is started again, the drivers waits for pen's
//! active connections to drain (and sets the UDP pen's `idle_timeout` to 1 so that its flows
//! end), samples again and prints a Markdown report on stdout. Exit status 0 only if: no
//! corruption, no client-seen TCP error, no failed reload or control check, both pens ran to
//! the end and exited cleanly, each pen's end RSS ≤ its RSS after the warm-up +
//! `--rss-tolerance-mib` (8) and its end descriptor count within `--fd-tolerance` (4) of the
//! count before any traffic. UDP queries lost without a server stop are reported, not failed.
//! SIGINT or SIGTERM ends the run early, with a report (and status 1).
//!
//! `--inject-corruption N` checks the checker: the backends then flip a bit in one reply in N
//! (TCP downloads and echoes, UDP answers), after computing their checksums, and the report
//! must show that many corrupted exchanges (less those cut short by a server stop).
// A load generator, not pen: its input is what it sends itself, so the workspace's
// no-panic lints for network-facing code do not apply; its buffers are indexed by their own
// lengths.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

// ------------------------------------------------------------------------------------------
// Constants

/// Scratch buffer and write size.
const CHUNK: usize = 64 * 1024;
/// Request and reply header size.
const HDR: usize = 32;
const REQ_MAGIC: u32 = 0x5045_4e51; // "PENQ"
const REP_MAGIC: u32 = 0x5045_4e52; // "PENR"
const UDP_MAGIC: u32 = 0x5045_4e55; // "PENU"
/// UDP query header: magic, flags, backend, 2 bytes padding, id, seed.
const UDP_HDR: usize = 24;
/// The download stream's seed is the request's seed xor this.
const DOWN_SALT: u64 = 0x6a09_e667_f3bc_c908;
/// Client read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const TCP_BACKENDS: usize = 3;
const UDP_BACKENDS: usize = 2;
/// The TCP pen's `idle_timeout` is always one of these (files and control commands).
const IDLE_CHOICES: [u64; 3] = [20, 25, 30];
/// An idle connection not closed by pen within this time is an error.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(70);
/// A UDP query lost within this time after a UDP backend stop or start is blamed on it.
const UDP_BLAME_MS: u64 = 5_000;
/// Notes (errors, corruption) kept for the report.
const MAX_NOTES: usize = 200;

// ------------------------------------------------------------------------------------------
// Command line

/// How many client threads of each kind.
#[derive(Clone, Copy, Debug)]
struct Mix {
    short: usize,
    keepalive: usize,
    long: usize,
    bulk: usize,
    half: usize,
    idle: usize,
    udp: usize,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            short: 4,
            keepalive: 3,
            long: 8,
            bulk: 2,
            half: 2,
            idle: 2,
            udp: 2,
        }
    }
}

impl Mix {
    fn parse(s: &str) -> Result<Mix, String> {
        let mut m = Mix::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: expected KIND=N, got '{part}'"))?;
            let n: usize = v.parse().map_err(|_| format!("--mix: bad number '{v}'"))?;
            match k {
                "short" => m.short = n,
                "keepalive" => m.keepalive = n,
                "long" => m.long = n,
                "bulk" => m.bulk = n,
                "half" => m.half = n,
                "idle" => m.idle = n,
                "udp" => m.udp = n,
                _ => return Err(format!("--mix: unknown kind '{k}'")),
            }
        }
        Ok(m)
    }

    fn describe(&self) -> String {
        format!(
            "short={},keepalive={},long={},bulk={},half={},idle={},udp={}",
            self.short, self.keepalive, self.long, self.bulk, self.half, self.idle, self.udp
        )
    }
}

/// The parsed command line.
struct Args {
    pen: PathBuf,
    penctl: Option<PathBuf>,
    duration: Duration,
    dir: Option<PathBuf>,
    warmup: Option<Duration>,
    sample_every: Duration,
    toggle_every: Duration,
    hup_every: Duration,
    control_every: Duration,
    workers: u32,
    conn_max: u32,
    rss_tol_mib: u64,
    fd_tol: u64,
    inject: u64,
    mix: Mix,
}

const USAGE: &str = "usage: soak --pen PATH [--penctl PATH] [--duration 10m] [--dir DIR] \
[--mix short=4,keepalive=3,long=8,bulk=2,half=2,idle=2,udp=2] [--warmup D] [--sample-every D] \
[--toggle-every D] [--hup-every D] [--control-every D] [--workers N] [--conn-max N] \
[--rss-tolerance-mib N] [--fd-tolerance N] [--inject-corruption N]   (or: soak PEN DURATION)";

/// `90`, `90s`, `10m`, `1.5h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1.0),
        Some(b'm') => (&s[..s.len() - 1], 60.0),
        Some(b'h') => (&s[..s.len() - 1], 3600.0),
        _ => (s, 1.0),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration '{s}'"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("bad duration '{s}'"));
    }
    Ok(Duration::from_secs_f64(n * mult))
}

fn value(opt: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{opt}: missing value"))
}

fn number<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = value(opt, v)?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        pen: PathBuf::new(),
        penctl: None,
        duration: Duration::from_secs(600),
        dir: None,
        warmup: None,
        sample_every: Duration::from_secs(10),
        toggle_every: Duration::from_secs(20),
        hup_every: Duration::from_secs(15),
        control_every: Duration::from_secs(3),
        workers: 2,
        conn_max: 2000,
        rss_tol_mib: 8,
        fd_tol: 4,
        inject: 0,
        mix: Mix::default(),
    };
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let dur = |v: Option<String>| parse_duration(&value(&arg, v)?);
        match arg.as_str() {
            "--pen" => a.pen = value(&arg, it.next())?.into(),
            "--penctl" => a.penctl = Some(value(&arg, it.next())?.into()),
            "--duration" => a.duration = dur(it.next())?,
            "--dir" => a.dir = Some(value(&arg, it.next())?.into()),
            "--warmup" => a.warmup = Some(dur(it.next())?),
            "--sample-every" => a.sample_every = dur(it.next())?,
            "--toggle-every" => a.toggle_every = dur(it.next())?,
            "--hup-every" => a.hup_every = dur(it.next())?,
            "--control-every" => a.control_every = dur(it.next())?,
            "--workers" => a.workers = number(&arg, it.next())?,
            "--conn-max" => a.conn_max = number(&arg, it.next())?,
            "--rss-tolerance-mib" => a.rss_tol_mib = number(&arg, it.next())?,
            "--fd-tolerance" => a.fd_tol = number(&arg, it.next())?,
            "--inject-corruption" => a.inject = number(&arg, it.next())?,
            "--mix" => a.mix = Mix::parse(&value(&arg, it.next())?)?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if !arg.starts_with('-') => positional.push(arg),
            _ => return Err(format!("unexpected argument '{arg}'\n{USAGE}")),
        }
    }
    let mut pos = positional.into_iter();
    if let Some(p) = pos.next() {
        a.pen = p.into();
    }
    if let Some(d) = pos.next() {
        a.duration = parse_duration(&d)?;
    }
    if let Some(extra) = pos.next() {
        return Err(format!("unexpected argument '{extra}'\n{USAGE}"));
    }
    if a.pen.as_os_str().is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(a)
}

// ------------------------------------------------------------------------------------------
// Random streams and checksums

/// splitmix64.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for n = 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num/den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A size in `0..=max`, roughly log-uniform: many small ones, some large.
    fn size(&mut self, max: u64) -> u64 {
        let bits = u64::from(64 - max.leading_zeros());
        let b = self.below(bits + 1);
        self.below(1u64 << b).min(max)
    }

    /// A loopback source address 127.0.0.1-254.
    fn source(&mut self) -> Ipv4Addr {
        let last = u8::try_from(self.range(1, 254)).unwrap_or(1);
        Ipv4Addr::new(127, 0, 0, last)
    }
}

/// The byte stream of a seed: the little-endian bytes of successive `Rng` words, the same
/// whatever the sizes of the pieces it is read in.
struct Stream {
    rng: Rng,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    fn new(seed: u64) -> Stream {
        Stream {
            rng: Rng(seed),
            word: [0; 8],
            used: 8,
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over 8-byte words of the stream (the tail byte by byte), with a fold after
/// each multiplication so that every input bit reaches every output bit; the length is mixed
/// in at the end. Independent of how the stream is split into pieces.
struct Fnv {
    h: u64,
    pend: [u8; 8],
    n: usize,
    len: u64,
}

impl Fnv {
    fn new() -> Fnv {
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

    fn update(&mut self, mut data: &[u8]) {
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

    fn finish(&self) -> u64 {
        let mut h = self.h;
        for &b in &self.pend[..self.n] {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        (h ^ self.len).wrapping_mul(FNV_PRIME)
    }
}

/// The checksum of the first `len` bytes of `seed`'s stream (`buf` is scratch).
fn stream_sum(seed: u64, len: u64, buf: &mut [u8]) -> u64 {
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

// ------------------------------------------------------------------------------------------
// Wire format

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// Read `up` bytes, reply, send `down` bytes of the download stream.
    Gen = 1,
    /// Reply, then echo `up` bytes as they arrive.
    Echo = 2,
    /// Read until EOF, reply, send `down` bytes, close.
    Half = 3,
}

/// A request header: the operation, the seed, the upload and download lengths.
#[derive(Clone, Copy, Debug)]
struct Req {
    op: Op,
    seed: u64,
    up: u64,
    down: u64,
}

fn enc_req(r: &Req) -> [u8; HDR] {
    let mut b = [0u8; HDR];
    put_u32(&mut b, 0, REQ_MAGIC);
    b[4] = r.op as u8;
    put_u64(&mut b, 8, r.seed);
    put_u64(&mut b, 16, r.up);
    put_u64(&mut b, 24, r.down);
    b
}

fn dec_req(b: &[u8; HDR]) -> Option<Req> {
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
struct Rep {
    server: u32,
    up_sum: u64,
    up_len: u64,
    down: u64,
}

fn enc_rep(r: &Rep) -> [u8; HDR] {
    let mut b = [0u8; HDR];
    put_u32(&mut b, 0, REP_MAGIC);
    put_u32(&mut b, 4, r.server);
    put_u64(&mut b, 8, r.up_sum);
    put_u64(&mut b, 16, r.up_len);
    put_u64(&mut b, 24, r.down);
    b
}

fn dec_rep(b: &[u8; HDR]) -> Option<Rep> {
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
fn read_header(s: &mut TcpStream, h: &mut [u8; HDR]) -> io::Result<bool> {
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
fn send_stream(
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
fn recv_sum(s: &mut TcpStream, len: u64, buf: &mut [u8]) -> io::Result<u64> {
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

// ------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Short,
    KeepAlive,
    Long,
    Bulk,
    Half,
    Idle,
}

const KINDS: [Kind; 6] = [
    Kind::Short,
    Kind::KeepAlive,
    Kind::Long,
    Kind::Bulk,
    Kind::Half,
    Kind::Idle,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Short => "short",
            Kind::KeepAlive => "keepalive",
            Kind::Long => "long",
            Kind::Bulk => "bulk",
            Kind::Half => "half-close",
            Kind::Idle => "idle",
        }
    }
}

/// What went wrong on a connection (other than corruption).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ErrKind {
    Connect = 0,
    Eof,
    Reset,
    Timeout,
    Other,
    IdleNotClosed,
    ClosedEarly,
}

const ERR_NAMES: [&str; 7] = [
    "connect to pen failed",
    "EOF before the reply was complete",
    "reset / broken pipe",
    "timeout (30 s without progress)",
    "other I/O error",
    "idle connection not closed by idle_timeout within 70 s",
    "idle connection closed before idle_timeout",
];

#[derive(Default)]
struct KindStats {
    conns: AtomicU64,
    requests: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    broken: AtomicU64,
    errs: [AtomicU64; 7],
    corrupt: AtomicU64,
}

#[derive(Default)]
struct UdpStats {
    sockets: AtomicU64,
    queries: AtomicU64,
    answered: AtomicU64,
    bytes: AtomicU64,
    lost_stop: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    corrupt: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

struct Stats {
    kinds: [KindStats; 6],
    udp: UdpStats,
    idle_closed: AtomicU64,
    idle_min_ms: AtomicU64,
    idle_max_ms: AtomicU64,
    server_bad_header: AtomicU64,
    notes: Mutex<Vec<String>>,
    notes_dropped: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            kinds: Default::default(),
            udp: UdpStats::default(),
            idle_closed: AtomicU64::new(0),
            idle_min_ms: AtomicU64::new(u64::MAX),
            idle_max_ms: AtomicU64::new(0),
            server_bad_header: AtomicU64::new(0),
            notes: Mutex::new(Vec::new()),
            notes_dropped: AtomicU64::new(0),
        }
    }

    fn sum(&self, f: impl Fn(&KindStats) -> u64) -> u64 {
        self.kinds.iter().map(f).sum()
    }

    fn requests(&self) -> u64 {
        self.sum(|k| k.requests.load(Relaxed))
    }

    fn unexplained(&self) -> u64 {
        self.sum(|k| k.errs.iter().map(|e| e.load(Relaxed)).sum())
    }

    fn corruption(&self) -> u64 {
        self.sum(|k| k.corrupt.load(Relaxed))
            + self.udp.corrupt.load(Relaxed)
            + self.server_bad_header.load(Relaxed)
    }
}

// ------------------------------------------------------------------------------------------
// Shared context of the client and backend threads

struct Ctx {
    t0: Instant,
    running: AtomicBool,
    pen_tcp: SocketAddrV4,
    pen_udp: SocketAddrV4,
    stats: Stats,
    /// Per TCP backend: incremented when a stop begins (before anything is closed) and again
    /// when it has ended (listener closed, connections shut down): odd while stopping.
    gens: [AtomicU64; TCP_BACKENDS],
    /// UDP backends currently stopped.
    udp_down: AtomicUsize,
    /// Milliseconds since t0 of the last UDP backend stop or start (`u64::MAX`: none yet).
    udp_event_ms: AtomicU64,
}

enum Fail {
    Io(ErrKind, String),
    Corrupt(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        let k = match e.kind() {
            io::ErrorKind::UnexpectedEof => ErrKind::Eof,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrKind::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrKind::Timeout,
            _ => ErrKind::Other,
        };
        Fail::Io(k, e.to_string())
    }
}

/// A completed, verified exchange.
struct Done {
    server: u32,
    up: u64,
    down: u64,
}

impl Ctx {
    fn running(&self) -> bool {
        self.running.load(Relaxed)
    }

    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn note(&self, s: String) {
        let mut notes = self.stats.notes.lock();
        if notes.len() < MAX_NOTES {
            notes.push(format!("[{:8.1} s] {s}", self.t0.elapsed().as_secs_f64()));
        } else {
            self.stats.notes_dropped.fetch_add(1, Relaxed);
        }
    }

    fn snap(&self) -> [u64; TCP_BACKENDS] {
        std::array::from_fn(|i| self.gens[i].load(SeqCst))
    }

    /// Whether the backend `server` (any backend when unknown) has been stopping or stopped
    /// since `snap` was taken. A connection that pen makes to a backend while the backend is
    /// being stopped (its listener not yet closed) breaks too, so a client that took its
    /// snapshot during the stop must see it: hence the check for a stop in progress.
    fn stopped_since(&self, snap: &[u64; TCP_BACKENDS], server: Option<u32>) -> bool {
        let hit = |i: usize| {
            let g = self.gens[i].load(SeqCst);
            g != snap[i] || g % 2 == 1
        };
        match server.map(|s| s as usize) {
            Some(i) if i < TCP_BACKENDS => hit(i),
            _ => (0..TCP_BACKENDS).any(hit),
        }
    }

    /// Sleeps up to `d` in small steps; false if the run ended meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while self.running() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(100)));
        }
        false
    }

    fn connect(&self, kind: Kind, rng: &mut Rng) -> Option<TcpStream> {
        let ks = &self.stats.kinds[kind as usize];
        match connect_from(self.pen_tcp, rng.source()) {
            Ok(s) => {
                ks.conns.fetch_add(1, Relaxed);
                Some(s)
            }
            Err(e) => {
                ks.errs[ErrKind::Connect as usize].fetch_add(1, Relaxed);
                self.note(format!("{}: connect to pen: {e}", kind.name()));
                self.sleep(Duration::from_millis(100));
                None
            }
        }
    }

    /// Counts an exchange's outcome; returns whether it succeeded (and learns the server).
    fn record(
        &self,
        kind: Kind,
        res: Result<Done, Fail>,
        snap: &[u64; TCP_BACKENDS],
        server: &mut Option<u32>,
        what: &dyn Fn() -> String,
    ) -> bool {
        let ks = &self.stats.kinds[kind as usize];
        match res {
            Ok(d) => {
                ks.requests.fetch_add(1, Relaxed);
                ks.up.fetch_add(d.up, Relaxed);
                ks.down.fetch_add(d.down, Relaxed);
                *server = Some(d.server);
                true
            }
            Err(f) => {
                self.fail(kind, f, snap, *server, what);
                false
            }
        }
    }

    fn fail(
        &self,
        kind: Kind,
        f: Fail,
        snap: &[u64; TCP_BACKENDS],
        server: Option<u32>,
        what: &dyn Fn() -> String,
    ) {
        let ks = &self.stats.kinds[kind as usize];
        match f {
            Fail::Corrupt(d) => {
                ks.corrupt.fetch_add(1, Relaxed);
                self.note(format!("CORRUPTION {} {}: {d}", kind.name(), what()));
            }
            Fail::Io(e, msg) => {
                if self.stopped_since(snap, server) {
                    ks.broken.fetch_add(1, Relaxed);
                } else {
                    ks.errs[e as usize].fetch_add(1, Relaxed);
                    let on = server.map_or("server unknown".to_string(), |s| format!("server {s}"));
                    self.note(format!(
                        "{} error ({}), {on}, {}: {msg}",
                        kind.name(),
                        ERR_NAMES[e as usize],
                        what()
                    ));
                }
            }
        }
    }
}

/// A TCP connection to `to` from `src` (port chosen by the kernel), with no Nagle and the
/// client timeouts.
fn connect_from(to: SocketAddrV4, src: Ipv4Addr) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())?;
    sock.connect_timeout(&SocketAddr::V4(to).into(), Duration::from_secs(10))?;
    let s = TcpStream::from(sock);
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

// ------------------------------------------------------------------------------------------
// Client exchanges

/// One request-reply, sequential (the upload is written before the reply is read): `gen`,
/// `half` and small `echo` requests.
fn exchange(s: &mut TcpStream, req: Req, buf: &mut [u8]) -> Result<Done, Fail> {
    let sent = send_stream(s, &enc_req(&req), req.seed, req.up, buf, false)?;
    if req.op == Op::Half {
        s.shutdown(Shutdown::Write)?;
    }
    let rep = read_reply(s)?;
    let (want_down, expect) = match req.op {
        Op::Echo => (req.up, sent),
        Op::Gen | Op::Half => {
            if rep.up_sum != sent || rep.up_len != req.up {
                return Err(Fail::Corrupt(format!(
                    "upload as received by server {}: {} bytes, checksum {:016x}; sent {} bytes, {:016x}",
                    rep.server, rep.up_len, rep.up_sum, req.up, sent
                )));
            }
            (req.down, 0)
        }
    };
    if rep.down != want_down || rep.server as usize >= TCP_BACKENDS {
        return Err(Fail::Corrupt(format!("bad reply header {rep:?}")));
    }
    let got = recv_sum(s, rep.down, buf)?;
    let expect = if req.op == Op::Echo {
        expect
    } else {
        stream_sum(req.seed ^ DOWN_SALT, req.down, buf)
    };
    if got != expect {
        return Err(Fail::Corrupt(format!(
            "download of {} bytes from server {}: checksum {got:016x}, expected {expect:016x}",
            rep.down, rep.server
        )));
    }
    if req.op == Op::Half {
        match s.read(&mut buf[..1]) {
            Ok(0) => {}
            Ok(_) => return Err(Fail::Corrupt("bytes after the reply before EOF".into())),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Done {
        server: rep.server,
        up: req.up,
        down: rep.down,
    })
}

fn read_reply(s: &mut TcpStream) -> Result<Rep, Fail> {
    let mut h = [0u8; HDR];
    if !read_header(s, &mut h)? {
        return Err(Fail::Io(ErrKind::Eof, "EOF before the reply header".into()));
    }
    dec_rep(&h).ok_or_else(|| Fail::Corrupt(format!("bad reply magic {:08x}", get_u32(&h, 0))))
}

/// A full-duplex `echo`: a second thread writes while this one reads.
fn duplex_echo(s: &mut TcpStream, req: Req, buf: &mut [u8]) -> Result<Done, Fail> {
    let mut w = s.try_clone()?;
    let writer = thread::Builder::new()
        .name("soak-duplex".into())
        .spawn(move || {
            let mut wbuf = vec![0u8; CHUNK];
            send_stream(&mut w, &enc_req(&req), req.seed, req.up, &mut wbuf, false)
        })?;
    let got = read_reply(s).and_then(|rep| {
        if rep.down != req.up || rep.server as usize >= TCP_BACKENDS {
            return Err(Fail::Corrupt(format!("bad echo reply header {rep:?}")));
        }
        Ok((rep.server, recv_sum(s, req.up, buf)?))
    });
    if got.is_err() {
        // Unblock the writer if it is stuck on a full buffer.
        let _ = s.shutdown(Shutdown::Both);
    }
    let sent = writer
        .join()
        .map_err(|_| Fail::Io(ErrKind::Other, "writer thread panicked".into()))?;
    let (server, got) = got?;
    let sent = sent?;
    if got != sent {
        return Err(Fail::Corrupt(format!(
            "duplex echo of {} bytes from server {server}: checksum {got:016x}, sent {sent:016x}",
            req.up
        )));
    }
    Ok(Done {
        server,
        up: req.up,
        down: req.up,
    })
}

fn describe(req: &Req) -> String {
    format!(
        "{:?} up {} down {} seed {:016x}",
        req.op, req.up, req.down, req.seed
    )
}

fn small_req(rng: &mut Rng, max: u64) -> Req {
    let op = if rng.chance(1, 2) { Op::Gen } else { Op::Echo };
    let up = rng.size(max);
    let down = if op == Op::Echo { up } else { rng.size(max) };
    Req {
        op,
        seed: rng.next(),
        up,
        down,
    }
}

// ------------------------------------------------------------------------------------------
// Client workers

fn short_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Short, &mut rng) else {
            continue;
        };
        let req = small_req(&mut rng, 16 << 10);
        let res = exchange(&mut s, req, &mut buf);
        ctx.record(Kind::Short, res, &snap, &mut None, &|| describe(&req));
    }
}

fn keepalive_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::KeepAlive, &mut rng) else {
            continue;
        };
        let mut server = None;
        for i in 0..rng.range(50, 500) {
            if !ctx.running() {
                break;
            }
            let req = small_req(&mut rng, 4 << 10);
            let res = exchange(&mut s, req, &mut buf);
            let what = || format!("request {i}: {}", describe(&req));
            if !ctx.record(Kind::KeepAlive, res, &snap, &mut server, &what) {
                break;
            }
        }
    }
}

fn long_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    // Spread the connections' start times.
    ctx.sleep(Duration::from_millis(rng.range(0, 5000)));
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Long, &mut rng) else {
            continue;
        };
        let life = Duration::from_secs(rng.range(30, 120));
        let born = Instant::now();
        let mut server = None;
        let mut i = 0;
        while born.elapsed() < life && ctx.sleep(Duration::from_millis(rng.range(200, 5000))) {
            let req = small_req(&mut rng, 64 << 10);
            let res = exchange(&mut s, req, &mut buf);
            let age = born.elapsed().as_secs();
            let what = || format!("request {i} at age {age} s: {}", describe(&req));
            if !ctx.record(Kind::Long, res, &snap, &mut server, &what) {
                break;
            }
            i += 1;
        }
    }
}

fn bulk_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Bulk, &mut rng) else {
            continue;
        };
        let mut server = None;
        for _ in 0..rng.range(1, 3) {
            if !ctx.running() {
                break;
            }
            let mib = |rng: &mut Rng| rng.range(1 << 20, 8 << 20);
            let seed = rng.next();
            let (req, res) = match rng.below(4) {
                0 => {
                    let up = mib(&mut rng);
                    let req = Req {
                        op: Op::Echo,
                        seed,
                        up,
                        down: up,
                    };
                    (req, duplex_echo(&mut s, req, &mut buf))
                }
                n => {
                    // Both ways, download only, upload only.
                    let up = if n == 2 { 0 } else { mib(&mut rng) };
                    let down = if n == 3 { 0 } else { mib(&mut rng) };
                    let req = Req {
                        op: Op::Gen,
                        seed,
                        up,
                        down,
                    };
                    (req, exchange(&mut s, req, &mut buf))
                }
            };
            if !ctx.record(Kind::Bulk, res, &snap, &mut server, &|| describe(&req)) {
                break;
            }
        }
    }
}

fn half_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Half, &mut rng) else {
            continue;
        };
        let req = Req {
            op: Op::Half,
            seed: rng.next(),
            up: rng.size(256 << 10),
            down: rng.size(256 << 10),
        };
        let res = exchange(&mut s, req, &mut buf);
        ctx.record(Kind::Half, res, &snap, &mut None, &|| describe(&req));
    }
}

fn idle_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    ctx.sleep(Duration::from_millis(rng.range(0, 10_000)));
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Idle, &mut rng) else {
            continue;
        };
        let req = small_req(&mut rng, 1 << 10);
        let mut server = None;
        let res = exchange(&mut s, req, &mut buf);
        if !ctx.record(Kind::Idle, res, &snap, &mut server, &|| describe(&req)) {
            continue;
        }
        // Now wait for pen to close it.
        let t0 = Instant::now();
        if s.set_read_timeout(Some(Duration::from_secs(1))).is_err() {
            continue;
        }
        while ctx.running() {
            let waited = t0.elapsed();
            let what = || format!("idle for {:.1} s", waited.as_secs_f64());
            match s.read(&mut buf[..1]) {
                Ok(0) => {
                    if ctx.stopped_since(&snap, server) {
                        ctx.stats.kinds[Kind::Idle as usize]
                            .broken
                            .fetch_add(1, Relaxed);
                    } else if waited.as_millis() as u64 + 1500 < IDLE_CHOICES[0] * 1000 {
                        let f = Fail::Io(ErrKind::ClosedEarly, "EOF".into());
                        ctx.fail(Kind::Idle, f, &snap, server, &what);
                    } else {
                        let ms = waited.as_millis() as u64;
                        ctx.stats.idle_closed.fetch_add(1, Relaxed);
                        ctx.stats.idle_min_ms.fetch_min(ms, Relaxed);
                        ctx.stats.idle_max_ms.fetch_max(ms, Relaxed);
                    }
                    break;
                }
                Ok(_) => {
                    let f = Fail::Corrupt("data on an idle connection".into());
                    ctx.fail(Kind::Idle, f, &snap, server, &what);
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if waited > IDLE_WAIT_MAX {
                        let f = Fail::Io(ErrKind::IdleNotClosed, "still open".into());
                        ctx.fail(Kind::Idle, f, &snap, server, &what);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ctx.fail(Kind::Idle, e.into(), &snap, server, &what);
                    break;
                }
            }
        }
    }
}

fn udp_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let u = &ctx.stats.udp;
    let mut q = vec![0u8; UDP_HDR + 1200];
    let mut r = vec![0u8; 2048];
    while ctx.running() {
        let sock = match udp_client(ctx.pen_udp, rng.source()) {
            Ok(s) => s,
            Err(e) => {
                u.other.fetch_add(1, Relaxed);
                ctx.note(format!("udp: socket: {e}"));
                ctx.sleep(Duration::from_millis(100));
                continue;
            }
        };
        u.sockets.fetch_add(1, Relaxed);
        let base = rng.next() >> 2;
        for id in base..base + rng.range(20, 2000) {
            if !ctx.running() {
                break;
            }
            let seed = rng.next();
            let len = UDP_HDR + rng.size(1200) as usize;
            q[..UDP_HDR].fill(0);
            put_u32(&mut q, 0, UDP_MAGIC);
            put_u64(&mut q, 8, id);
            put_u64(&mut q, 16, seed);
            Stream::new(seed).fill(&mut q[UDP_HDR..len]);
            let sent_ms = ctx.ms();
            let down_at_send = ctx.udp_down.load(Relaxed) > 0;
            let blame = |ctx: &Ctx| {
                down_at_send
                    || ctx.udp_down.load(Relaxed) > 0
                    || ctx
                        .udp_event_ms
                        .load(Relaxed)
                        .checked_add(UDP_BLAME_MS)
                        .is_some_and(|until| until >= sent_ms)
            };
            if let Err(e) = sock.send(&q[..len]) {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    u.refused.fetch_add(1, Relaxed);
                } else {
                    u.other.fetch_add(1, Relaxed);
                }
                ctx.note(format!("udp: send: {e}"));
                continue;
            }
            u.queries.fetch_add(1, Relaxed);
            loop {
                match sock.recv(&mut r) {
                    Ok(m) => {
                        let ours = m >= UDP_HDR && get_u32(&r, 0) == UDP_MAGIC;
                        let rid = if ours { get_u64(&r, 8) } else { u64::MAX };
                        if rid == id {
                            let ok = m == len
                                && r[4] == 0x80
                                && usize::from(r[5]) < UDP_BACKENDS
                                && r[6..8] == q[6..8]
                                && r[8..len] == q[8..len];
                            if ok {
                                u.answered.fetch_add(1, Relaxed);
                                u.bytes.fetch_add(len as u64, Relaxed);
                            } else {
                                u.corrupt.fetch_add(1, Relaxed);
                                ctx.note(format!(
                                    "CORRUPTION udp: reply to query {id} ({len} bytes): {m} bytes, flags {:02x} backend {}",
                                    r[4], r[5]
                                ));
                            }
                            break;
                        } else if ours && rid >= base && rid < id {
                            u.late.fetch_add(1, Relaxed);
                        } else {
                            u.corrupt.fetch_add(1, Relaxed);
                            ctx.note(format!(
                                "CORRUPTION udp: unexpected datagram of {m} bytes waiting for query {id}"
                            ));
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if blame(ctx) {
                            u.lost_stop.fetch_add(1, Relaxed);
                        } else {
                            u.lost.fetch_add(1, Relaxed);
                            ctx.note(format!(
                                "udp: query {id} ({len} bytes) lost (no answer in 1 s)"
                            ));
                        }
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if e.kind() == io::ErrorKind::ConnectionRefused {
                            u.refused.fetch_add(1, Relaxed);
                        } else {
                            u.other.fetch_add(1, Relaxed);
                        }
                        ctx.note(format!("udp: query {id}: {e}"));
                        break;
                    }
                }
            }
        }
    }
}

fn udp_client(to: SocketAddrV4, src: Ipv4Addr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(src, 0))?;
    s.connect(to)?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    Ok(s)
}

// ------------------------------------------------------------------------------------------
// Backends

/// The accept thread and stop flag of a running backend.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct TcpBackend {
    idx: u32,
    port: AtomicU16,
    state: Mutex<Option<Running>>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
}

impl TcpBackend {
    fn new(idx: u32) -> TcpBackend {
        TcpBackend {
            idx,
            port: AtomicU16::new(0),
            state: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    fn port(&self) -> u16 {
        self.port.load(Relaxed)
    }

    fn is_running(&self) -> bool {
        self.state.lock().is_some()
    }

    /// Binds `port` (0: a new ephemeral one) and starts accepting.
    fn start(self: &Arc<Self>, ctx: &Arc<Ctx>, port: u16) -> io::Result<()> {
        let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        self.port.store(l.local_addr()?.port(), Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (me, ctx, flag) = (Arc::clone(self), Arc::clone(ctx), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name(format!("soak-tcp{}", self.idx))
            .spawn(move || me.accept_loop(&l, &flag, &ctx))?;
        *self.state.lock() = Some(Running { stop, thread });
        Ok(())
    }

    fn accept_loop(self: &Arc<Self>, l: &TcpListener, stop: &AtomicBool, ctx: &Arc<Ctx>) {
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let id = self.next.fetch_add(1, Relaxed);
                    if let Ok(c) = s.try_clone() {
                        self.conns.lock().insert(id, c);
                    }
                    let (me, ctx) = (Arc::clone(self), Arc::clone(ctx));
                    let spawned = thread::Builder::new()
                        .name(format!("soak-tcp{}-conn", self.idx))
                        .spawn(move || {
                            // An error is expected after a stop; otherwise the client
                            // notices it.
                            let _ = serve_conn(s, me.idx, &ctx);
                            me.conns.lock().remove(&id);
                        });
                    if spawned.is_err() {
                        self.conns.lock().remove(&id);
                    }
                }
                Err(_) => {
                    if stop.load(Relaxed) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Closes the listener and shuts down every connection (`abortive`: with an RST at close).
    fn stop(&self, ctx: &Ctx, abortive: bool) -> bool {
        let Some(run) = self.state.lock().take() else {
            return false;
        };
        let gen = &ctx.gens[self.idx as usize];
        gen.fetch_add(1, SeqCst);
        run.stop.store(true, Relaxed);
        // Wake the accept thread.
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port()));
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        let _ = run.thread.join();
        let conns: Vec<TcpStream> = self.conns.lock().drain().map(|(_, s)| s).collect();
        for s in conns {
            if abortive {
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            let _ = s.shutdown(Shutdown::Both);
        }
        gen.fetch_add(1, SeqCst);
        true
    }
}

/// Serves one backend connection until the client closes it (or `half` ends it).
fn serve_conn(mut s: TcpStream, idx: u32, ctx: &Ctx) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut h = [0u8; HDR];
        if !read_header(&mut s, &mut h)? {
            return Ok(());
        }
        let Some(req) = dec_req(&h) else {
            ctx.stats.server_bad_header.fetch_add(1, Relaxed);
            ctx.note(format!(
                "CORRUPTION backend {idx}: bad request header {:02x?}",
                &h[..]
            ));
            return Ok(());
        };
        match req.op {
            Op::Gen => {
                let sum = recv_sum(&mut s, req.up, &mut buf)?;
                let rep = Rep {
                    server: idx,
                    up_sum: sum,
                    up_len: req.up,
                    down: req.down,
                };
                send_stream(
                    &mut s,
                    &enc_rep(&rep),
                    req.seed ^ DOWN_SALT,
                    req.down,
                    &mut buf,
                    inject(req.down > 0),
                )?;
            }
            Op::Echo => {
                let rep = Rep {
                    server: idx,
                    up_sum: 0,
                    up_len: 0,
                    down: req.up,
                };
                s.write_all(&enc_rep(&rep))?;
                let mut left = req.up;
                let mut flip = inject(req.up > 0);
                while left > 0 {
                    let want = left.min(CHUNK as u64) as usize;
                    let n = s.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if flip {
                        buf[n - 1] ^= 0x10;
                        flip = false;
                    }
                    s.write_all(&buf[..n])?;
                    left -= n as u64;
                }
            }
            Op::Half => {
                let mut sum = Fnv::new();
                loop {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sum.update(&buf[..n]);
                }
                let rep = Rep {
                    server: idx,
                    up_sum: sum.finish(),
                    up_len: sum.len,
                    down: req.down,
                };
                send_stream(
                    &mut s,
                    &enc_rep(&rep),
                    req.seed ^ DOWN_SALT,
                    req.down,
                    &mut buf,
                    inject(req.down > 0),
                )?;
                s.shutdown(Shutdown::Write)?;
                return Ok(());
            }
        }
    }
}

/// `--inject-corruption N`: backends corrupt one reply in N (0 = never).
static INJECT: AtomicU64 = AtomicU64::new(0);
static INJECTED: AtomicU64 = AtomicU64::new(0);

/// Whether to corrupt this reply (`eligible`: it has a payload to corrupt).
fn inject(eligible: bool) -> bool {
    let n = INJECT.load(Relaxed);
    n > 0 && eligible && INJECTED.fetch_add(1, Relaxed) % n == n - 1
}

struct UdpBackend {
    idx: u8,
    port: AtomicU16,
    state: Mutex<Option<Running>>,
}

impl UdpBackend {
    fn new(idx: u8) -> UdpBackend {
        UdpBackend {
            idx,
            port: AtomicU16::new(0),
            state: Mutex::new(None),
        }
    }

    fn port(&self) -> u16 {
        self.port.load(Relaxed)
    }

    fn is_running(&self) -> bool {
        self.state.lock().is_some()
    }

    fn start(&self, port: u16) -> io::Result<()> {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        self.port.store(sock.local_addr()?.port(), Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let idx = self.idx;
        let thread = thread::Builder::new()
            .name(format!("soak-udp{idx}"))
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !flag.load(Relaxed) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if n >= UDP_HDR && get_u32(&buf, 0) == UDP_MAGIC {
                        buf[4] |= 0x80;
                        buf[5] = idx;
                        if inject(true) {
                            buf[n - 1] ^= 0x10;
                        }
                    }
                    let _ = sock.send_to(&buf[..n], peer);
                }
            })?;
        *self.state.lock() = Some(Running { stop, thread });
        Ok(())
    }

    fn stop(&self) -> bool {
        let Some(run) = self.state.lock().take() else {
            return false;
        };
        run.stop.store(true, Relaxed);
        let _ = run.thread.join();
        true
    }
}

// ------------------------------------------------------------------------------------------
// pen processes, control and /proc

/// One pen child process.
struct Pen {
    name: &'static str,
    child: Child,
    pid: u32,
    ctl: SocketAddrV4,
    cfg: PathBuf,
    cmdline: String,
    log: PathBuf,
    exited: Option<String>,
}

impl Pen {
    fn spawn(
        name: &'static str,
        exe: &Path,
        dir: &Path,
        opts: &[String],
        listen: SocketAddrV4,
        servers: &[u16],
        cfg_text: &str,
    ) -> Result<Pen, String> {
        let ctl = free_tcp_port().map_err(|e| format!("free port: {e}"))?;
        let ctl = SocketAddrV4::new(Ipv4Addr::LOCALHOST, ctl);
        let cfg = dir.join(format!("{name}.cfg"));
        let log = dir.join(format!("{name}.log"));
        let pidfile = dir.join(format!("{name}.pid"));
        fs::write(&cfg, cfg_text).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let mut args: Vec<String> = opts.to_vec();
        args.extend([
            "-C".into(),
            ctl.to_string(),
            "-F".into(),
            cfg.display().to_string(),
            "-p".into(),
            pidfile.display().to_string(),
            listen.to_string(),
        ]);
        args.extend(servers.iter().map(|p| format!("127.0.0.1:{p}")));
        let logf = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let errf = logf.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(errf)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let pid = child.id();
        let mut pen = Pen {
            name,
            child,
            pid,
            ctl,
            cfg,
            cmdline: format!("pen {}", args.join(" ")),
            log,
            exited: None,
        };
        // Ready when the control socket answers.
        let t = Instant::now();
        loop {
            if !pen.alive() {
                return Err(format!(
                    "{name} pen exited at start ({}): {}",
                    pen.exited.clone().unwrap_or_default(),
                    fs::read_to_string(&pen.log).unwrap_or_default().trim()
                ));
            }
            if control(ctl, "pid").is_ok_and(|r| r.trim() == pid.to_string()) {
                return Ok(pen);
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("{name} pen did not answer on {ctl} within 10 s"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                self.exited = Some(st.to_string());
                false
            }
            Err(e) => {
                self.exited = Some(e.to_string());
                false
            }
        }
    }

    fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGTERM, then SIGKILL after 10 s; returns the exit status as text.
    fn stop(&mut self) -> String {
        if !self.alive() {
            return format!("had exited: {}", self.exited.clone().unwrap_or_default());
        }
        self.signal("-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if !self.alive() {
                return self.exited.clone().unwrap_or_default();
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = Some("killed (did not exit within 10 s of SIGTERM)".into());
        self.exited.clone().unwrap_or_default()
    }

    fn sample(&self) -> Option<ProcSample> {
        proc_sample(self.pid)
    }
}

impl Drop for Pen {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_tcp_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends one control command on pen's control socket and returns the reply.
fn control(addr: SocketAddrV4, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The same through the penctl binary; an error if it exits with a nonzero status.
fn penctl(exe: &Path, addr: SocketAddrV4, cmd: &str) -> io::Result<String> {
    let out = Command::new(exe)
        .arg(addr.to_string())
        .args(cmd.split_whitespace())
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(io::Error::other(format!(
            "penctl {}: {} {}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A metric without labels, or the sum over its labelled series.
fn metric(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if let Some(v) = rest.strip_prefix(' ') {
            v
        } else if rest.starts_with('{') {
            rest.rsplit(' ').next().unwrap_or("")
        } else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            *found.get_or_insert(0) += v as u64;
        }
    }
    found
}

#[derive(Clone, Copy, Default, Debug)]
struct ProcSample {
    rss_kib: u64,
    fds: u64,
    ticks: u64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ProcSample {
        rss_kib,
        fds,
        ticks,
    })
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            == Some("0")
    })
}

fn load1() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

// ------------------------------------------------------------------------------------------
// The -F files

/// A reload variant: the TCP and UDP files' settings and the `mode` pen should then show.
struct Variant {
    tcp: &'static str,
    tcp_mode: &'static str,
    tcp_idle: u64,
    udp: &'static str,
    udp_mode: &'static str,
    udp_idle: u64,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        tcp: "no hash\nroundrobin\nblacklist 2\nidle_timeout 20\n",
        tcp_mode: "no hash roundrobin no stubborn no weight no prio",
        tcp_idle: 20,
        udp: "no hash\nno roundrobin\nidle_timeout 4\n",
        udp_mode: "no hash no roundrobin no stubborn no weight no prio",
        udp_idle: 4,
    },
    Variant {
        tcp: "hash\nno roundrobin\nblacklist 3\nidle_timeout 30\n",
        tcp_mode: "hash no roundrobin no stubborn no weight no prio",
        tcp_idle: 30,
        udp: "no hash\nroundrobin\nidle_timeout 8\n",
        udp_mode: "no hash roundrobin no stubborn no weight no prio",
        udp_idle: 8,
    },
    Variant {
        tcp: "no hash\nno roundrobin\ntracking 20\nblacklist 2\nidle_timeout 25\n",
        tcp_mode: "no hash no roundrobin no stubborn no weight no prio",
        tcp_idle: 25,
        udp: "hash\nno roundrobin\nidle_timeout 6\n",
        udp_mode: "hash no roundrobin no stubborn no weight no prio",
        udp_idle: 6,
    },
];

fn cfg_text(variant: &str, ports: &[u16], kind: &str, n: usize) -> String {
    let mut s = format!("# pen soak test, {kind} variant {n} (rewritten before every SIGHUP)\n");
    for (i, p) in ports.iter().enumerate() {
        let _ = writeln!(s, "server {i} address 127.0.0.1 port {p}");
    }
    s.push_str(variant);
    s
}

// ------------------------------------------------------------------------------------------
// The run

/// A client thread's body: the context and a seed.
type Worker = fn(&Ctx, u64);

/// One periodic sample.
struct Sample {
    t: f64,
    tcp: Option<ProcSample>,
    udp: Option<ProcSample>,
    active: Option<u64>,
    requests: u64,
    udp_answered: u64,
    load1: f64,
}

/// Chaos events and control traffic, counted by the main thread.
#[derive(Default)]
struct Events {
    tcp_stops: u64,
    tcp_abortive: u64,
    tcp_starts: u64,
    tcp_moves: u64,
    udp_stops: u64,
    udp_starts: u64,
    udp_moves: u64,
    reloads: u64,
    reload_failures: u64,
    control: u64,
    via_penctl: u64,
    control_failures: u64,
    by_command: HashMap<String, u64>,
    log: Vec<String>,
}

struct Runner {
    args: Args,
    ctx: Arc<Ctx>,
    tcp: Vec<Arc<TcpBackend>>,
    udp: Vec<UdpBackend>,
    pen_tcp: Pen,
    pen_udp: Pen,
    ev: Events,
    rng: Rng,
    variant: usize,
    samples: Vec<Sample>,
    start_tcp: Option<ProcSample>,
    start_udp: Option<ProcSample>,
    warm: Option<(f64, Option<ProcSample>, Option<ProcSample>)>,
    interrupted: Arc<AtomicBool>,
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn log(ctx: &Ctx, msg: &str) {
    eprintln!("[{:7.1} s] {msg}", ctx.t0.elapsed().as_secs_f64());
}

fn run(args: Args) -> Result<bool, String> {
    INJECT.store(args.inject, Relaxed);
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted)).map_err(|e| e.to_string())?;
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("pen-soak-{}", std::process::id())),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let rng = Rng(now ^ u64::from(std::process::id()));

    let port = |r: io::Result<u16>| r.map_err(|e| format!("free port: {e}"));
    let pen_tcp_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(free_tcp_port())?);
    let pen_udp_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(free_udp_port())?);
    let ctx = Arc::new(Ctx {
        t0: Instant::now(),
        running: AtomicBool::new(true),
        pen_tcp: pen_tcp_addr,
        pen_udp: pen_udp_addr,
        stats: Stats::new(),
        gens: Default::default(),
        udp_down: AtomicUsize::new(0),
        udp_event_ms: AtomicU64::new(u64::MAX),
    });

    let tcp: Vec<Arc<TcpBackend>> = (0..TCP_BACKENDS as u32)
        .map(|i| Arc::new(TcpBackend::new(i)))
        .collect();
    for b in &tcp {
        b.start(&ctx, 0).map_err(|e| format!("TCP backend: {e}"))?;
    }
    let udp: Vec<UdpBackend> = (0..UDP_BACKENDS as u8).map(UdpBackend::new).collect();
    for b in &udp {
        b.start(0).map_err(|e| format!("UDP backend: {e}"))?;
    }
    let tcp_ports: Vec<u16> = tcp.iter().map(|b| b.port()).collect();
    let udp_ports: Vec<u16> = udp.iter().map(|b| b.port()).collect();

    let common = [
        "-f".to_string(),
        "--workers".into(),
        args.workers.to_string(),
        "-b".into(),
        "2".into(),
        "-t".into(),
        "3".into(),
    ];
    let mut common = common.to_vec();
    if running_as_root() {
        // pen refuses a control socket as root unless told which user to run as.
        common.extend(["-u".into(), "root".into()]);
    }
    let mut tcp_opts = common.clone();
    tcp_opts.extend(["-r".into(), "-x".into(), args.conn_max.to_string()]);
    let mut udp_opts = common;
    udp_opts.extend(["-U".into(), "-x".into(), "10000".into()]);
    let pen_tcp = Pen::spawn(
        "tcp",
        &args.pen,
        &dir,
        &tcp_opts,
        pen_tcp_addr,
        &tcp_ports,
        &cfg_text(VARIANTS[0].tcp, &tcp_ports, "tcp", 0),
    )?;
    let pen_udp = match Pen::spawn(
        "udp",
        &args.pen,
        &dir,
        &udp_opts,
        pen_udp_addr,
        &udp_ports,
        &cfg_text(VARIANTS[0].udp, &udp_ports, "udp", 0),
    ) {
        Ok(p) => p,
        Err(e) => {
            drop(pen_tcp);
            return Err(e);
        }
    };

    let mut r = Runner {
        args,
        ctx,
        tcp,
        udp,
        pen_tcp,
        pen_udp,
        ev: Events::default(),
        rng,
        variant: 0,
        samples: Vec::new(),
        start_tcp: None,
        start_udp: None,
        warm: None,
        interrupted,
        dir,
    };
    r.run_all()
}

impl Runner {
    fn event(&mut self, msg: String) {
        let line = format!("[{:8.1} s] {msg}", self.ctx.t0.elapsed().as_secs_f64());
        self.ev.log.push(line);
    }

    fn run_all(&mut self) -> Result<bool, String> {
        let ctx = Arc::clone(&self.ctx);
        log(
            &ctx,
            &format!(
                "tcp pen pid {} on {}, udp pen pid {} on {}, backends tcp {:?} udp {:?}, files in {}",
                self.pen_tcp.pid,
                ctx.pen_tcp,
                self.pen_udp.pid,
                ctx.pen_udp,
                self.tcp.iter().map(|b| b.port()).collect::<Vec<_>>(),
                self.udp.iter().map(|b| b.port()).collect::<Vec<_>>(),
                self.dir.display()
            ),
        );
        // The baseline: before any traffic.
        thread::sleep(Duration::from_millis(500));
        self.start_tcp = self.pen_tcp.sample();
        self.start_udp = self.pen_udp.sample();
        self.take_sample();

        let mix = self.args.mix;
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        let kinds: [(usize, &str, Worker); 7] = [
            (mix.short, "short", short_worker),
            (mix.keepalive, "keepalive", keepalive_worker),
            (mix.long, "long", long_worker),
            (mix.bulk, "bulk", bulk_worker),
            (mix.half, "half", half_worker),
            (mix.idle, "idle", idle_worker),
            (mix.udp, "udp", udp_worker),
        ];
        for (n, name, f) in kinds {
            for i in 0..n {
                let (c, seed) = (Arc::clone(&ctx), self.rng.next());
                let h = thread::Builder::new()
                    .name(format!("soak-{name}{i}"))
                    .spawn(move || f(&c, seed))
                    .map_err(|e| format!("spawn: {e}"))?;
                workers.push(h);
            }
        }

        let dur = self.args.duration;
        let warmup = self
            .args
            .warmup
            .unwrap_or_else(|| (dur / 10).clamp(Duration::from_secs(15), Duration::from_secs(60)));
        let t0 = Instant::now();
        let mut next_sample = t0 + self.args.sample_every;
        let mut next_toggle = t0 + self.args.toggle_every / 2;
        let mut next_udp_toggle = t0 + self.args.toggle_every * 3 / 2;
        let mut next_hup = t0 + self.args.hup_every;
        let mut next_ctl = t0 + self.args.control_every;
        let mut restart: Option<(usize, Instant, u32)> = None;
        let mut udp_restart: Option<(usize, Instant, u32)> = None;
        let (mut toggles, mut udp_toggles, mut ctl_i) = (0usize, 0usize, 0usize);
        let mut pen_died = false;

        while t0.elapsed() < dur {
            if self.interrupted.load(Relaxed) {
                log(&ctx, "interrupted: ending the run early");
                break;
            }
            thread::sleep(Duration::from_millis(100));
            let now = Instant::now();
            if now >= next_sample {
                next_sample += self.args.sample_every;
                self.take_sample();
                if self.warm.is_none() && t0.elapsed() >= warmup {
                    let s = self.samples.last();
                    self.warm = s.map(|s| (s.t, s.tcp, s.udp));
                }
                self.progress();
                if !self.pen_tcp.alive() || !self.pen_udp.alive() {
                    log(&ctx, "a pen process exited: ending the run");
                    pen_died = true;
                    break;
                }
            }
            // TCP backend stop / start.
            if let Some((i, at, tries)) = restart {
                if now >= at {
                    restart = self
                        .restart_tcp(i, tries)
                        .map(|t| (i, now + Duration::from_millis(100), t));
                }
            } else if now >= next_toggle {
                next_toggle += self.args.toggle_every;
                let i = toggles % TCP_BACKENDS;
                let abortive = toggles % 2 == 1;
                toggles += 1;
                if self.tcp[i].stop(&ctx, abortive) {
                    self.ev.tcp_stops += 1;
                    self.ev.tcp_abortive += u64::from(abortive);
                    let down = self.rng.range(3000, 12_000);
                    self.event(format!(
                        "tcp backend {i} stopped ({}), restart in {:.1} s",
                        if abortive { "abortive" } else { "graceful" },
                        down as f64 / 1000.0
                    ));
                    restart = Some((i, now + Duration::from_millis(down), 0));
                }
            }
            // UDP backend stop / start.
            if let Some((i, at, tries)) = udp_restart {
                if now >= at {
                    udp_restart = self
                        .restart_udp(i, tries)
                        .map(|t| (i, now + Duration::from_millis(100), t));
                }
            } else if now >= next_udp_toggle {
                next_udp_toggle += self.args.toggle_every * 3;
                let i = udp_toggles % UDP_BACKENDS;
                udp_toggles += 1;
                ctx.udp_down.fetch_add(1, Relaxed);
                ctx.udp_event_ms.store(ctx.ms(), Relaxed);
                if self.udp[i].stop() {
                    self.ev.udp_stops += 1;
                    let down = self.rng.range(3000, 8000);
                    self.event(format!(
                        "udp backend {i} stopped, restart in {:.1} s",
                        down as f64 / 1000.0
                    ));
                    udp_restart = Some((i, now + Duration::from_millis(down), 0));
                } else {
                    ctx.udp_down.fetch_sub(1, Relaxed);
                }
            }
            if now >= next_hup {
                next_hup += self.args.hup_every;
                self.reload();
            }
            if now >= next_ctl {
                next_ctl += self.args.control_every;
                self.control_round(ctl_i);
                ctl_i += 1;
            }
        }

        // Wind down.
        log(&ctx, "stopping the clients");
        ctx.running.store(false, Relaxed);
        for h in workers {
            let _ = h.join();
        }
        log(&ctx, "clients stopped; starting every backend again");
        for i in 0..TCP_BACKENDS {
            if !self.tcp[i].is_running() {
                let mut tries = 0;
                while let Some(t) = self.restart_tcp(i, tries).filter(|&t| t < 100) {
                    tries = t;
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        for i in 0..UDP_BACKENDS {
            if !self.udp[i].is_running() {
                let mut tries = 0;
                while let Some(t) = self.restart_udp(i, tries).filter(|&t| t < 100) {
                    tries = t;
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let drain = self.drain();
        self.take_sample();
        let end_tcp = self.pen_tcp.sample();
        let end_udp = self.pen_udp.sample();
        let metrics_tcp = control(self.pen_tcp.ctl, "metrics").unwrap_or_default();
        let metrics_udp = control(self.pen_udp.ctl, "metrics").unwrap_or_default();
        let exit_tcp = self.pen_tcp.stop();
        let exit_udp = self.pen_udp.stop();
        for b in &self.tcp {
            b.stop(&ctx, false);
        }
        for b in &self.udp {
            b.stop();
        }
        let end = End {
            tcp: end_tcp,
            udp: end_udp,
            metrics_tcp,
            metrics_udp,
            exit_tcp,
            exit_udp,
            drain,
            pen_died,
            elapsed: t0.elapsed(),
            warmup,
        };
        let (text, pass) = self.report(&end);
        print!("{text}");
        let _ = fs::write(self.dir.join("events.log"), self.ev.log.join("\n") + "\n");
        Ok(pass && !self.interrupted.load(Relaxed))
    }

    /// Starts TCP backend `i` again; `None` when done, else the number of failed attempts.
    fn restart_tcp(&mut self, i: usize, tries: u32) -> Option<u32> {
        let b = Arc::clone(&self.tcp[i]);
        let old = b.port();
        match b.start(&self.ctx, old) {
            Ok(()) => {
                self.ev.tcp_starts += 1;
                self.event(format!("tcp backend {i} started on port {old}"));
                None
            }
            Err(e) if tries < 30 => {
                if tries == 0 {
                    self.event(format!("tcp backend {i}: port {old}: {e}; retrying"));
                }
                Some(tries + 1)
            }
            Err(_) => match b.start(&self.ctx, 0) {
                Ok(()) => {
                    let new = b.port();
                    self.ev.tcp_starts += 1;
                    self.ev.tcp_moves += 1;
                    let cmd = format!("server {i} address 127.0.0.1 port {new}");
                    let reply = control(self.pen_tcp.ctl, &cmd);
                    self.event(format!(
                        "tcp backend {i} moved from port {old} to {new}: {cmd} -> {reply:?}"
                    ));
                    self.write_cfgs();
                    None
                }
                Err(e) => {
                    self.event(format!("tcp backend {i}: cannot bind a new port: {e}"));
                    Some(tries + 1)
                }
            },
        }
    }

    fn restart_udp(&mut self, i: usize, tries: u32) -> Option<u32> {
        let old = self.udp[i].port();
        let done = match self.udp[i].start(old) {
            Ok(()) => {
                self.event(format!("udp backend {i} started on port {old}"));
                true
            }
            Err(e) if tries < 30 => {
                if tries == 0 {
                    self.event(format!("udp backend {i}: port {old}: {e}; retrying"));
                }
                false
            }
            Err(_) => match self.udp[i].start(0) {
                Ok(()) => {
                    let new = self.udp[i].port();
                    self.ev.udp_moves += 1;
                    let cmd = format!("server {i} address 127.0.0.1 port {new}");
                    let reply = control(self.pen_udp.ctl, &cmd);
                    self.event(format!(
                        "udp backend {i} moved from port {old} to {new}: {cmd} -> {reply:?}"
                    ));
                    self.write_cfgs();
                    true
                }
                Err(e) => {
                    self.event(format!("udp backend {i}: cannot bind a new port: {e}"));
                    false
                }
            },
        };
        if done {
            self.ev.udp_starts += 1;
            self.ctx.udp_event_ms.store(self.ctx.ms(), Relaxed);
            self.ctx.udp_down.fetch_sub(1, Relaxed);
            None
        } else {
            Some(tries + 1)
        }
    }

    fn write_cfgs(&self) {
        let v = &VARIANTS[self.variant];
        let tp: Vec<u16> = self.tcp.iter().map(|b| b.port()).collect();
        let up: Vec<u16> = self.udp.iter().map(|b| b.port()).collect();
        let _ = fs::write(&self.pen_tcp.cfg, cfg_text(v.tcp, &tp, "tcp", self.variant));
        let _ = fs::write(&self.pen_udp.cfg, cfg_text(v.udp, &up, "udp", self.variant));
    }

    /// The next variant of both files, SIGHUP, and a check that it took.
    fn reload(&mut self) {
        self.variant = (self.variant + 1) % VARIANTS.len();
        self.write_cfgs();
        let v = &VARIANTS[self.variant];
        for (pen, mode, idle) in [
            (&self.pen_tcp, v.tcp_mode, v.tcp_idle),
            (&self.pen_udp, v.udp_mode, v.udp_idle),
        ] {
            self.ev.reloads += 1;
            if !pen.signal("-HUP") {
                self.ev.reload_failures += 1;
                let msg = format!("{} pen: kill -HUP {} failed", pen.name, pen.pid);
                self.ctx.note(msg);
                continue;
            }
            let want_idle = format!("Idle timeout: {idle} seconds");
            let mut last = (String::new(), String::new());
            let ok = (0..30).any(|_| {
                thread::sleep(Duration::from_millis(100));
                let m = control(pen.ctl, "mode").unwrap_or_default();
                let i = control(pen.ctl, "idle_timeout").unwrap_or_default();
                let ok = m.trim() == mode && i.trim() == want_idle;
                last = (m, i);
                ok
            });
            if !ok {
                self.ev.reload_failures += 1;
                self.ctx.note(format!(
                    "{} pen: reload to variant {} not seen: mode '{}', '{}'",
                    pen.name,
                    self.variant,
                    last.0.trim(),
                    last.1.trim()
                ));
            }
        }
        let line = format!("SIGHUP: variant {}", self.variant);
        self.event(line);
    }

    /// One control command (rotating), checked.
    fn control_round(&mut self, i: usize) {
        let udp = i % 4 == 3;
        let cmds = [
            "servers",
            "mode",
            "metrics",
            "status",
            "blacklist",
            "idle_timeout",
            "idle_set",
            "recent",
            "pid",
            "servers",
            "metrics",
        ];
        let mut what = cmds[i % cmds.len()];
        let pen = if udp { &self.pen_udp } else { &self.pen_tcp };
        let ports: Vec<u16> = if udp {
            self.udp.iter().map(|b| b.port()).collect()
        } else {
            self.tcp.iter().map(|b| b.port()).collect()
        };
        let cmd = match what {
            "blacklist" => {
                // Never leave pen without a server: only while every backend of this pen
                // but at most one is up, and then one of the running ones.
                let up: Vec<usize> = if udp {
                    (0..UDP_BACKENDS)
                        .filter(|&j| self.udp[j].is_running())
                        .collect()
                } else {
                    (0..TCP_BACKENDS)
                        .filter(|&j| self.tcp[j].is_running())
                        .collect()
                };
                if up.len() < 2 || (udp && up.len() < UDP_BACKENDS) {
                    what = "servers";
                    "servers".to_string()
                } else {
                    let k = up[self.rng.below(up.len() as u64) as usize];
                    format!("server {k} blacklist 1")
                }
            }
            "idle_set" => {
                let v = if udp {
                    VARIANTS[self.variant].udp_idle
                } else {
                    IDLE_CHOICES[self.rng.below(3) as usize]
                };
                format!("idle_timeout {v}")
            }
            other => other.to_string(),
        };
        let through_penctl = i % 3 == 2 && self.args.penctl.is_some();
        let reply = match (&self.args.penctl, through_penctl) {
            (Some(exe), true) => penctl(exe, pen.ctl, &cmd),
            _ => control(pen.ctl, &cmd),
        };
        self.ev.control += 1;
        self.ev.via_penctl += u64::from(through_penctl);
        *self
            .ev
            .by_command
            .entry(cmd.split_whitespace().next().unwrap_or("").to_string())
            .or_default() += 1;
        let check = match &reply {
            Err(e) => Err(format!("no reply: {e}")),
            Ok(r) if r.starts_with("error") => Err(format!("error reply: {}", r.trim())),
            Ok(r) => check_reply(what, r, &ports, pen.pid, udp),
        };
        if let Err(e) = check {
            self.ev.control_failures += 1;
            let via = if through_penctl { "penctl" } else { "socket" };
            self.ctx
                .note(format!("{} pen: control '{cmd}' via {via}: {e}", pen.name));
        }
    }

    fn take_sample(&mut self) {
        let active = control(self.pen_tcp.ctl, "metrics")
            .ok()
            .and_then(|m| metric(&m, "pen_connections_active"));
        let s = Sample {
            t: self.ctx.t0.elapsed().as_secs_f64(),
            tcp: self.pen_tcp.sample(),
            udp: self.pen_udp.sample(),
            active,
            requests: self.ctx.stats.requests(),
            udp_answered: self.ctx.stats.udp.answered.load(Relaxed),
            load1: load1(),
        };
        self.samples.push(s);
    }

    fn progress(&self) {
        let st = &self.ctx.stats;
        let Some(s) = self.samples.last() else {
            return;
        };
        let prev = self
            .samples
            .len()
            .checked_sub(2)
            .and_then(|i| self.samples.get(i));
        let rate = prev.map_or(0.0, |p| {
            (s.requests - p.requests) as f64 / (s.t - p.t).max(0.1)
        });
        let cpu = prev.and_then(|p| {
            let d = s.tcp?.ticks.checked_sub(p.tcp?.ticks)?;
            Some(d as f64 / clk() as f64 / (s.t - p.t).max(0.1) * 100.0)
        });
        let p = |x: Option<ProcSample>| {
            x.map_or("gone".to_string(), |x| {
                format!("rss {} fds {}", mib(x.rss_kib), x.fds)
            })
        };
        log(
            &self.ctx,
            &format!(
                "tcp pen {} cpu {:.0}% active {} | udp pen {} | req {} ({rate:.0}/s) udp {} | broken {} err {} corrupt {} lost {} | load {:.1}",
                p(s.tcp),
                cpu.unwrap_or(0.0),
                s.active.map_or("?".into(), |a| a.to_string()),
                p(s.udp),
                s.requests,
                s.udp_answered,
                st.sum(|k| k.broken.load(Relaxed)),
                st.unexplained(),
                st.corruption(),
                st.udp.lost.load(Relaxed),
                s.load1
            ),
        );
    }

    /// Waits for pen's connections to end and its descriptors to return to the baseline.
    /// Waits (up to 30 s) until neither pen has an active connection or flow and both are
    /// back to their descriptor counts before the traffic.
    fn drain(&mut self) -> String {
        let base_tcp = self.start_tcp.map_or(0, |s| s.fds);
        let base_udp = self.start_udp.map_or(0, |s| s.fds);
        let _ = control(self.pen_udp.ctl, "idle_timeout 1");
        let t = Instant::now();
        let mut out = String::new();
        while t.elapsed() < Duration::from_secs(30) {
            let active = |pen: &Pen| {
                control(pen.ctl, "metrics")
                    .ok()
                    .and_then(|m| metric(&m, "pen_connections_active"))
            };
            let (ta, ua) = (active(&self.pen_tcp), active(&self.pen_udp));
            let tf = self.pen_tcp.sample().map_or(u64::MAX, |s| s.fds);
            let uf = self.pen_udp.sample().map_or(u64::MAX, |s| s.fds);
            let show = |a: Option<u64>| a.map_or("?".into(), |a| a.to_string());
            out = format!(
                "after {:.1} s: tcp pen active connections {}, fds {tf} (start {base_tcp}); udp pen active flows {}, fds {uf} (start {base_udp})",
                t.elapsed().as_secs_f64(),
                show(ta),
                show(ua)
            );
            if ta == Some(0) && ua == Some(0) && tf <= base_tcp && uf <= base_udp {
                break;
            }
            thread::sleep(Duration::from_millis(250));
        }
        log(&self.ctx, &format!("drained: {out}"));
        out
    }
}

/// Checks a control reply for the command kind `what`.
fn check_reply(what: &str, r: &str, ports: &[u16], pid: u32, udp: bool) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{why}: '{}'",
            r.trim().chars().take(200).collect::<String>()
        ))
    };
    match what {
        "servers" => {
            let lines: Vec<&str> = r.lines().collect();
            if lines.len() != ports.len() {
                return bad("wrong number of servers");
            }
            for (i, (l, p)) in lines.iter().zip(ports).enumerate() {
                if !l.starts_with(&format!("{i} addr 127.0.0.1 port {p} ")) {
                    return bad(&format!("server {i} should be on port {p}"));
                }
            }
            Ok(())
        }
        "mode" => {
            // Five flags, each "name" or "no name"; never stubborn here.
            let mut flags = Vec::new();
            let mut words = r.split_whitespace();
            while let Some(w) = words.next() {
                match w {
                    "no" => flags.push((words.next().unwrap_or(""), false)),
                    name => flags.push((name, true)),
                }
            }
            let names: Vec<&str> = flags.iter().map(|f| f.0).collect();
            if names != ["hash", "roundrobin", "stubborn", "weight", "prio"] || flags[2].1 {
                return bad("unexpected mode");
            }
            Ok(())
        }
        "metrics" => {
            if metric(r, "pen_connections_active").is_none()
                || metric(r, "pen_connections_accepted_total").is_none()
            {
                return bad("metrics without pen_connections_active");
            }
            Ok(())
        }
        "status" => {
            if !r.contains("<") || r.len() < 100 {
                return bad("not a status page");
            }
            Ok(())
        }
        "idle_timeout" => {
            let ok = r
                .trim()
                .strip_prefix("Idle timeout: ")
                .and_then(|v| v.strip_suffix(" seconds"))
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| udp || IDLE_CHOICES.contains(&v));
            if !ok {
                return bad("unexpected idle_timeout");
            }
            Ok(())
        }
        "pid" => {
            if r.trim() != pid.to_string() {
                return bad("wrong pid");
            }
            Ok(())
        }
        // blacklist, idle_set, recent: any non-error reply.
        _ => Ok(()),
    }
}

static CLK: AtomicU64 = AtomicU64::new(0);

fn clk() -> u64 {
    match CLK.load(Relaxed) {
        0 => {
            let c = clock_ticks().max(1);
            CLK.store(c, Relaxed);
            c
        }
        c => c,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn bytes(n: u64) -> String {
    if n >= 10 << 30 {
        format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30))
    } else if n >= 10 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 10 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// What the end of the run measured.
struct End {
    tcp: Option<ProcSample>,
    udp: Option<ProcSample>,
    metrics_tcp: String,
    metrics_udp: String,
    exit_tcp: String,
    exit_udp: String,
    drain: String,
    pen_died: bool,
    elapsed: Duration,
    warmup: Duration,
}

impl Runner {
    #[allow(clippy::too_many_lines)]
    fn report(&self, end: &End) -> (String, bool) {
        let st = &self.ctx.stats;
        let a = &self.args;
        let mut o = String::new();
        let mut fails: Vec<String> = Vec::new();
        let mut warns: Vec<String> = Vec::new();
        let l = |o: &mut String, s: String| {
            o.push_str(&s);
            o.push('\n');
        };

        // Verdict inputs.
        let corruption = st.corruption();
        if corruption > 0 {
            fails.push(format!("{corruption} corrupted exchanges"));
        }
        let unexplained = st.unexplained();
        if unexplained > 0 {
            fails.push(format!(
                "{unexplained} client-seen TCP errors not explained by a server stop"
            ));
        }
        if self.ev.reload_failures > 0 {
            fails.push(format!("{} reloads not applied", self.ev.reload_failures));
        }
        if self.ev.control_failures > 0 {
            fails.push(format!(
                "{} control commands failed their check",
                self.ev.control_failures
            ));
        }
        if end.pen_died {
            fails.push("a pen process exited during the run".into());
        }
        for (name, status) in [("tcp", &end.exit_tcp), ("udp", &end.exit_udp)] {
            if status != "exit status: 0" {
                fails.push(format!("{name} pen at the end: {status}"));
            }
        }
        if self.interrupted.load(Relaxed) {
            fails.push("interrupted (SIGINT/SIGTERM) before the end".into());
        }
        let tol_kib = a.rss_tol_mib * 1024;
        let mut flat = |name: &str,
                        start: Option<ProcSample>,
                        warm: Option<ProcSample>,
                        endv: Option<ProcSample>,
                        pick: fn(&Sample) -> Option<ProcSample>|
         -> [String; 8] {
            let max_rss = self
                .samples
                .iter()
                .filter_map(|s| pick(s).map(|p| p.rss_kib))
                .max();
            let max_fds = self
                .samples
                .iter()
                .filter_map(|s| pick(s).map(|p| p.fds))
                .max();
            let (rss_ok, fd_ok) = match (start, warm, endv) {
                (Some(s), Some(w), Some(e)) => (
                    e.rss_kib <= w.rss_kib + tol_kib,
                    e.fds.abs_diff(s.fds) <= a.fd_tol,
                ),
                (Some(s), None, Some(e)) => (
                    e.rss_kib <= s.rss_kib + tol_kib,
                    e.fds.abs_diff(s.fds) <= a.fd_tol,
                ),
                _ => (false, false),
            };
            if !rss_ok {
                fails.push(format!("{name} pen RSS grew (or was not measured)"));
            }
            if !fd_ok {
                fails.push(format!(
                    "{name} pen descriptors not back to the start count"
                ));
            }
            let kib = |p: Option<ProcSample>| p.map_or("-".into(), |p| mib(p.rss_kib));
            let fds = |p: Option<ProcSample>| p.map_or("-".into(), |p| p.fds.to_string());
            [
                kib(start),
                kib(warm),
                kib(endv),
                max_rss.map_or("-".into(), mib),
                if rss_ok { "flat".into() } else { "GREW".into() },
                format!(
                    "{} / {} / {}",
                    fds(start),
                    fds(endv),
                    max_fds.map_or("-".into(), |m| m.to_string())
                ),
                if fd_ok {
                    "flat".into()
                } else {
                    "NOT FLAT".into()
                },
                String::new(),
            ]
        };
        let warm_tcp = self.warm.and_then(|w| w.1);
        let warm_udp = self.warm.and_then(|w| w.2);
        let ftcp = flat("tcp", self.start_tcp, warm_tcp, end.tcp, |s| s.tcp);
        let fudp = flat("udp", self.start_udp, warm_udp, end.udp, |s| s.udp);
        let lost = st.udp.lost.load(Relaxed);
        if lost > 0 {
            warns.push(format!(
                "{lost} UDP queries lost without a UDP backend stop nearby"
            ));
        }
        let pass = fails.is_empty();

        l(&mut o, "## Verdict".into());
        l(&mut o, String::new());
        l(
            &mut o,
            format!("**{}**", if pass { "PASS" } else { "FAIL" }),
        );
        l(&mut o, String::new());
        for f in &fails {
            l(&mut o, format!("- FAIL: {f}"));
        }
        for w in &warns {
            l(&mut o, format!("- note: {w}"));
        }
        if pass {
            l(&mut o, format!(
                "- no corruption, no unexplained client-seen TCP error, every reload and control check passed, both pens exited cleanly; RSS end ≤ after-warm-up + {} MiB and descriptors within ±{} of the start, for both pens",
                a.rss_tol_mib, a.fd_tol
            ));
        }
        l(&mut o, String::new());

        l(&mut o, "## Parameters".into());
        l(&mut o, String::new());
        l(&mut o, format!(
            "- duration {:.0} s (asked {:.0} s), warm-up {:.0} s (RSS baseline: the first sample after it, at {:.0} s)",
            end.elapsed.as_secs_f64(),
            a.duration.as_secs_f64(),
            end.warmup.as_secs_f64(),
            self.warm.map_or(0.0, |w| w.0)
        ));
        l(&mut o, format!("- client threads: {}", a.mix.describe()));
        if a.inject > 0 {
            l(&mut o, format!(
                "- **--inject-corruption {}: the backends corrupted one reply in {} on purpose ({} replies corrupted)**",
                a.inject,
                a.inject,
                INJECTED.load(Relaxed) / a.inject
            ));
        }
        l(
            &mut o,
            format!(
                "- TCP pen: `{}`",
                self.pen_tcp
                    .cmdline
                    .replace(&self.dir.display().to_string(), "$DIR")
            ),
        );
        l(
            &mut o,
            format!(
                "- UDP pen: `{}`",
                self.pen_udp
                    .cmdline
                    .replace(&self.dir.display().to_string(), "$DIR")
            ),
        );
        l(&mut o, format!(
            "- TCP backend stopped every {:.0} s (for 3-12 s, in turn, every other stop abortive), a UDP backend every {:.0} s (3-8 s); SIGHUP every {:.0} s; a control command every {:.0} s (every third through {}); samples every {:.0} s",
            a.toggle_every.as_secs_f64(),
            a.toggle_every.as_secs_f64() * 3.0,
            a.hup_every.as_secs_f64(),
            a.control_every.as_secs_f64(),
            if a.penctl.is_some() { "penctl" } else { "the socket (no --penctl)" },
            a.sample_every.as_secs_f64()
        ));
        let loads: Vec<f64> = self.samples.iter().map(|s| s.load1).collect();
        let mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
        let maxl = loads.iter().copied().fold(0.0, f64::max);
        l(&mut o, format!(
            "- machine load (1-min load average, this run included): start {:.2}, mean {mean:.2}, max {maxl:.2}, end {:.2}",
            loads.first().copied().unwrap_or(0.0),
            loads.last().copied().unwrap_or(0.0)
        ));
        l(&mut o, String::new());

        l(&mut o, "## TCP traffic (clients' view)".into());
        l(&mut o, String::new());
        l(&mut o, "| type | connections | request-replies | bytes up | bytes down | broken by a server stop | other errors | corrupt |".into());
        l(&mut o, "|---|---:|---:|---:|---:|---:|---:|---:|".into());
        for k in KINDS {
            let s = &st.kinds[k as usize];
            l(
                &mut o,
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    k.name(),
                    s.conns.load(Relaxed),
                    s.requests.load(Relaxed),
                    bytes(s.up.load(Relaxed)),
                    bytes(s.down.load(Relaxed)),
                    s.broken.load(Relaxed),
                    s.errs.iter().map(|e| e.load(Relaxed)).sum::<u64>(),
                    s.corrupt.load(Relaxed)
                ),
            );
        }
        let total = |f: fn(&KindStats) -> &AtomicU64| st.sum(|k| f(k).load(Relaxed));
        l(
            &mut o,
            format!(
                "| **total** | {} | {} | {} | {} | {} | {} | {} |",
                total(|k| &k.conns),
                total(|k| &k.requests),
                bytes(total(|k| &k.up)),
                bytes(total(|k| &k.down)),
                total(|k| &k.broken),
                unexplained,
                total(|k| &k.corrupt)
            ),
        );
        l(&mut o, String::new());
        l(&mut o, "Bytes count verified payload of completed exchanges (headers not included). Backend-side corruption (a request header that did not parse): ".to_string()
            + &st.server_bad_header.load(Relaxed).to_string() + ".");
        l(&mut o, String::new());
        l(
            &mut o,
            "Client-seen errors by kind (not explained by a server stop):".into(),
        );
        l(&mut o, String::new());
        l(
            &mut o,
            format!("| kind | {} |", KINDS.map(|k| k.name()).join(" | ")),
        );
        l(&mut o, format!("|---|{}", "---:|".repeat(KINDS.len())));
        for (e, name) in ERR_NAMES.iter().enumerate() {
            l(
                &mut o,
                format!(
                    "| {name} | {} |",
                    KINDS
                        .map(|k| st.kinds[k as usize].errs[e].load(Relaxed).to_string())
                        .join(" | ")
                ),
            );
        }
        l(&mut o, String::new());
        let ic = st.idle_closed.load(Relaxed);
        l(
            &mut o,
            format!(
                "Idle connections closed by pen's idle_timeout (set to 20-30 s): {ic}{}",
                if ic > 0 {
                    format!(
                        ", after {:.1}-{:.1} s of idleness",
                        st.idle_min_ms.load(Relaxed) as f64 / 1000.0,
                        st.idle_max_ms.load(Relaxed) as f64 / 1000.0
                    )
                } else {
                    String::new()
                }
            ),
        );
        l(&mut o, String::new());

        let u = &st.udp;
        l(&mut o, "## UDP traffic (clients' view)".into());
        l(&mut o, String::new());
        l(&mut o, "| sockets (pen flows) | queries | answered, verified | bytes each way | lost near a UDP backend stop | lost otherwise | late answers | ICMP refused | other errors | corrupt |".into());
        l(
            &mut o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
        );
        l(
            &mut o,
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                u.sockets.load(Relaxed),
                u.queries.load(Relaxed),
                u.answered.load(Relaxed),
                bytes(u.bytes.load(Relaxed)),
                u.lost_stop.load(Relaxed),
                lost,
                u.late.load(Relaxed),
                u.refused.load(Relaxed),
                u.other.load(Relaxed),
                u.corrupt.load(Relaxed)
            ),
        );
        l(&mut o, String::new());

        l(&mut o, "## pen processes".into());
        l(&mut o, String::new());
        l(&mut o, "| | TCP pen | UDP pen |".into());
        l(&mut o, "|---|---:|---:|".into());
        let rows = [
            "RSS at start (before traffic)",
            "RSS after warm-up",
            "RSS at end (after drain)",
            "RSS max (samples)",
            "RSS verdict",
            "descriptors start / end / max",
            "descriptors verdict",
        ];
        for (i, name) in rows.iter().enumerate() {
            l(&mut o, format!("| {name} | {} | {} |", ftcp[i], fudp[i]));
        }
        let ticks = |s: Option<ProcSample>, e: Option<ProcSample>| match (s, e) {
            (Some(s), Some(e)) => e.ticks.saturating_sub(s.ticks),
            _ => 0,
        };
        let tt = ticks(self.start_tcp, end.tcp);
        let ut = ticks(self.start_udp, end.udp);
        let secs = |t: u64| t as f64 / clk() as f64;
        let reqs = st.requests();
        let answered = u.answered.load(Relaxed);
        let tcp_bytes = total(|k| &k.up) + total(|k| &k.down);
        l(
            &mut o,
            format!(
                "| CPU (utime+stime) | {:.1} s | {:.1} s |",
                secs(tt),
                secs(ut)
            ),
        );
        l(
            &mut o,
            format!(
            "| CPU per request (TCP request-replies; UDP queries answered) | {:.1} µs | {:.1} µs |",
            secs(tt) * 1e6 / reqs.max(1) as f64,
            secs(ut) * 1e6 / answered.max(1) as f64
        ),
        );
        l(
            &mut o,
            format!(
                "| CPU per MiB relayed (payload both ways) | {:.2} ms | {:.2} ms |",
                secs(tt) * 1e3 / (tcp_bytes as f64 / f64::from(1u32 << 20)).max(1e-9),
                secs(ut) * 1e3
                    / (2.0 * u.bytes.load(Relaxed) as f64 / f64::from(1u32 << 20)).max(1e-9)
            ),
        );
        l(
            &mut o,
            format!("| exit | {} | {} |", end.exit_tcp, end.exit_udp),
        );
        l(&mut o, String::new());
        l(&mut o, format!("Drain at the end: {}.", end.drain));
        l(&mut o, String::new());
        l(&mut o, "pen's own counters at the end (`metrics`):".into());
        l(&mut o, String::new());
        l(&mut o, "| metric | TCP pen | UDP pen |".into());
        l(&mut o, "|---|---:|---:|".into());
        for m in [
            "pen_connections_accepted_total",
            "pen_connections_active",
            "pen_connections_refused_total",
            "pen_server_connections_total",
            "pen_bytes_total",
            "pen_failovers_total",
            "pen_blacklistings_total",
            "pen_connect_timeouts_total",
            "pen_idle_timeouts_total",
            "pen_accept_pauses_total",
            "pen_control_commands_total",
            "pen_control_errors_total",
        ] {
            let v = |t: &str| metric(t, m).map_or("-".into(), |v| v.to_string());
            l(
                &mut o,
                format!(
                    "| {m} | {} | {} |",
                    v(&end.metrics_tcp),
                    v(&end.metrics_udp)
                ),
            );
        }
        l(&mut o, String::new());

        let e = &self.ev;
        l(&mut o, "## Chaos".into());
        l(&mut o, String::new());
        l(
            &mut o,
            format!(
                "- TCP backends: {} stops ({} abortive), {} starts, {} moved to a new port",
                e.tcp_stops, e.tcp_abortive, e.tcp_starts, e.tcp_moves
            ),
        );
        l(
            &mut o,
            format!(
                "- UDP backends: {} stops, {} starts, {} moved to a new port",
                e.udp_stops, e.udp_starts, e.udp_moves
            ),
        );
        l(
            &mut o,
            format!(
                "- SIGHUP reloads: {} ({} not applied)",
                e.reloads, e.reload_failures
            ),
        );
        let mut by: Vec<_> = e.by_command.iter().collect();
        by.sort();
        l(
            &mut o,
            format!(
                "- control commands: {} ({} through penctl, {} failed their check): {}",
                e.control,
                e.via_penctl,
                e.control_failures,
                by.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        for (name, pen) in [("TCP", &self.pen_tcp), ("UDP", &self.pen_udp)] {
            let text = fs::read_to_string(&pen.log).unwrap_or_default();
            let n = text.lines().count();
            l(
                &mut o,
                format!(
                    "- {name} pen's stderr: {n} lines{}",
                    if n > 0 { ", the last ones:" } else { "" }
                ),
            );
            if n > 0 {
                l(&mut o, String::new());
                l(&mut o, "  ```".into());
                for line in text.lines().skip(n.saturating_sub(5)) {
                    l(&mut o, format!("  {line}"));
                }
                l(&mut o, "  ```".into());
            }
        }
        l(&mut o, String::new());

        l(
            &mut o,
            format!(
                "## Samples (every {:.0} s; at most 40 rows shown)",
                a.sample_every.as_secs_f64()
            ),
        );
        l(&mut o, String::new());
        l(&mut o, "| t (s) | TCP pen RSS | fds | CPU % | active conns | UDP pen RSS | fds | TCP req/s | UDP q/s | load |".into());
        l(
            &mut o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
        );
        let step = self.samples.len().div_ceil(40).max(1);
        let mut prev: Option<&Sample> = None;
        for (i, s) in self.samples.iter().enumerate() {
            let show = i % step == 0 || i + 1 == self.samples.len();
            if show {
                let (cpu, rate, urate) = match prev {
                    Some(p) if s.t > p.t => {
                        let dt = s.t - p.t;
                        let cpu = match (s.tcp, p.tcp) {
                            (Some(a), Some(b)) => {
                                format!("{:.0}", secs(a.ticks.saturating_sub(b.ticks)) / dt * 100.0)
                            }
                            _ => "-".into(),
                        };
                        (
                            cpu,
                            format!("{:.0}", s.requests.saturating_sub(p.requests) as f64 / dt),
                            format!(
                                "{:.0}",
                                s.udp_answered.saturating_sub(p.udp_answered) as f64 / dt
                            ),
                        )
                    }
                    _ => ("-".into(), "-".into(), "-".into()),
                };
                let kib = |p: Option<ProcSample>| p.map_or("-".into(), |p| mib(p.rss_kib));
                let fds = |p: Option<ProcSample>| p.map_or("-".into(), |p| p.fds.to_string());
                l(
                    &mut o,
                    format!(
                        "| {:.0} | {} | {} | {cpu} | {} | {} | {} | {rate} | {urate} | {:.2} |",
                        s.t,
                        kib(s.tcp),
                        fds(s.tcp),
                        s.active.map_or("-".into(), |a| a.to_string()),
                        kib(s.udp),
                        fds(s.udp),
                        s.load1
                    ),
                );
                prev = Some(s);
            }
        }
        l(&mut o, String::new());

        let notes = st.notes.lock();
        l(
            &mut o,
            format!(
                "## Notes ({} errors, corruption, failed checks; {} more not kept)",
                notes.len(),
                st.notes_dropped.load(Relaxed)
            ),
        );
        l(&mut o, String::new());
        if notes.is_empty() {
            l(&mut o, "None.".into());
        } else {
            l(&mut o, "```".into());
            for n in notes.iter() {
                l(&mut o, n.clone());
            }
            l(&mut o, "```".into());
        }
        (o, pass)
    }
}
