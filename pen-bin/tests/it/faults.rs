//! Fault injection against the real binary: servers that die, go silent, never accept or reset
//! mid-stream; control clients that send garbage or vanish mid-command; SIGHUP storms under
//! traffic. Each test is bounded by socket timeouts and `wait_for` limits. Tests are numbered
//! (1)..(9) as the items of the fault-injection issue; (4)-(7) are in `faults_load`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::backends::{abort, Backend, FullQueue};
use super::harness::{
    connect, is_c_pen, pace, peek, peer_has_read, read_to_eof, stream_sum, wait_for, write_stream,
    Fnv, Peek, Pen, PenBuilder, Prng, ScratchDir, WAIT,
};

/// [ours] Seconds left of server `n`'s blacklisting per `servers`, if blacklisted.
fn blacklisted(pen: &Pen, n: usize) -> Option<u64> {
    let lines = pen.servers();
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("{n} addr ")))?;
    let (_, rest) = line.split_once(" blacklisted ")?;
    rest.trim().parse().ok()
}

/// The `conn` field of server `n`'s `servers` line.
fn server_conns(pen: &Pen, n: usize) -> Option<u64> {
    let lines = pen.servers();
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("{n} addr ")))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "conn")?;
    words.next()?.parse().ok()
}

/// Waits until pen relays no connection any more.
fn wait_idle(pen: &Pen) {
    wait_for(WAIT, "no active connection", || {
        (pen.metric("pen_connections_active") == Some(0.0)).then_some(())
    });
}

/// Reads until EOF or a reset; returns (checksum, length, ended by reset). Any other error
/// (a read timeout: the connection hangs) fails the test.
fn read_until_closed<R: Read>(r: &mut R) -> (Fnv, usize, bool) {
    read_until_closed_from(r, Fnv::new())
}

/// [`read_until_closed`], continuing the running checksum `h` (the length counts from 0).
fn read_until_closed_from<R: Read>(r: &mut R, mut h: Fnv) -> (Fnv, usize, bool) {
    let mut n = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (h, n, false),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (h, n, true),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {n} bytes: {e} (the connection hangs)"),
        }
    }
}

/// A request through an echo server on a fresh connection.
fn echo_once(pen: &Pen, msg: &str) -> String {
    let mut c = pen.connect();
    c.write_all(msg.as_bytes()).expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    read_to_eof(&mut c)
}

/// One round trip on an open connection through an echo server.
fn ping(c: &mut TcpStream) {
    c.write_all(b"ping").expect("write ping");
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).expect("read ping");
    assert_eq!(&buf, b"ping");
}

/// (1) A server process killed (SIGKILL) in the middle of a transfer.
///
/// The server's death reaches pen as a reset (or EOF) on the server socket: pen closes that
/// client at once (it sees EOF or a reset, never a hang, and every byte it got is the right
/// one), and other clients, on another server, go on untouched.
///
/// Server state: pen blacklists a server when a *connect* to it fails (refused, timed out),
/// not when an established connection ends badly: a server closing or resetting one
/// connection says nothing certain about the next one (and a client can cause it). So right
/// after the kill server 0 is not blacklisted and its connection count is back to 0; the next
/// client routed to it finds the port refusing, fails over invisibly, and that failed connect
/// blacklists server 0 (as C pen does).
#[test]
fn server_killed_mid_transfer_closes_its_client_and_spares_others() {
    if is_c_pen() {
        return; // [ours] metrics and blacklisting in `servers`
    }
    // Server 0 is a process of its own (a second pen in front of an echo thread), so that it
    // can really be killed; server 1 is an echo thread.
    let e0 = Backend::echo();
    let server0 = PenBuilder::new().server(e0.spec()).start();
    let e1 = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-r", "-b", "30"])
        .server(server0.addr())
        .server(e1.spec())
        .start();
    // Round robin: of two clients, one goes to each server; find out which is which.
    let mut a = pen.connect();
    ping(&mut a);
    let a_on_0 = e0.accepted() == 1;
    let mut b = pen.connect();
    ping(&mut b);
    assert_eq!((e0.accepted(), e1.accepted()), (1, 1), "one client each");
    let (victim, mut bystander) = if a_on_0 { (a, b) } else { (b, a) };

    // The victim streams (writer thread) and reads its echo back; the server dies under it.
    let seed = 0xdead;
    let mut w = victim.try_clone().expect("clone");
    let writer = thread::spawn(move || write_stream(&mut w, seed, 256 * 1024 * 1024));
    let mut r = victim;
    let mut h = Fnv::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 2 * 1024 * 1024 {
        let k = r.read(&mut buf).expect("echo before the kill");
        assert!(k > 0, "EOF before the kill");
        h.update(&buf[..k]);
        got += k;
    }
    server0.signal("KILL");
    let killed = Instant::now();
    let (h, more, reset) = read_until_closed_from(&mut r, h);
    let closed_after = killed.elapsed();
    let total = got + more;
    assert_eq!(
        h,
        stream_sum(seed, total),
        "the {total} bytes echoed are the ones sent"
    );
    let wrote = writer.join().expect("writer");
    match &wrote {
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the writer must be cut off, not left blocked: {e}"
        ),
        Ok(_) => panic!("256 MiB cannot have gone through a dead server"),
    }
    eprintln!(
        "server killed after {got} bytes: client closed {closed_after:?} later by {} after {total} bytes; writer: {}",
        if reset { "a reset" } else { "EOF" },
        wrote.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // The bystander, on server 1, is unaffected: 8 MiB both ways, byte-exact.
    ping(&mut bystander);
    let mut w = bystander.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let sum = write_stream(&mut w, 77, 8 << 20).expect("bystander write");
        w.shutdown(Shutdown::Write).expect("shutdown");
        sum
    });
    let (h, n, reset) = read_until_closed(&mut bystander);
    assert_eq!((n, reset), (8 << 20, false), "bystander's echo complete");
    assert_eq!(
        h,
        writer.join().expect("writer"),
        "bystander's bytes intact"
    );

    // The dead server: not blacklisted by the broken connection, its count released.
    wait_for(WAIT, "server 0's connection released", || {
        (server_conns(&pen, 0) == Some(0)).then_some(())
    });
    wait_idle(&pen);
    assert_eq!(blacklisted(&pen, 0), None, "{:?}", pen.servers());
    assert_eq!(pen.metric("pen_blacklistings_total"), Some(0.0));
    // New clients: all served (one of them after an invisible failover), and the refused
    // connect blacklists server 0.
    for i in 0..4 {
        assert_eq!(
            echo_once(&pen, "after"),
            "after",
            "client {i} after the kill"
        );
    }
    assert!(
        blacklisted(&pen, 0).is_some(),
        "a refused connect blacklists the dead server: {:?}",
        pen.servers()
    );
    assert_eq!(blacklisted(&pen, 1), None);
    assert_eq!(pen.metric("pen_blacklistings_total"), Some(1.0));
}

/// (2a) A server that accepts and never answers: the idle timeout closes a silent connection
/// after about `idle_timeout` seconds (both sides: the client sees EOF, the server too), and is
/// counted; a connection whose client keeps sending is not idle, answered or not.
#[test]
fn silent_server_idle_timeout_closes_and_counts() {
    if is_c_pen() {
        return; // [ours] metrics
    }
    let hold = Backend::hold();
    let pen = PenBuilder::new()
        .opts(&["-O", "idle_timeout 2"])
        .server(hold.spec())
        .start();
    let mut silent = pen.connect();
    silent.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let t0 = Instant::now();
    let mut chatty = pen.connect();
    wait_for(WAIT, "both connections at the server", || {
        (hold.accepted() == 2).then_some(())
    });
    // The chatty client sends a byte every 400 ms and never gets an answer either: in between
    // it reads, and sees nothing (an EOF would mean it was cut).
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let mut cw = chatty.try_clone().expect("clone");
    let talker = thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            if cw.write_all(b".").is_err() {
                return false;
            }
            if peek(&mut cw, Duration::from_millis(400)) != Peek::Quiet {
                return false;
            }
        }
        true
    });
    assert_eq!(
        peek(&mut silent, Duration::from_secs(8)),
        Peek::Closed,
        "the silent connection is closed by the idle timeout"
    );
    let took = t0.elapsed();
    eprintln!("idle_timeout 2: silent connection closed after {took:?}");
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_secs(6),
        "closed after {took:?}, expected about 2 s (swept once a second)"
    );
    // pen closed its server side as well.
    let server_ends = hold.held();
    assert_eq!(server_ends.len(), 2);
    let closed_at_server = server_ends
        .iter()
        .filter(|s| {
            let mut s: &TcpStream = s;
            s.set_read_timeout(Some(Duration::from_millis(300))).ok();
            let mut buf = [0u8; 256];
            // Skip what the clients sent; an EOF says pen closed this one.
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => return e.kind() == ErrorKind::ConnectionReset,
                }
            }
        })
        .count();
    assert_eq!(
        closed_at_server, 1,
        "the idle connection's server side closed too"
    );
    assert_eq!(pen.metric("pen_idle_timeouts_total"), Some(1.0));
    stop.store(true, Ordering::SeqCst);
    assert!(
        talker.join().expect("talker"),
        "the chatty client was never cut"
    );
    assert_eq!(
        peek(&mut chatty, Duration::from_millis(100)),
        Peek::Quiet,
        "the chatty connection is still open"
    );
    assert_eq!(pen.metric("pen_connections_active"), Some(1.0));
}

/// (2b) A server that never accepts (its accept queue full: SYNs go unanswered): the connect
/// timeout `-t 1` fires, the client fails over to the other server after about a second, the
/// timeout is counted once, and the blacklisting spares later clients the wait.
#[test]
fn blackholed_server_connect_timeout_fails_over_and_counts() {
    if is_c_pen() {
        return; // [ours] metrics
    }
    let stuck = FullQueue::new();
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-r", "-t", "1", "-b", "30"])
        .server(stuck.spec())
        .server(b.spec())
        .start();
    let mut times = Vec::new();
    for i in 0..4 {
        let t0 = Instant::now();
        assert_eq!(pen.fetch(), "B", "client {i}");
        times.push(t0.elapsed());
    }
    eprintln!("connect timeout -t 1: fetch times {times:?}");
    assert!(
        times.iter().any(|t| *t >= Duration::from_millis(900)),
        "a client waited for the connect timeout: {times:?}"
    );
    // Only one connect timed out: the blacklisting spared the others the wait.
    assert_eq!(pen.metric("pen_connect_timeouts_total"), Some(1.0));
    assert_eq!(pen.metric("pen_failovers_total"), Some(1.0));
    assert!(blacklisted(&pen, 0).is_some(), "{:?}", pen.servers());
}

/// (3) A server that resets (SO_LINGER 0 close) mid-stream, downloading and uploading: the
/// client gets a correct prefix and then EOF or a reset (no hang), its writes are cut off,
/// pen releases the connection and serves the next client. A reset is not a failed connect:
/// no blacklisting.
#[test]
fn server_reset_mid_stream_closes_the_client_cleanly() {
    if is_c_pen() {
        return; // [ours] metrics
    }
    // Download: the server sends 4 MiB, then resets.
    let seed = 0x4e5e7;
    let down = Backend::send_then_reset(seed, 4 << 20);
    let pen = PenBuilder::new().server(down.spec()).start();
    for i in 0..3 {
        let mut c = pen.connect();
        let (h, n, reset) = read_until_closed(&mut c);
        assert!(n <= 4 << 20, "client {i}: {n} bytes");
        assert_eq!(
            h,
            stream_sum(seed, n),
            "client {i}: the {n} bytes are a true prefix"
        );
        eprintln!(
            "server reset after sending 4 MiB: client {i} got {n} bytes, then {}",
            if reset { "a reset" } else { "EOF" }
        );
    }
    wait_idle(&pen);
    assert_eq!(blacklisted(&pen, 0), None, "{:?}", pen.servers());

    // Upload: the server reads 1 MiB of the client's 64 MiB, then resets.
    let got = Arc::new(Mutex::new(Vec::new()));
    let up = Backend::read_then_reset(1 << 20, got.clone());
    let pen = PenBuilder::new().server(up.spec()).start();
    for i in 0..2 {
        let c = pen.connect();
        let mut w = c.try_clone().expect("clone");
        let writer = thread::spawn(move || write_stream(&mut w, 5, 64 << 20));
        let mut r = c;
        let (_, n, reset) = read_until_closed(&mut r);
        assert_eq!(n, 0, "client {i}: the server never sent anything");
        let wrote = writer.join().expect("writer");
        let err = wrote.expect_err("64 MiB cannot go to a server that reset after 1 MiB");
        assert!(
            !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "client {i}: the writer must be cut off, not left blocked: {err}"
        );
        eprintln!(
            "server reset after reading 1 MiB: client {i} saw {}, writer: {err}",
            if reset { "a reset" } else { "EOF" }
        );
    }
    assert_eq!(got.lock().expect("lock").as_slice(), &[1 << 20, 1 << 20]);
    wait_idle(&pen);
    assert_eq!(blacklisted(&pen, 0), None, "{:?}", pen.servers());
    assert_eq!(pen.ctl("pid"), format!("{}\n", pen.pid), "pen runs on");
}

/// Sends `data` to the control socket from a writer thread, reads whatever comes back (EOF or
/// reset end it; a reset is what a peer closing with unread input gets). Returns the reply.
fn control_send(pen: &Pen, data: Vec<u8>, half_close: bool) -> String {
    let c = connect(&pen.control);
    let mut w = c.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let r = w.write_all(&data);
        if half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
        r
    });
    let mut r = c;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("control reply: {e} (the control socket hangs)"),
        }
    }
    let _ = writer.join().expect("writer"); // cut off or not: either is fine
    String::from_utf8_lossy(&out).into_owned()
}

/// (8) Control clients misbehaving: 1 MiB of garbage (with and without newlines), a line
/// without newline left hanging, a client vanishing mid-command. pen keeps running, answers
/// the next control client, and relays throughout.
///
/// What pen makes of a partial line: as C pen, which does one read and executes what came, a
/// line without newline is executed as soon as it arrives, whether the client then waits,
/// closes or resets.
#[test]
fn control_garbage_and_broken_clients_leave_pen_serving() {
    if is_c_pen() {
        return; // [ours] C pen blocks on a control read
    }
    let echo = Backend::echo();
    let pen = PenBuilder::new().server(echo.spec()).start();
    let mut relayed = pen.connect();
    ping(&mut relayed);

    // A client connected and silent. Others are served meanwhile.
    let mut hanging = connect(&pen.control);

    // 1 MiB of binary garbage (newlines included): the first "line" is an error.
    let mut garbage = vec![0u8; 1 << 20];
    Prng::new(99).fill(&mut garbage);
    let reply = control_send(&pen, garbage, true);
    assert!(
        reply.is_empty() || reply.starts_with("error: "),
        "garbage -> {reply:?}"
    );
    // 1 MiB without a newline: what the first read got is the command (an unknown one), or,
    // with more than the longest line waiting, too long a line.
    let reply = control_send(&pen, vec![b'A'; 1 << 20], false);
    assert!(
        reply.is_empty() || reply.starts_with("error: "),
        "1 MiB line -> {reply:?}"
    );
    // A flood of garbage clients at once, none waiting for the reply.
    let floods: Vec<_> = (0..8u64)
        .map(|i| {
            let addr = pen.control.clone();
            thread::spawn(move || {
                let mut c = connect(&addr);
                let mut g = vec![0u8; 128 * 1024];
                Prng::new(i).fill(&mut g);
                let _ = c.write_all(&g);
            })
        })
        .collect();
    for f in floods {
        f.join().expect("flood");
    }
    assert_eq!(
        pen.ctl("pid"),
        format!("{}\n", pen.pid),
        "answered after garbage"
    );
    ping(&mut relayed);

    // Vanishing mid-command with a reset: what arrived was executed at once (as C pen).
    let mut c = connect(&pen.control);
    c.write_all(b"blacklist 9").expect("write");
    // pen reads the partial line first (a reset before that would discard it).
    wait_for(WAIT, "pen to read the partial line", || peer_has_read(&c));
    abort(c);
    wait_for(WAIT, "the partial line of a reset client applied", || {
        (pen.ctl("blacklist") == "9\n").then_some(())
    });
    // Vanishing mid-command with an orderly close: the partial line counts.
    let mut c = connect(&pen.control);
    c.write_all(b"blacklist 7").expect("write");
    drop(c);
    wait_for(WAIT, "the partial line of a closed client applied", || {
        (pen.ctl("blacklist") == "7\n").then_some(())
    });

    // The silent client is still waiting; a command without newline is answered at once.
    assert_eq!(peek(&mut hanging, Duration::from_millis(50)), Peek::Quiet);
    hanging.write_all(b"timeout").expect("write");
    assert_eq!(
        read_to_eof(&mut hanging),
        "3\n",
        "a line without newline is answered"
    );

    assert_eq!(pen.ctl("timeout"), "3\n");
    ping(&mut relayed);
    assert_eq!(echo_once(&pen, "fresh"), "fresh", "new clients relayed");
    let errors = pen.metric("pen_control_errors_total").unwrap_or(0.0);
    eprintln!("control garbage: {errors} control errors counted");
    assert!(errors >= 2.0, "the garbage lines are counted as errors");
}

/// (9) A SIGHUP storm during traffic: 200 SIGHUPs within about 2 s, each a reload of a valid
/// `-F` file (signals arriving during a reload coalesce), while clients stream checksummed
/// data. No byte lost or changed, pen alive, configuration intact.
#[test]
fn sighup_storm_during_traffic_loses_nothing() {
    if is_c_pen() {
        return; // [ours] -F reload semantics
    }
    let dir = ScratchDir::new("hupstorm");
    let echo = Backend::echo();
    let cfg = dir.0.join("pen.cfg");
    let port = echo.addr.port();
    let text = format!(
        "# reloaded by a SIGHUP storm\ntimeout 5\nblacklist 20\nserver 0 address 127.0.0.1 port {port} max 100\n"
    );
    std::fs::write(&cfg, &text).expect("write config");
    let pen = PenBuilder::new()
        .opts(&["-F", &cfg.display().to_string(), "-x", "100"])
        .server(echo.spec())
        .start();
    // The servers' settings (not their byte counters).
    let settings = |pen: &Pen| -> Vec<String> {
        pen.servers()
            .iter()
            .map(|l| l.split(" sx ").next().unwrap_or_default().to_string())
            .collect()
    };
    let servers_before = settings(&pen);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|i| {
            let addr = pen.addr().to_string();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rounds = 0u64;
                let mut bytes = 0usize;
                while !stop.load(Ordering::SeqCst) || rounds == 0 {
                    let len = Prng::new(i * 1000 + rounds).range(1, 512 << 10) as usize;
                    let c = connect(&addr);
                    let mut w = c.try_clone().expect("clone");
                    let seed = i << 32 | rounds;
                    let writer = thread::spawn(move || {
                        let sum = write_stream(&mut w, seed, len).expect("write");
                        w.shutdown(Shutdown::Write).expect("shutdown");
                        sum
                    });
                    let mut r = c;
                    let (h, n, reset) = read_until_closed(&mut r);
                    let sent = writer.join().expect("writer");
                    assert_eq!((n, reset), (len, false), "client {i} round {rounds} length");
                    assert_eq!(h, sent, "client {i} round {rounds} checksum");
                    rounds += 1;
                    bytes += len;
                }
                (rounds, bytes)
            })
        })
        .collect();
    let t0 = Instant::now();
    for _ in 0..200 {
        pen.signal("HUP");
        pace(Duration::from_millis(2));
    }
    let storm = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut rounds = 0;
    let mut bytes = 0;
    for c in clients {
        let (r, b) = c.join().expect("client");
        rounds += r;
        bytes += b;
    }
    eprintln!(
        "SIGHUP storm: 200 signals in {storm:?}; {rounds} echo rounds, {} MiB, all intact",
        bytes >> 20
    );
    assert_eq!(pen.ctl("pid"), format!("{}\n", pen.pid), "pen alive");
    assert_eq!(pen.ctl("timeout"), "5\n");
    assert_eq!(pen.ctl("blacklist"), "20\n");
    assert_eq!(settings(&pen), servers_before, "servers intact");
    assert_eq!(std::fs::read_to_string(&cfg).expect("read"), text);
    let log = pen.log_text();
    assert!(!log.contains("SIGHUP"), "no reload failed: {log}");
    assert_eq!(echo_once(&pen, "after"), "after");
}
