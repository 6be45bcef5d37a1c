//! A closed-loop UDP load generator for the load benchmark's UDP rows (DNS-like traffic: one
//! small query, one small answer).
//!
//! ```text
//! udp_load [-c SOCKETS] [-d SECONDS] [-t THREADS] [--timeout MS] [--size BYTES] TARGET_IP:PORT
//! ```
//!
//! `-c` client sockets (default 64), each bound to its own ephemeral port and connected to the
//! target, keep exactly one query in flight: send, wait for the answer, send the next. The
//! sockets are split over `-t` threads (default 2); a thread waits on its sockets in turn (a
//! blocking `recv` with the timeout), so answers that arrive while it waits on another socket
//! are picked up without blocking. A query whose answer does not come within `--timeout` ms
//! (default 500) of the thread starting to wait for it is counted as lost and the socket sends
//! a new one; late answers to lost queries are recognised by their sequence number and dropped.
//! An ICMP error on a socket (connection refused) counts as an error and as lost.
//!
//! Runs for `-d` seconds (default 10) and prints one line:
//!
//! ```text
//! qps=52013 answered=520130 lost=0 errors=0 seconds=10.00 avg_us=1229
//! ```
//!
//! `qps` is answered queries per second, `avg_us` the mean round trip of answered queries.
//! Query layout: 8-byte sequence number, a flags byte (the responder sets the high bit), then
//! padding up to `--size` bytes (default 32).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// The parsed command line.
struct Args {
    target: SocketAddr,
    sockets: usize,
    seconds: f64,
    threads: usize,
    timeout: Duration,
    size: usize,
}

/// Parses the value following option `opt`.
fn value<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{opt}: missing value"))?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

/// Parses the command line (without the program name).
fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut target = None;
    let mut args = Args {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        sockets: 64,
        seconds: 10.0,
        threads: 2,
        timeout: Duration::from_millis(500),
        size: 32,
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => args.sockets = value("-c", it.next())?,
            "-d" => args.seconds = value("-d", it.next())?,
            "-t" => args.threads = value("-t", it.next())?,
            "--timeout" => args.timeout = Duration::from_millis(value("--timeout", it.next())?),
            "--size" => args.size = value("--size", it.next())?,
            _ if target.is_none() && !a.starts_with('-') => {
                target = Some(a.parse().map_err(|_| format!("bad address '{a}'"))?);
            }
            _ => return Err(format!("unexpected argument '{a}'")),
        }
    }
    args.target = target.ok_or(
        "usage: udp_load [-c SOCKETS] [-d SECONDS] [-t THREADS] [--timeout MS] [--size BYTES] IP:PORT",
    )?;
    if args.sockets == 0 || args.threads == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("-c, -t and -d must be positive".into());
    }
    args.threads = args.threads.min(args.sockets);
    args.size = args.size.clamp(9, 1400);
    Ok(args)
}

/// One client socket and its query in flight.
struct Client {
    sock: UdpSocket,
    seq: u64,
    sent: Instant,
}

/// What one thread counted.
#[derive(Default)]
struct Tally {
    answered: u64,
    lost: u64,
    errors: u64,
    rtt: Duration,
}

/// A socket on the loopback address of the target's family (or the unspecified address for a
/// non-loopback target) with an ephemeral port, connected to the target.
fn client_socket(target: SocketAddr, timeout: Duration) -> std::io::Result<UdpSocket> {
    let local: IpAddr = match target.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind(SocketAddr::new(local, 0))?;
    sock.connect(target)?;
    sock.set_read_timeout(Some(timeout))?;
    Ok(sock)
}

/// Sends the query with the client's next sequence number; a send error counts as an error.
fn send(c: &mut Client, query: &mut [u8], tally: &mut Tally) {
    c.seq += 1;
    if let Some(head) = query.get_mut(..8) {
        head.copy_from_slice(&c.seq.to_le_bytes());
    }
    c.sent = Instant::now();
    if c.sock.send(query).is_err() {
        tally.errors += 1;
    }
}

/// Drives `clients` until `end`.
fn run(mut clients: Vec<Client>, size: usize, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut query = vec![0u8; size];
    let mut buf = [0u8; 2048];
    for c in &mut clients {
        send(c, &mut query, &mut tally);
    }
    'outer: loop {
        for c in &mut clients {
            // Wait for this client's answer, skipping late answers to earlier (lost) queries.
            loop {
                match c.sock.recv(&mut buf) {
                    Ok(n) if n > 8 && buf[..8] == c.seq.to_le_bytes() && buf[8] & 0x80 != 0 => {
                        tally.answered += 1;
                        tally.rtt += c.sent.elapsed();
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        tally.lost += 1;
                        break;
                    }
                    Err(_) => {
                        // ICMP port unreachable and the like: lost; do not spin on it.
                        tally.errors += 1;
                        tally.lost += 1;
                        thread::sleep(Duration::from_millis(1));
                        break;
                    }
                }
            }
            if Instant::now() >= end {
                break 'outer;
            }
            send(c, &mut query, &mut tally);
        }
    }
    tally
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp_load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut groups: Vec<Vec<Client>> = (0..args.threads).map(|_| Vec::new()).collect();
    for i in 0..args.sockets {
        match client_socket(args.target, args.timeout) {
            Ok(sock) => {
                if let Some(group) = groups.get_mut(i % args.threads) {
                    group.push(Client {
                        sock,
                        seq: 0,
                        sent: Instant::now(),
                    });
                }
            }
            Err(e) => {
                eprintln!("udp_load: socket: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let handles: Vec<_> = groups
        .into_iter()
        .map(|g| {
            let size = args.size;
            thread::spawn(move || run(g, size, end))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => {
                total.answered += t.answered;
                total.lost += t.lost;
                total.errors += t.errors;
                total.rtt += t.rtt;
            }
            Err(_) => {
                eprintln!("udp_load: a worker thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let avg_us = if total.answered > 0 {
        total.rtt.as_secs_f64() * 1e6 / total.answered as f64
    } else {
        0.0
    };
    println!(
        "qps={:.0} answered={} lost={} errors={} seconds={:.2} avg_us={:.0}",
        total.answered as f64 / secs,
        total.answered,
        total.lost,
        total.errors,
        secs,
        avg_us
    );
    ExitCode::SUCCESS
}
