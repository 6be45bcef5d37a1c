//! Tests of the ring on the real kernel (each returns early where io_uring is unavailable).

use super::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// Waits for the completions of `op` until `n` have come (bounded).
fn wait_for(ring: &mut Ring, op: Op, n: usize) -> Vec<Cqe> {
    let mut got = Vec::new();
    for _ in 0..100 {
        let mut out = Vec::new();
        ring.submit_and_wait(Some(Duration::from_millis(20)), &mut out)
            .expect("wait");
        got.extend(out.into_iter().filter(|c| c.op == op));
        if got.len() >= n {
            break;
        }
    }
    got
}

fn ring() -> Option<Ring> {
    // A kernel without io_uring (or with it disabled) has nothing to test here.
    let r = Ring::new(16, [(2, 16, 2), (1, 64, 1)]).ok()?;
    r.enable().ok()?;
    Some(r)
}

#[test]
fn a_received_buffer_sent_and_released_meanwhile_goes_back_once_sent() {
    let Some(mut r) = ring() else {
        return;
    };
    let (mut a, b) = UnixStream::pair().expect("pair");
    a.write_all(b"hello").expect("write");
    r.recv(b.as_raw_fd(), Pool::Small, 1);
    let c = wait_for(&mut r, Op::Recv, 1);
    let c = c.first().expect("a receive");
    assert_eq!((c.res, c.token), (5, 1));
    let bid = c.index.expect("a provided buffer");
    assert_eq!(r.bytes(bid, 0, 5), b"hello");
    assert!(r.send(b.as_raw_fd(), bid, 1, 5, 2), "held: may be sent");
    assert!(!r.send(b.as_raw_fd(), bid, 0, 5, 3), "one send at a time");
    r.release(bid);
    assert!(r.bytes(bid, 0, 5).is_empty(), "being sent: not held");
    let s = wait_for(&mut r, Op::Send, 1);
    assert_eq!(s.first().map(|c| (c.res, c.index)), Some((4, Some(bid))));
    let mut echo = [0u8; 4];
    a.read_exact(&mut echo).expect("read");
    assert_eq!(&echo, b"ello");
    // Back with the kernel: the next receive may pick it again.
    assert!(!r.send(b.as_raw_fd(), bid, 0, 1, 4));
    a.write_all(b"x").expect("write");
    let c = wait_for(&mut r, Op::Recv, 1);
    assert_eq!(c.first().map(|c| c.res), Some(1));
}

#[test]
fn a_receive_that_found_the_lent_buffers_gone_does_not_wait_for_a_release() {
    // One small buffer lent at a time, of three.
    let Some(mut r) = Ring::new(16, [(3, 16, 1), (0, 64, 1)]).ok() else {
        return;
    };
    if r.enable().is_err() {
        return;
    }
    let (mut a1, b1) = UnixStream::pair().expect("pair");
    let (mut a2, b2) = UnixStream::pair().expect("pair");
    a1.write_all(b"one").expect("write");
    a2.write_all(b"two").expect("write");
    r.recv(b1.as_raw_fd(), Pool::Small, 1);
    r.recv(b2.as_raw_fd(), Pool::Small, 2);
    let got = wait_for(&mut r, Op::Recv, 2);
    let res: Vec<i32> = got.iter().map(|c| c.res).collect();
    assert!(res.contains(&3), "{res:?}");
    assert!(
        res.contains(&-libc::ENOBUFS),
        "the second found none lent: {res:?}"
    );
    // The worker lent the next one as it reaped: the starved receive may go again now.
    assert!(!r.starved);
    assert_eq!(r.available(Pool::Small), 2);
    r.recv(b2.as_raw_fd(), Pool::Small, 2);
    let again = wait_for(&mut r, Op::Recv, 1);
    assert_eq!(again.first().map(|c| c.res), Some(3));
}

#[test]
fn the_most_recently_given_back_buffer_is_lent_first() {
    let Some(mut r) = Ring::new(16, [(3, 16, 1), (0, 64, 1)]).ok() else {
        return;
    };
    if r.enable().is_err() {
        return;
    }
    let (mut a, b) = UnixStream::pair().expect("pair");
    let mut next = || {
        a.write_all(b"x").expect("write");
        r.recv(b.as_raw_fd(), Pool::Small, 1);
        let c = wait_for(&mut r, Op::Recv, 1);
        let c = c.iter().find(|c| c.res > 0).expect("a receive");
        let bid = c.index.expect("a buffer");
        r.cancel_recv(Pool::Small, 1);
        let _ = wait_for(&mut r, Op::Recv, 1);
        r.release(bid);
        bid
    };
    let first = next();
    // Lent in its place: the next on the stack; `first` went back on top of the stack.
    let second = next();
    assert_ne!(first, second);
    assert_eq!(
        next(),
        first,
        "reused while warm, not the third, never-touched one"
    );
}

#[test]
fn held_bytes_get_ids_past_the_provided_ones_and_are_freed_for_reuse() {
    let Some(mut r) = ring() else {
        return;
    };
    let first = r.hold_bytes(b"abc").expect("an id");
    assert!(usize::from(first) >= 3, "past the 3 provided buffers");
    assert_eq!(r.bytes(first, 0, 3), b"abc");
    let second = r.hold_bytes(b"de").expect("an id");
    assert_ne!(first, second);
    r.release(first);
    assert!(r.bytes(first, 0, 3).is_empty());
    assert_eq!(r.hold_bytes(b"f"), Some(first), "the freed id is reused");
    assert_eq!(r.bytes(second, 0, 2), b"de");
}

#[test]
fn a_connect_to_a_closed_port_fails_and_its_timeout_is_cancelled() {
    let Some(mut r) = ring() else {
        return;
    };
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let sock = server_socket(addr, None, None, true).expect("socket");
    r.connect(sock.as_raw_fd(), addr, Duration::from_secs(5), 9);
    let mut all = Vec::new();
    for _ in 0..100 {
        let mut out = Vec::new();
        r.submit_and_wait(Some(Duration::from_millis(20)), &mut out)
            .expect("wait");
        all.extend(out.into_iter().map(|c| (c.op, c.res, c.token)));
        if all.len() >= 2 {
            break;
        }
    }
    assert!(
        all.contains(&(Op::Connect, -libc::ECONNREFUSED, 9)),
        "{all:?}"
    );
    assert!(all.contains(&(Op::Timeout, -libc::ECANCELED, 9)), "{all:?}");
    r.close(sock);
}
