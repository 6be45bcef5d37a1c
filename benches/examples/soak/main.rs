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
//!
//! The code, by module: `cli` (the command line); `rng` and `checksum` (seeded byte streams
//! and their checksums); `wire` (request and reply headers, streamed payloads); `backends`
//! (the TCP and UDP backends); `context` and `stats` (what the threads share and count);
//! `exchange`, `tcp_clients` and `udp_clients` (the traffic kinds); `pen` and `procfs` (pen's
//! processes, control commands and /proc); `config_files` (the `-F` variants); `runner`,
//! `chaos` and `sampling` (the main thread's schedule); `verdict` and `report` (the end).
// A load generator, not pen: its input is what it sends itself, so the workspace's
// no-panic lints for network-facing code do not apply; its buffers are indexed by their own
// lengths.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

mod backends;
mod chaos;
mod checksum;
mod cli;
mod config_files;
mod context;
mod exchange;
mod pen;
mod procfs;
mod report;
mod rng;
mod runner;
mod sampling;
mod stats;
mod tcp_clients;
mod udp_clients;
mod verdict;
mod wire;

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::backends::{TcpBackend, UdpBackend, INJECT, TCP_BACKENDS, UDP_BACKENDS};
use crate::cli::{parse_args, Args};
use crate::config_files::{cfg_text, VARIANTS};
use crate::context::Ctx;
use crate::pen::{free_tcp_port, free_udp_port, Pen};
use crate::procfs::running_as_root;
use crate::rng::Rng;
use crate::runner::{Events, Runner};
use crate::stats::Stats;

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

/// Starts the backends and both pens, then runs the soak; `Ok(true)` for a PASS.
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
