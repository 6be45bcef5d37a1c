//! Issue 13, lifecycle: graceful shutdown (SIGQUIT) and the zero-downtime binary upgrade
//! (SIGUSR2). C pen 0.34.1 dies on both (default action), so these are ours only.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    connect_unix, is_c_pen, pace, poll_until, read_sum, wait_for, write_stream, ListenKind,
    PenBuilder, ScratchDir, Target,
};

/// The pid in `path` (without a newline, as C pen writes it), if it holds one.
pub(super) fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists and is not a zombie.
pub(super) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `sig` to `pid` with kill(1).
fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s {sig} {pid}");
}

/// Stops the pen a test upgraded to (not the harness's child any more) and waits for it.
pub(super) struct Upgraded(pub(super) Option<u32>);

impl Drop for Upgraded {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|p| alive(*p)) {
            kill("TERM", pid);
            poll_until(Duration::from_secs(5), || (!alive(pid)).then_some(()));
        }
    }
}

/// A backend that reads one line, tells the test, then sends `len` bytes of the stream 7 and
/// closes: the first connection once the test says go (at most 10 s), any later one (a probe
/// pen took before it stopped accepting) after that.
fn held_reply(len: usize, got: mpsc::Sender<()>, go: mpsc::Receiver<()>) -> Backend {
    let (got, go) = (Mutex::new(got), Mutex::new(Some(go)));
    Backend::custom(move |mut s: TcpStream| {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
        let _ = got.lock().expect("lock").send(());
        if let Some(go) = go.lock().expect("lock").take() {
            let _ = go.recv_timeout(Duration::from_secs(10));
        }
        let _ = write_stream(&mut s, 7, len);
    })
}

#[test]
fn sigquit_lets_connections_finish_refuses_new_ones_and_exits() {
    if is_c_pen() {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let (go, wait_go) = mpsc::channel();
    const LEN: usize = 300_000;
    let backend = held_reply(LEN, tx, wait_go);
    let mut pen = PenBuilder::new().server(backend.spec()).start();
    let mut client = TcpStream::connect(pen.addr()).expect("connect");
    client.write_all(b"go\n").expect("send");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the backend got the request");
    pen.signal("QUIT");
    // New clients are refused once pen has stopped accepting (bounded wait).
    let addr = pen.addr().to_string();
    wait_for(
        Duration::from_secs(3),
        "connections refused",
        || match TcpStream::connect(&addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    );
    // The one in flight (its server has not answered yet) completes, whole.
    go.send(()).expect("the backend waits");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (sum, n) = read_sum(&mut client).expect("the reply");
    let want = write_stream(&mut std::io::sink(), 7, LEN).expect("checksum");
    assert_eq!((sum.0, n), (want.0, LEN), "the reply arrived whole");
    // Closed both ways (pen passed the server's half-close on and waits for the client's).
    drop(client);
    let status = pen
        .wait_exit(Duration::from_secs(5))
        .expect("pen exits once its last connection is done");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigquit_closes_a_hung_connection_at_shutdown_timeout() {
    if is_c_pen() {
        return;
    }
    let backend = Backend::hold();
    let mut pen = PenBuilder::new()
        .opts(&["-O", "shutdown_timeout 1"])
        .server(backend.spec())
        .start();
    let mut client = TcpStream::connect(pen.addr()).expect("connect");
    client.write_all(b"x").expect("send");
    wait_for(Duration::from_secs(3), "the connection open", || {
        (!backend.held().is_empty()).then_some(())
    });
    let t0 = Instant::now();
    pen.signal("QUIT");
    let status = pen
        .wait_exit(Duration::from_secs(10))
        .expect("pen exits at the shutdown timeout");
    assert!(status.success(), "exit status {status:?}");
    // Not before the timeout: the connection was given its second.
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut b = [0u8; 8];
    assert!(matches!(client.read(&mut b), Ok(0) | Err(_)), "closed");
}

/// One short request through pen: `len` bytes out, the same back, checksummed.
fn exchange(addr: &str, seed: u64, len: usize) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let sent = write_stream(&mut s, seed, len).map_err(|e| format!("send: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let (got, n) = read_sum(&mut s).map_err(|e| format!("read: {e}"))?;
    if got.0 != sent.0 || n != len {
        return Err(format!("{n} of {len} bytes, checksum differs"));
    }
    Ok(())
}

/// Upgrades pen by SIGUSR2 to the pid its pid file names, and waits for the new pid there.
pub(super) fn upgrade(pid_path: &std::path::Path, old: u32) -> u32 {
    kill("USR2", old);
    wait_for(
        Duration::from_secs(15),
        "the new pid in the pid file",
        || read_pid(pid_path).filter(|p| *p != old && alive(*p)),
    )
}

#[test]
fn sigusr2_upgrades_twenty_times_under_load_dropping_nothing() {
    if is_c_pen() {
        return;
    }
    let backend = Backend::echo();
    let pen = PenBuilder::new().pid_file().server(backend.spec()).start();
    let pid_path = pen.pid_path();
    let addr = pen.addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    // Four generators, each up to ~160 connections/s: a 1 KiB request echoed and checksummed
    // (four, so the rate stays over 200/s on a loaded machine).
    let load: Vec<_> = (0..4u64)
        .map(|t| {
            let (addr, stop, done, errors) = (
                addr.clone(),
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&errors),
            );
            thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    seq += 1;
                    match exchange(&addr, t * 1_000_000 + seq, 1024) {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().expect("lock").push(e),
                    }
                    if let Some(rest) = Duration::from_millis(6).checked_sub(t0.elapsed()) {
                        pace(rest);
                    }
                }
            })
        })
        .collect();
    let mut guard = Upgraded(None);
    let t0 = Instant::now();
    let mut pid = pen.pid;
    let mut pids = vec![pid];
    for _ in 0..20 {
        // Connections flow through every pen: a few complete before each upgrade.
        let before = done.load(Ordering::Relaxed);
        wait_for(
            Duration::from_secs(10),
            "connections through this pen",
            || (done.load(Ordering::Relaxed) >= before + 5).then_some(()),
        );
        pid = upgrade(&pid_path, pid);
        guard.0 = Some(pid);
        pids.push(pid);
    }
    // The last one serves under load too.
    let before = done.load(Ordering::Relaxed);
    wait_for(
        Duration::from_secs(10),
        "connections through the last pen",
        || (done.load(Ordering::Relaxed) >= before + 5).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let errors = errors.lock().expect("lock").clone();
    assert!(
        errors.is_empty(),
        "{} failed of {n}: {errors:?}",
        errors.len()
    );
    let rate = n as f64 / secs;
    eprintln!("upgrade under load: {n} connections in {secs:.1} s ({rate:.0}/s), 20 upgrades");
    // A precondition of what this test shows: the upgrades happened under at least 200 new
    // connections a second (every one checksummed, none refused or reset). The generators aim
    // at ~640/s; a machine too loaded to open 200/s cannot show it, and the test says so
    // rather than pass on less.
    assert!(
        rate >= 200.0,
        "precondition not met: the load generators opened only {rate:.0} connections/s \
         ({n} in {secs:.1} s), under the 200/s this test must upgrade under; the machine is \
         too loaded (run this test alone: cargo test -p pen-bin --test integration \
         sigusr2_upgrades_twenty_times)"
    );
    // The old ones are gone; the last one serves and its pid is in the file.
    for old in &pids[..pids.len() - 1] {
        wait_for(Duration::from_secs(10), "the old pen gone", || {
            (!alive(*old)).then_some(())
        });
    }
    assert_eq!(read_pid(&pid_path), Some(pid));
    exchange(&addr, 99, 4096).expect("the last pen serves");
}

#[test]
fn failed_upgrade_keeps_the_old_pen_serving_and_says_why() {
    if is_c_pen() {
        return;
    }
    let backend = Backend::echo();
    let dir = ScratchDir::new("upgrade-bad");
    let conf = dir.0.join("pen.conf");
    std::fs::write(&conf, "timeout 5\n").expect("write -F");
    let conf_arg = conf.display().to_string();
    let pen = PenBuilder::new()
        .pid_file()
        .opts(&["-F", &conf_arg])
        .server(backend.spec())
        .start();
    let pid_path = pen.pid_path();
    let mut guard = Upgraded(None);
    std::fs::write(&conf, "timeout banana\n").expect("break -F");
    pen.signal("USR2");
    wait_for(Duration::from_secs(15), "the failure logged", || {
        pen.log_text().contains("upgrade failed").then_some(())
    });
    let log = pen.log_text();
    assert!(log.contains("banana"), "says why: {log}");
    assert_eq!(read_pid(&pid_path), Some(pen.pid), "the pid file stays");
    exchange(pen.addr(), 1, 2048).expect("the old pen serves on");
    // Fixed, the next upgrade goes through.
    std::fs::write(&conf, "timeout 5\n").expect("fix -F");
    let new = upgrade(&pid_path, pen.pid);
    guard.0 = Some(new);
    exchange(pen.addr(), 2, 2048).expect("the new pen serves");
}

#[test]
fn penctl_upgrade_hands_over_unix_sockets_and_running_configuration() {
    if is_c_pen() {
        return;
    }
    let backend = Backend::echo();
    let other = Backend::echo();
    let mut pen = PenBuilder::new()
        .listen(ListenKind::Unix)
        .control_unix()
        .pid_file()
        .server(backend.spec())
        .server(other.spec())
        .start();
    let Target::Unix(sock) = pen.listen.clone() else {
        panic!("a Unix listener");
    };
    // A penctl change survives the upgrade (the running configuration moves).
    pen.ctl("blacklist 77");
    pen.ctl("server 0 weight 7");
    pen.ctl("server 1 blacklist 500");
    let reply = pen.ctl("upgrade");
    let new: u32 = reply
        .strip_prefix("upgrade: pid ")
        .and_then(|r| r.strip_suffix(" serves\n"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("reply {reply:?}"));
    let _guard = Upgraded(Some(new));
    let status = pen
        .wait_exit(Duration::from_secs(10))
        .expect("the old pen exits");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(read_pid(&pen.pid_path()), Some(new));
    // The socket files were left to the new pen, which answers on both.
    let mut s = connect_unix(&sock);
    s.write_all(b"through the unix socket").expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("echo");
    assert_eq!(got, "through the unix socket");
    assert_eq!(pen.ctl("shutdown_timeout"), "30\n");
    assert_eq!(pen.ctl("blacklist"), "77\n");
    let servers = pen.ctl("servers");
    assert!(servers.contains("weight 7"), "{servers}");
    // The blacklisting too (ours marks it on the server's line).
    let line1 = servers.lines().nth(1).unwrap_or_default();
    assert!(line1.contains("blacklisted"), "{servers}");
    assert_eq!(pen.ctl("pid"), format!("{new}\n"));
}

#[test]
fn penctl_shutdown_drains_then_exits_and_refuses_a_second_one() {
    if is_c_pen() {
        return;
    }
    let backend = Backend::hold();
    let mut pen = PenBuilder::new().server(backend.spec()).start();
    let mut client = TcpStream::connect(pen.addr()).expect("connect");
    client.write_all(b"x").expect("send");
    wait_for(Duration::from_secs(3), "the connection open", || {
        (!backend.held().is_empty()).then_some(())
    });
    assert_eq!(pen.ctl("shutdown 30"), "");
    // The control socket still answers while connections drain.
    assert_eq!(
        pen.ctl("shutdown"),
        "shutdown: an upgrade or shutdown is already under way\n"
    );
    assert!(
        pen.wait_exit(Duration::from_millis(300)).is_none(),
        "drains"
    );
    drop(client);
    for s in backend.held() {
        let _ = s.shutdown(Shutdown::Both);
    }
    let status = pen
        .wait_exit(Duration::from_secs(10))
        .expect("pen exits once the connection is done");
    assert!(status.success(), "exit status {status:?}");
}

/// A reproducible byte stream per connection (xorshift): a lost, duplicated or reordered byte
/// shows at its position.
struct Bytes(u64);

impl Bytes {
    fn new(seed: u64) -> Self {
        Bytes(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u8 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as u8
    }
}

/// The reply the half-closed connection gets after the upgrades.
const HALF_REPLY: usize = 100_000;

/// Echo; but a connection whose first byte is `H` is read to its end (the test hears of it),
/// then, once `go` is set, gets [`HALF_REPLY`] bytes of stream 7777 and is closed.
fn handoff_backend(eof_seen: mpsc::Sender<()>, go: Arc<AtomicBool>) -> Backend {
    let eof_seen = Mutex::new(eof_seen);
    Backend::custom(move |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let mut buf = vec![0u8; 16 * 1024];
        let mut first = true;
        let mut half = false;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if first && buf[0] == b'H' {
                        half = true;
                    }
                    first = false;
                    if !half && s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        if half {
            let _ = eof_seen.lock().expect("lock").send(());
            poll_until(Duration::from_secs(60), || {
                go.load(Ordering::Relaxed).then_some(())
            });
            let _ = write_stream(&mut s, 7777, HALF_REPLY);
        }
        let _ = s.shutdown(Shutdown::Write);
    })
}

#[test]
fn sigusr2_hands_live_connections_over_byte_exact_and_the_old_pen_exits_at_once() {
    if is_c_pen() {
        return;
    }
    handoff_under_streams(&[], true);
}

/// With `splice`: a connection moves when its kernel pipes are empty at the handover (usual:
/// a pipe is drained into the destination at once), one whose pipe holds bytes stays in the
/// old pen, which then waits for it (so no bound on the old pen's exit here). Every byte
/// arrives once, in order, wherever its connection went.
#[test]
fn sigusr2_handoff_with_splice_keeps_every_byte() {
    if is_c_pen() {
        return;
    }
    handoff_under_streams(&["--splice", "always"], false);
}

/// 50 connections streaming both ways and one half closed, through 5 upgrades by SIGUSR2;
/// `quick`: each old pen must be gone within 2 s of its successor's pid appearing.
fn handoff_under_streams(opts: &[&str], quick: bool) {
    let go = Arc::new(AtomicBool::new(false));
    let (eof_tx, eof_rx) = mpsc::channel();
    let backend = handoff_backend(eof_tx, Arc::clone(&go));
    let pen = (PenBuilder::new().pid_file().opts(opts))
        .server(backend.spec())
        .start();
    let pid_path = pen.pid_path();
    let addr = pen.addr().to_string();
    // One connection half closed before the upgrades: the client has said all it will, the
    // server's reply comes after them.
    let mut half = TcpStream::connect(&addr).expect("connect");
    half.set_read_timeout(Some(Duration::from_secs(30))).ok();
    half.write_all(b"H").expect("send");
    write_stream(&mut half, 5, 10_000).expect("send");
    half.shutdown(Shutdown::Write).expect("half close");
    eof_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server sees the client's end");
    // 50 connections streaming both ways, each byte checked where it comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let mut streams = Vec::new();
    for i in 0..50u64 {
        let mut w = TcpStream::connect(&addr).expect("connect");
        let mut r = w.try_clone().expect("clone");
        r.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let stop = Arc::clone(&stop);
        let writer = thread::spawn(move || -> Result<usize, String> {
            let mut g = Bytes::new(i);
            let mut buf = [0u8; 1024];
            let mut sent = 0;
            // `E`: echo (the backend's other mode starts with `H`).
            w.write_all(b"E")
                .map_err(|e| format!("conn {i}: send: {e}"))?;
            while !stop.load(Ordering::Relaxed) {
                buf.iter_mut().for_each(|b| *b = g.next());
                w.write_all(&buf)
                    .map_err(|e| format!("conn {i}: send: {e}"))?;
                sent += buf.len();
                pace(Duration::from_millis(3));
            }
            w.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            Ok(sent)
        });
        let received = Arc::clone(&received);
        let reader = thread::spawn(move || -> Result<usize, String> {
            let mut g = Bytes::new(i);
            let mut buf = [0u8; 8192];
            let mut n = 0;
            let mut mode = [0u8];
            r.read_exact(&mut mode)
                .map_err(|e| format!("conn {i}: read: {e}"))?;
            if mode != *b"E" {
                return Err(format!("conn {i}: the mode byte differs"));
            }
            loop {
                let got = match r.read(&mut buf) {
                    Ok(0) => return Ok(n),
                    Ok(got) => got,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("conn {i}: read after {n} bytes: {e}")),
                };
                for (k, b) in buf[..got].iter().enumerate() {
                    if *b != g.next() {
                        return Err(format!("conn {i}: byte {} differs", n + k));
                    }
                }
                n += got;
                received.fetch_add(got, Ordering::Relaxed);
            }
        });
        streams.push((writer, reader));
    }
    let flowing = |what: &str| {
        let before = received.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(10), what, || {
            (received.load(Ordering::Relaxed) >= before + 1024 * 1024).then_some(())
        });
    };
    let mut guard = Upgraded(None);
    let mut pid = pen.pid;
    let mut exits = Vec::new();
    for k in 0..5 {
        flowing("bytes flowing through this pen");
        let new = upgrade(&pid_path, pid);
        // From the new pid in the pid file to the old process gone (within a poll interval).
        let t0 = Instant::now();
        guard.0 = Some(new);
        poll_until(Duration::from_secs(5), || (!alive(pid)).then_some(()));
        let took = t0.elapsed();
        // Everything moved: the old pen does not wait for its connections (shutdown_timeout
        // is 30 s).
        assert!(
            !alive(pid) || !quick,
            "upgrade {k}: the old pen {pid} still runs {took:?} after pid {new} took over"
        );
        exits.push(took);
        pid = new;
    }
    let max = exits.iter().max().copied().unwrap_or_default();
    eprintln!("handoff {opts:?}: old pen gone after the new pid appeared: {exits:?} (max {max:?})");
    // Measured on the shared 2-core machine at a load average of 10 (other builds running):
    // 13-178 ms plain, 37-179 ms with splice (the state and 51 connections sent, the old
    // workers joined, exit). The bound is a second.
    assert!(
        max < Duration::from_secs(1) || !quick,
        "the old pen took {max:?} to exit after handing over: {exits:?}"
    );
    flowing("bytes flowing through the last pen");
    // The half-closed connection's reply, after the upgrades, whole.
    go.store(true, Ordering::Relaxed);
    let want = write_stream(&mut std::io::sink(), 7777, HALF_REPLY).expect("sum");
    let (got, n) = read_sum(&mut half).expect("the reply");
    assert_eq!(
        (n, got.0),
        (HALF_REPLY, want.0),
        "the half-closed connection"
    );
    stop.store(true, Ordering::Relaxed);
    for (i, (writer, reader)) in streams.into_iter().enumerate() {
        let sent = writer.join().expect("writer").expect("sent");
        let got = reader.join().expect("reader").expect("received");
        assert_eq!(got, sent, "conn {i}: bytes back");
    }
    assert_eq!(read_pid(&pid_path), Some(pid));
}
