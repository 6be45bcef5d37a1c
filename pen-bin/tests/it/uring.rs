//! The io_uring engine (`--engine uring`, issue 15) [ours]: it runs where asked (its worker
//! threads are named `pen-uring-N`), the epoll engine runs instead (with a log line) where a
//! feature it lacks is on at start, and a worker hands new connections to the epoll engine
//! when such a feature is turned on later. The rest of the suite runs against it with
//! `PEN_TEST_ENGINE=uring` (docs/io_uring.md).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    connect, is_c_pen, pen_bin, read_sum, read_to_eof, run_bounded_full, wait_for, write_stream,
    PenBuilder, WAIT,
};

/// The names of `pid`'s threads.
fn threads(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// Whether `pid` has a thread named `name`.
fn has_thread(pid: u32, name: &str) -> bool {
    threads(pid).iter().any(|t| t == name)
}

/// Whether pen has (or within [`WAIT`] gets) a thread of that name: a thread takes its name
/// a moment after it starts, so right after start-up it may still be called `pen`.
fn thread_up(pid: u32, name: &str) -> bool {
    super::harness::poll_until(WAIT, || has_thread(pid, name).then_some(())).is_some()
}

/// Whether `pen`, started with `--engine uring`, said that this build or this kernel has no
/// io_uring engine (a `--features portable-poller` build, a kernel without io_uring): then
/// there is nothing of the engine to test.
fn no_uring_here(pen: &super::harness::Pen) -> bool {
    let t = pen.log_text();
    t.contains("--engine uring: this build") || t.contains("--engine uring: io_uring (")
}

/// A backend that sends back the request head it got, then closes.
fn head_echo() -> Backend {
    Backend::custom(|mut s: TcpStream| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        let _ = s.write_all(&head);
    })
}

/// One request through `pen`; the head the server saw.
fn seen_head(pen: &super::harness::Pen) -> String {
    let mut c = connect(pen.addr());
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("send");
    read_to_eof(&mut c)
}

#[test]
fn uring_engine_runs_when_asked_and_relays_both_ways_byte_exact() {
    if is_c_pen() {
        return;
    }
    let b = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["--engine", "uring", "--workers", "1"])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    assert!(
        thread_up(pen.pid, "pen-uring-0"),
        "threads: {:?}",
        threads(pen.pid)
    );
    let mut c = connect(pen.addr());
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let len = 4 << 20;
    let reader = {
        let mut r = c.try_clone().expect("clone");
        std::thread::spawn(move || read_sum(&mut r).expect("read"))
    };
    let mut sent = Vec::with_capacity(len);
    let sum = write_stream(&mut sent, 15, len).expect("stream");
    c.write_all(&sent).expect("send");
    c.shutdown(Shutdown::Write).expect("half-close");
    let (got, n) = reader.join().expect("reader");
    assert_eq!(n, len);
    assert_eq!(got, sum, "the echo came back byte-exact");
    // Counted as by the epoll engine: one connection, its bytes both ways.
    let sx = pen.metric("pen_server_sent_bytes_total{server=\"0\"}");
    let rx = pen.metric("pen_server_received_bytes_total{server=\"0\"}");
    if let (Some(sx), Some(rx)) = (sx, rx) {
        assert_eq!((sx, rx), (len as f64, len as f64));
    }
    drop(c);
    assert!(has_thread(pen.pid, "pen-uring-0"), "still the uring engine");
}

#[test]
fn uring_engine_with_the_access_log_runs_epoll_and_says_why() {
    if is_c_pen() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pen-it-uring-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("access.log");
    let b = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&[
            "--engine",
            "uring",
            "--workers",
            "1",
            "-l",
            &log.display().to_string(),
        ])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    assert!(thread_up(pen.pid, "pen-worker-0"), "{:?}", threads(pen.pid));
    assert!(!has_thread(pen.pid, "pen-uring-0"));
    let text = pen.log_text();
    assert!(
        text.contains("access log (-l) is on") && text.contains("using epoll"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn turning_http_on_sends_new_connections_to_the_epoll_engine() {
    if is_c_pen() {
        return;
    }
    let b = head_echo();
    let pen = PenBuilder::new()
        .opts(&["--engine", "uring", "--workers", "1"])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    let before = seen_head(&pen);
    assert!(before.starts_with("GET / "), "{before:?}");
    assert!(!before.contains("X-Forwarded-For"), "{before:?}");
    assert_eq!(pen.ctl("http").trim(), "");
    // The very next connection is rewritten: it is the epoll engine's.
    let after = seen_head(&pen);
    assert!(after.contains("X-Forwarded-For: 127.0.0.1"), "{after:?}");
    wait_for(WAIT, "the epoll worker", || {
        has_thread(pen.pid, "pen-worker-0").then_some(())
    });
    assert!(pen.log_text().contains("HTTP mode (-H) is on"));
}

#[test]
fn a_proxy_header_to_a_server_sends_new_connections_to_the_epoll_engine() {
    // The io_uring engine sends no PROXY header (issue 14): once a server wants one, the
    // next client must be the epoll engine's, or the server would get no header.
    if is_c_pen() {
        return;
    }
    let b = head_echo();
    let pen = PenBuilder::new()
        .opts(&["--engine", "uring", "--workers", "1"])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    assert!(seen_head(&pen).starts_with("GET / "));
    assert_eq!(pen.ctl("server 0 proxy v1").trim(), "");
    let after = seen_head(&pen);
    assert!(after.starts_with("PROXY TCP4 127.0.0.1 "), "{after:?}");
    assert!(pen.log_text().contains("PROXY header"));
}

#[test]
fn accept_proxy_at_start_runs_the_epoll_engine() {
    if is_c_pen() {
        return;
    }
    let b = head_echo();
    let pen = PenBuilder::new()
        .opts(&[
            "--engine",
            "uring",
            "--workers",
            "1",
            "-O",
            "acl 1 permit 127.0.0.1",
            "-O",
            "accept_proxy 1",
        ])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    assert!(
        !has_thread(pen.pid, "pen-uring-0"),
        "{:?}",
        threads(pen.pid)
    );
    let mut c = connect(pen.addr());
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\r\nGET / HTTP/1.0\r\n\r\n")
        .expect("send");
    let seen = read_to_eof(&mut c);
    assert!(seen.starts_with("GET / "), "{seen:?}");
    assert!(pen.log_text().contains("accept_proxy is on"));
}

#[test]
fn an_unknown_engine_is_a_usage_error() {
    if is_c_pen() {
        return;
    }
    let args: Vec<String> = ["-f", "--engine", "kqueue", "127.0.0.1:0", "127.0.0.1:1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (_out, err, code) = run_bounded_full(&pen_bin(), &args, WAIT);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--engine") && err.contains("epoll or uring"),
        "{err}"
    );
}

/// More bulk streams at once than the worker has large buffers for (16, docs/io_uring.md):
/// each direction moves to large buffers while it keeps filling small ones, those that find
/// the large pool empty go on with small ones, and every stream comes back byte-exact.
#[test]
fn many_bulk_streams_at_once_share_the_large_buffers_byte_exact() {
    if is_c_pen() {
        return;
    }
    let b = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["--engine", "uring", "--workers", "1"])
        .server(b.spec())
        .start();
    if no_uring_here(&pen) {
        return;
    }
    let len = 3 << 20;
    let streams: Vec<_> = (0..12u64)
        .map(|seed| {
            let c = connect(pen.addr());
            c.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let reader = {
                let mut r = c.try_clone().expect("clone");
                std::thread::spawn(move || read_sum(&mut r).expect("read"))
            };
            let writer = std::thread::spawn(move || {
                let mut w = c;
                let sum = write_stream(&mut w, 100 + seed, len).expect("stream");
                w.shutdown(Shutdown::Write).expect("half-close");
                sum
            });
            (writer, reader)
        })
        .collect();
    for (i, (writer, reader)) in streams.into_iter().enumerate() {
        let sum = writer.join().expect("writer");
        let (got, n) = reader.join().expect("reader");
        assert_eq!(n, len, "stream {i}: every byte back");
        assert_eq!(got, sum, "stream {i}: byte-exact");
    }
    let sx = pen.metric("pen_server_sent_bytes_total{server=\"0\"}");
    if let Some(sx) = sx {
        assert_eq!(sx, (12 * len) as f64);
    }
}
