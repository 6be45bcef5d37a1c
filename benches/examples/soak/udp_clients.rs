//! The UDP client threads: one socket (a pen flow) at a time sends queries, one in flight, and
//! checks every answer; a query lost near a UDP backend stop or start is blamed on it.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::backends::UDP_BACKENDS;
use crate::context::Ctx;
use crate::rng::{Rng, Stream};
use crate::wire::{get_u32, get_u64, put_u32, put_u64, UDP_HDR, UDP_MAGIC};

/// A UDP query lost within this time after a UDP backend stop or start is blamed on it.
const UDP_BLAME_MS: u64 = 5_000;

pub(crate) fn udp_worker(ctx: &Ctx, seed: u64) {
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
