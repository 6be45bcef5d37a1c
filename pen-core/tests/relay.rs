//! Library-level relay tests: a `Balancer` in-process against real loopback backends.
//! (The binary-level suite lives in `pen-bin/tests`.)

// Test code: a panic is a failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable
)]

mod common;
use common::{addr_of, echo_backend};

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use pen_core::{Balancer, Config, Splice};

/// FNV-1a over a byte stream, for end-to-end checksums.
fn fnv(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sink backend: reads to EOF, then replies with `reply_len` bytes of a known payload.
fn reply_after_eof_backend(reply_len: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut h = FNV0;
                let mut n = 0u64;
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            h = fnv(&buf[..k], h);
                            n += k as u64;
                        }
                    }
                }
                // First 16 bytes: what we received (length, checksum); then the payload.
                let _ = c.write_all(&n.to_le_bytes());
                let _ = c.write_all(&h.to_le_bytes());
                let _ = c.write_all(&payload(reply_len, 7));
            });
        }
    });
    addr
}

fn start(servers: &[SocketAddr], tweak: impl FnOnce(&mut Config)) -> Balancer {
    let mut c = common::config(servers);
    tweak(&mut c);
    Balancer::start(c).unwrap()
}

#[test]
fn full_duplex_32mib_byte_identical() {
    duplex(Splice::Always);
}

#[test]
fn full_duplex_32mib_byte_identical_without_splice() {
    duplex(Splice::Never);
}

fn duplex(splice: Splice) {
    let b = start(&[echo_backend()], |c| c.splice = splice);
    let data = payload(32 << 20, 1);
    let want = fnv(&data, FNV0);
    let s = TcpStream::connect(addr_of(&b)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = s;
    let mut got = Vec::with_capacity(32 << 20);
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), 32 << 20);
    assert_eq!(fnv(&got, FNV0), want);
    b.stop();
}

#[test]
fn half_close_reply_after_eof_arrives_complete() {
    half_close(Splice::Always);
}

#[test]
fn half_close_reply_after_eof_arrives_complete_without_splice() {
    half_close(Splice::Never);
}

fn half_close(splice: Splice) {
    let b = start(&[reply_after_eof_backend(32 << 20)], |c| c.splice = splice);
    let data = payload(32 << 20, 2);
    let mut s = TcpStream::connect(addr_of(&b)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 16 + (32 << 20));
    assert_eq!(u64::from_le_bytes(got[0..8].try_into().unwrap()), 32 << 20);
    assert_eq!(
        u64::from_le_bytes(got[8..16].try_into().unwrap()),
        fnv(&data, FNV0)
    );
    assert_eq!(fnv(&got[16..], FNV0), fnv(&payload(32 << 20, 7), FNV0));
    b.stop();
}

#[test]
fn fifty_concurrent_connections() {
    let b = start(&[echo_backend(), echo_backend()], |c| {
        c.settings.roundrobin = true
    });
    let addr = addr_of(&b);
    let handles: Vec<_> = (0..50)
        .map(|i| {
            thread::spawn(move || {
                let data = payload(200_000 + i * 1000, i as u64 + 10);
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut w = s.try_clone().unwrap();
                let d2 = data.clone();
                let t = thread::spawn(move || {
                    w.write_all(&d2).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::new();
                (&s).read_to_end(&mut got).unwrap();
                t.join().unwrap();
                assert_eq!(fnv(&got, FNV0), fnv(&data, FNV0), "connection {i}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    b.stop();
}

#[test]
fn refused_server_fails_over_and_is_blacklisted() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap() // closed when dropped: connects are refused
    };
    let b = start(&[dead, echo_backend()], |c| c.settings.roundrobin = true);
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr_of(&b)).unwrap();
        // Bounded: if another process took the dead port meanwhile, fail rather than hang.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"ping").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");
    }
    let servers = b.apply("servers").unwrap();
    assert!(
        servers.lines().next().unwrap().contains(" blacklisted "),
        "{servers}"
    );
    b.stop();
}

#[test]
fn connection_limit_queues_then_serves() {
    let b = start(&[echo_backend()], |c| c.conn_max = 2);
    let addr = addr_of(&b);
    let echo = |s: &mut TcpStream, msg: &[u8]| -> std::io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    };
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for s in &mut held {
        assert_eq!(echo(s, b"held").unwrap(), b"held");
    }
    // The third waits in the kernel's accept queue: connected, but not relayed yet.
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        echo(&mut third, b"wait").is_err(),
        "served beyond the -x limit"
    );
    assert_eq!(b.active_connections(), 2);
    drop(held.pop());
    // A slot frees: the queued connection is accepted and its early bytes relayed.
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = vec![0u8; 4];
    third.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"wait");
    b.stop();
}

#[test]
fn second_balancer_on_the_same_port_shares_it() {
    // As C pen: SO_REUSEPORT lets a second instance start on the same port (so "start the new
    // one, stop the old one" refuses nothing); the control port stays exclusive.
    let first = start(&[echo_backend()], |c| c.workers = 2);
    let mut c = Config::new(first.listen_addr(), vec![]);
    c.workers = 2;
    let second = Balancer::start(c).expect("a second balancer on the same port starts");
    assert_eq!(second.listen_addr(), first.listen_addr());
    second.stop();
    first.stop();
}
