//! Relaying bytes: big transfers, half-close, concurrency, address families, Unix socket,
//! idle timeout and fast close.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::backends::{parse_sink_reply, Backend};
use super::harness::{
    connect, connect_unix, ipv6_available, peek, read_sum, read_to_eof, stream_sum, wait_for,
    write_stream, ListenKind, Peek, PenBuilder, Prng, Target, WAIT,
};

const BIG: usize = 32 * 1024 * 1024;

fn long_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
}

#[test]
fn full_duplex_32_mib_each_way_is_byte_identical() {
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let c = pen.connect();
    long_timeouts(&c);
    let mut w = c.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let sum = write_stream(&mut w, 0x5eed, BIG).expect("write 32 MiB");
        w.shutdown(Shutdown::Write).expect("shutdown");
        sum
    });
    let mut r = c;
    let (got, n) = read_sum(&mut r).expect("read 32 MiB back");
    let sent = writer.join().expect("writer");
    assert_eq!(n, BIG, "bytes echoed back");
    assert_eq!(got, sent, "checksum of the echoed stream");
}

#[test]
fn half_close_32_mib_then_reply_after_eof() {
    let server = Backend::sink_then_send();
    let pen = PenBuilder::new().server(server.spec()).start();
    let mut c = pen.connect();
    long_timeouts(&c);
    let sent = write_stream(&mut c, 0xfeed, BIG).expect("write 32 MiB");
    c.shutdown(Shutdown::Write).expect("shutdown write");
    // The server replies only after it saw our EOF, with a stream seeded by what it received.
    let (got, n) = read_sum(&mut c).expect("read reply");
    assert_eq!(n, BIG, "reply length");
    assert_eq!(
        got,
        stream_sum(sent.0, BIG),
        "reply checksum (server saw our exact bytes)"
    );
}

#[test]
fn fifty_concurrent_connections_with_own_payloads() {
    let sink = Backend::sink();
    let pen = PenBuilder::new().server(sink.spec()).start();
    let addr = pen.addr().to_string();
    let workers: Vec<_> = (0..50u64)
        .map(|i| {
            let addr = addr.clone();
            thread::spawn(move || {
                let len = Prng::new(i + 1).range(1, 512 * 1024) as usize;
                let mut c = connect(&addr);
                long_timeouts(&c);
                let sum = write_stream(&mut c, 1000 + i, len).expect("write");
                c.shutdown(Shutdown::Write).expect("shutdown");
                let reply = read_to_eof(&mut c);
                assert_eq!(parse_sink_reply(&reply), (sum, len), "connection {i}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(sink.accepted(), 50);
}

#[test]
fn ipv6_listener_to_ipv4_server() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 unavailable");
        return;
    }
    let a = Backend::name("v4");
    let pen = PenBuilder::new()
        .listen(ListenKind::V6)
        .server(a.spec())
        .start();
    let mut c = connect(pen.addr());
    assert_eq!(read_to_eof(&mut c), "v4");
}

#[test]
fn ipv4_listener_to_ipv6_server() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 unavailable");
        return;
    }
    let a = Backend::name_at("[::1]:0", "v6");
    let pen = PenBuilder::new().server(a.spec()).start();
    assert_eq!(pen.fetch(), "v6");
}

#[test]
fn unix_socket_listener() {
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .listen(ListenKind::Unix)
        .server(echo.spec())
        .start();
    let Target::Unix(path) = &pen.listen else {
        unreachable!()
    };
    let mut c = connect_unix(path);
    c.write_all(b"over unix").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_eof(&mut c), "over unix");
}

#[test]
fn idle_timeout_closes_an_idle_connection() {
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-O", "idle_timeout 1"])
        .server(echo.spec())
        .start();
    let mut c = pen.connect();
    c.write_all(b"hi").expect("write");
    assert_eq!(peek(&mut c, WAIT), Peek::Data(b"hi".to_vec()));
    assert_eq!(
        peek(&mut c, Duration::from_secs(5)),
        Peek::Closed,
        "idle for 1 s: pen closes"
    );
}

#[test]
fn tcp_fastclose_both_closes_on_client_half_close() {
    let lingering = Backend::linger();
    // Without fastclose: the half-close is passed on and the other direction stays open.
    let plain = PenBuilder::new().server(lingering.spec()).start();
    let mut c = plain.connect();
    c.write_all(b"x").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(
        peek(&mut c, Duration::from_millis(500)),
        Peek::Quiet,
        "half-close only"
    );
    // With fastclose both: the client's half-close closes the whole connection.
    let fast = PenBuilder::new()
        .opts(&["-O", "tcp_fastclose both"])
        .server(lingering.spec())
        .start();
    let mut c = fast.connect();
    c.write_all(b"x").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(
        peek(&mut c, Duration::from_secs(3)),
        Peek::Closed,
        "fastclose both"
    );
}

#[test]
fn server_half_close_keeps_the_client_direction_open() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let server = Backend::greet_then_count("bye", results.clone());
    let pen = PenBuilder::new().server(server.spec()).start();
    let mut c = pen.connect();
    long_timeouts(&c);
    // The server said its piece and half-closed: we see EOF but may still send.
    assert_eq!(read_to_eof(&mut c), "bye");
    let sent = write_stream(&mut c, 7, 1024 * 1024).expect("write after the server's half-close");
    c.shutdown(Shutdown::Write).expect("shutdown");
    let got = wait_for(WAIT, "the server to count our bytes", || {
        results.lock().expect("lock").first().copied()
    });
    assert_eq!(
        got,
        (sent, 1024 * 1024),
        "bytes sent after the server's half-close"
    );
}
