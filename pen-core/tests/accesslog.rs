//! The access log: line format, prompt delivery, rotation under traffic without loss.

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
use common::{echo_backend, wait_until};

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pen_core::addr::{ListenAddr, ServerSpec};
use pen_core::{Balancer, Config};

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("pen-log-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn start(backend: SocketAddr, log: Option<&Path>) -> (Balancer, SocketAddr) {
    let spec = ServerSpec {
        addr: backend,
        max: 0,
        hard: 0,
        weight: 0,
        prio: 0,
    };
    let mut c = Config::new(
        ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 0))),
        vec![spec],
    );
    c.workers = 2;
    c.conn_max = 1000;
    c.settings.log = log.map(|p| p.display().to_string());
    let b = Balancer::start(c).unwrap();
    let ListenAddr::Inet(a) = b.listen_addr() else {
        unreachable!()
    };
    (b, a)
}

/// One request: a connection sending `line`, reading the echo, closing.
fn request(addr: SocketAddr, line: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, line);
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn lines_arrive_promptly_in_the_documented_format() {
    let dir = scratch("format");
    let log = dir.join("pen.log");
    let backend = echo_backend();
    let (b, addr) = start(backend, Some(&log));
    request(addr, "GET /x HTTP/1.0\r\n\r\n");
    // Flushed within the half-second batch interval (bounded wait, not a timing assertion).
    wait_until("the log line", || read(&log).lines().count() == 1);
    let text = read(&log);
    let w: Vec<&str> = text.trim_end().splitn(4, ' ').collect();
    assert_eq!(w[0], "127.0.0.1");
    assert!(w[1].parse::<u64>().unwrap() > 1_700_000_000, "{text}");
    assert_eq!(w[2], backend.ip().to_string());
    assert_eq!(w[3], "GET /x HTTP/1.0");
    // `no log` stops it; `log FILE` starts another file, live.
    assert_eq!(b.apply("no log").unwrap(), "");
    request(addr, "quiet\n");
    let other = dir.join("other.log");
    assert_eq!(
        b.apply(&format!("log {}", other.display())).unwrap(),
        format!("{}\n", other.display())
    );
    request(addr, "loud\n");
    wait_until("the second file", || read(&other).contains(" loud\n"));
    b.stop();
    assert_eq!(read(&log).lines().count(), 1, "nothing logged while off");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rotation_under_traffic_loses_no_line() {
    let dir = scratch("rotate");
    let log = dir.join("pen.log");
    let rotated = dir.join("pen.log.1");
    let (b, addr) = start(echo_backend(), Some(&log));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
            thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    request(addr, &format!("REQ {t}-{i}\n"));
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    wait_until("traffic", || sent.load(Ordering::Relaxed) >= 300);
    // Rotate as an operator would: mv, then SIGHUP (reopen).
    std::fs::rename(&log, &rotated).unwrap();
    b.reopen_log().unwrap();
    let at_rotation = sent.load(Ordering::Relaxed);
    wait_until("traffic after the rotation", || {
        sent.load(Ordering::Relaxed) >= at_rotation + 300
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    b.stop(); // flushes every worker's pending lines
    let total = sent.load(Ordering::Relaxed);
    let (old, new) = (read(&rotated), read(&log));
    assert!(
        !new.is_empty(),
        "the reopened file gets the lines after the rotation"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in old.lines().chain(new.lines()) {
        let req = line.splitn(4, ' ').nth(3).unwrap_or_default().to_string();
        *seen.entry(req).or_default() += 1;
    }
    assert_eq!(
        old.lines().count() + new.lines().count(),
        total,
        "one line per request"
    );
    assert_eq!(seen.len(), total, "each request logged exactly once");
    assert!(seen.values().all(|&n| n == 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn host_port_sends_each_request_to_a_udp_collector_as_penlogd_datagrams() {
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = collector.local_addr().unwrap().to_string();
    let (b, addr) = start(echo_backend(), None);
    assert_eq!(
        b.apply(&format!("log {target}")).unwrap(),
        format!("{target}\n")
    );
    request(addr, "one\n");
    request(addr, "two\n");
    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    while lines.len() < 2 {
        let n = collector.recv(&mut buf).expect("a datagram within 10 s");
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    lines.sort();
    // penlogd's datagram format, as C pen sends it: `+ CLIENT SERVER FIRST_LINE`.
    assert_eq!(
        lines,
        ["+ 127.0.0.1 127.0.0.1 one\n", "+ 127.0.0.1 127.0.0.1 two\n"]
    );
    b.stop();
}
