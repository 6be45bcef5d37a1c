//! A small DNS-like UDP responder for the load benchmark's UDP rows: every datagram is answered
//! at once to its sender with the query echoed back plus a 16-byte "answer record", and the
//! high bit of byte 8 (the query/response flag in the load generator's header) set.
//!
//! ```text
//! udp_echo [--threads N] LISTEN_IP:PORT
//! ```
//!
//! `--threads N` (default 2) threads share the one socket, each in a blocking `recv_from` /
//! `send_to` loop, so the responder is not the bottleneck on a small machine. It runs until
//! killed. `LISTEN_IP:PORT` may be IPv6 (`[::1]:5300`); port 0 picks a free port, and the bound
//! address is printed on stdout either way.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;

/// The fixed answer appended to every reply (stands in for a DNS answer record).
const ANSWER: [u8; 16] = *b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x7f\x00\x00\x01";

/// Largest datagram handled; longer ones are truncated by the kernel and answered as read.
const MAX: usize = 2048;

/// Parses `[--threads N] ADDR`.
fn parse(mut it: impl Iterator<Item = String>) -> Result<(usize, SocketAddr), String> {
    let mut threads = 2;
    let mut addr = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => {
                let v = it.next().ok_or("--threads: missing value")?;
                threads = v
                    .parse()
                    .map_err(|_| format!("--threads: bad value '{v}'"))?;
            }
            _ if addr.is_none() && !a.starts_with('-') => {
                addr = Some(a.parse().map_err(|_| format!("bad address '{a}'"))?);
            }
            _ => return Err(format!("unexpected argument '{a}'")),
        }
    }
    let addr = addr.ok_or("usage: udp_echo [--threads N] LISTEN_IP:PORT")?;
    Ok((threads.max(1), addr))
}

/// Answers datagrams on `sock` until an error other than an interrupted call.
fn serve(sock: UdpSocket) {
    let mut buf = [0u8; MAX + ANSWER.len()];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf[..MAX]) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("udp_echo: recv: {e}");
                return;
            }
        };
        if n > 8 {
            if let Some(flags) = buf.get_mut(8) {
                *flags |= 0x80;
            }
        }
        // `n <= MAX`: the answer fits after the query.
        let len = n + ANSWER.len();
        let Some(answer) = buf.get_mut(n..len) else {
            continue;
        };
        answer.copy_from_slice(&ANSWER);
        // A send error (e.g. the peer's port is gone) only loses this answer.
        let _ = sock.send_to(buf.get(..len).unwrap_or_default(), peer);
    }
}

fn main() -> ExitCode {
    let (threads, addr) = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp_echo: {e}");
            return ExitCode::from(2);
        }
    };
    let sock = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp_echo: bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match sock.local_addr() {
        Ok(a) => println!("{a}"),
        Err(e) => eprintln!("udp_echo: local_addr: {e}"),
    }
    let mut handles = Vec::new();
    for _ in 1..threads {
        match sock.try_clone() {
            Ok(s) => handles.push(thread::spawn(move || serve(s))),
            Err(e) => eprintln!("udp_echo: clone: {e}"),
        }
    }
    serve(sock);
    for h in handles {
        let _ = h.join();
    }
    ExitCode::FAILURE
}
