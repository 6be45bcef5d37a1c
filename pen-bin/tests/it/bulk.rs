//! Bulk streams: a long answer from a server that keeps its connection open afterwards (as an
//! HTTP server does between requests), relayed whole, with and without `splice`, and a stream
//! that slows down and speeds up again (pen's buffers grow and shrink with it).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    is_c_pen, pace, poll_until, stream_sum, unsent_and_unread, write_stream, Fnv, PenBuilder, Prng,
    ScratchDir,
};

const LEN: usize = 64 * 1024 * 1024;
const SEED: u64 = 0xb01c;
const PAUSE_EVERY: usize = 8 * 1024 * 1024;

/// Reads exactly `len` bytes, pausing after every 8 MiB until pen is held back (it holds bytes
/// it cannot send, our receive window being full, so it has to resume when we read again; or
/// the rest of the answer is already in our receive queue); returns their checksum, or how far
/// it got.
fn read_exact_sum(r: &mut TcpStream, len: usize) -> Result<Fnv, String> {
    let mut h = Fnv::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut next_pause = PAUSE_EVERY;
    while got < len {
        if got >= next_pause {
            let rest = (len - got) as u64;
            let held = poll_until(Duration::from_secs(20), || {
                let (unsent, unread) = unsent_and_unread(r)?;
                (unsent > 0 || unread >= rest).then_some(())
            });
            if held.is_none() {
                return Err(format!("pen not held back after {got} of {len} bytes"));
            }
            next_pause += PAUSE_EVERY;
        }
        let want = (len - got).min(buf.len());
        match r.read(&mut buf[..want]) {
            Ok(0) => return Err(format!("EOF after {got} of {len} bytes")),
            Ok(n) => {
                h.update(&buf[..n]);
                got += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {got} of {len} bytes")),
        }
    }
    Ok(h)
}

/// Holds a connection open until the peer closes it (or 60 s pass).
fn hold_until_eof(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut sink = [0u8; 1024];
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

/// Three clients in turn each get the server's `LEN`-byte answer through pen started with
/// `opts`; the server keeps every connection open after it, so only the bytes can end a read.
/// The server sends a file as a web server does (`std::io::copy` from a file to a socket is
/// `sendfile` on Linux): the data arrives as page-sized fragments, which is what fills a
/// kernel pipe's slots before its bytes.
fn long_answer_on_open_connection(opts: &[&str]) {
    let dir = ScratchDir::new("bulk");
    let path = dir.0.join("answer.bin");
    let mut f = File::create(&path).expect("create the answer file");
    write_stream(&mut f, SEED, LEN).expect("write the answer file");
    drop(f);
    let server = Backend::custom(move |mut s: TcpStream| {
        s.set_write_timeout(Some(Duration::from_secs(30))).ok();
        let sent = File::open(&path).and_then(|mut f| std::io::copy(&mut f, &mut s));
        if sent.is_ok() {
            hold_until_eof(&mut s);
        }
    });
    let pen = PenBuilder::new().opts(opts).server(server.spec()).start();
    let want = stream_sum(SEED, LEN);
    for i in 0..3 {
        let mut c = pen.connect();
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let got = read_exact_sum(&mut c, LEN)
            .unwrap_or_else(|e| panic!("client {i}: the whole answer ({opts:?}): {e}"));
        assert_eq!(got, want, "client {i}: checksum ({opts:?})");
    }
}

/// With `splice`, a splice into the kernel pipe may stop short of what the socket holds (the
/// pipe runs out of slots first); taken for "drained", it left the rest of the answer in the
/// socket with no new edge to come, and the client waited forever.
#[test]
fn a_long_answer_on_an_open_connection_arrives_whole_with_splice() {
    if is_c_pen() {
        return; // --splice is ours
    }
    long_answer_on_open_connection(&["--splice", "always"]);
}

#[test]
fn a_long_answer_on_an_open_connection_arrives_whole_without_splice() {
    if is_c_pen() {
        return;
    }
    long_answer_on_open_connection(&["--splice", "never"]);
}

/// A client uploads in bursts of varying size with pauses, and reads its echo slowly at times:
/// pen's buffers grow while reads fill them, shrink on a trickle or a slow reader; the bytes
/// come back exact and in order.
#[test]
fn a_stream_of_bursts_and_pauses_is_echoed_exactly() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let c = pen.connect();
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    c.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut rng = Prng::new(7);
    let sizes: Vec<usize> = (0..40)
        .map(|i| match i % 4 {
            0 => 1 + rng.range(0, 512) as usize,
            1 => 256 * 1024 + rng.range(0, 2 * 1024 * 1024) as usize,
            2 => 4 * 1024 * 1024,
            _ => rng.range(1, 100_000) as usize,
        })
        .collect();
    let total: usize = sizes.iter().sum();
    let mut w = c.try_clone().expect("clone");
    let plan = sizes.clone();
    let writer = thread::spawn(move || {
        let mut data = Prng::new(0x5eed);
        let mut h = Fnv::new();
        for (i, n) in plan.into_iter().enumerate() {
            let mut buf = vec![0u8; n];
            data.fill(&mut buf);
            h.update(&buf);
            w.write_all(&buf).expect("write");
            if i % 5 == 0 {
                pace(Duration::from_millis(20));
            }
        }
        h
    });
    let mut r = c;
    let mut h = Fnv::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    let mut reads = 0u32;
    while got < total {
        let want = (total - got).min(if reads % 7 == 0 { 1024 } else { buf.len() });
        let n = r.read(&mut buf[..want]).expect("read the echo");
        assert!(n > 0, "EOF after {got} of {total} bytes");
        h.update(&buf[..n]);
        got += n;
        reads += 1;
        if reads % 50 == 0 {
            pace(Duration::from_millis(10)); // a slow reader now and then
        }
    }
    assert_eq!(h, writer.join().expect("writer"), "echo checksum");
}
