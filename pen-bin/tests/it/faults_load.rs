//! Fault injection under load against the real binary: a crowd of idle clients (slowloris), a
//! slow reader of 256 MiB, running out of file descriptors, and the `-x` limit reached by 100
//! concurrent clients. Performance is measured and printed (for the notes), never asserted;
//! what is asserted is correctness and generous resource bounds.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    accept_queue, connect, cpu_seconds, fd_count, is_c_pen, pace, peek, poll_until,
    proc_status_kib, raise_nofile, read_sum, read_to_eof, stream_sum, tcp_rows, wait_for,
    wait_until, write_stream, Fnv, Peek, Pen, PenBuilder, TCP_ESTABLISHED, TCP_SYN_RECV, WAIT,
};

fn active(pen: &Pen) -> u64 {
    pen.metric("pen_connections_active").unwrap_or(-1.0) as u64
}

/// Request-reply service rates through a [`Backend::crowd`] server, for `each` per kind: (new
/// connections per second, each sending `ping` and reading `ping` back to EOF, at most 2,000
/// of them; round trips per second of 4 bytes on one open connection).
fn service_rates(addr: &str, each: Duration) -> (f64, f64) {
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < each && n < 2000 {
        let mut c = connect(addr);
        c.write_all(b"ping").expect("write");
        let reply = read_to_eof(&mut c);
        assert_eq!(reply, "ping", "request {n} after {:?}", t0.elapsed());
        n += 1;
    }
    let per_conn = f64::from(n) / t0.elapsed().as_secs_f64();
    let mut c = connect(addr);
    c.set_nodelay(true).expect("nodelay");
    let t0 = Instant::now();
    let mut n = 0u32;
    let mut buf = [0u8; 4];
    while t0.elapsed() < each {
        c.write_all(b"rtt!").expect("write");
        c.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"rtt!", "round trip {n}");
        n += 1;
    }
    (per_conn, f64::from(n) / t0.elapsed().as_secs_f64())
}

/// (4) Slowloris: 5,000 client connections that connect and send nothing, held open, while
/// other clients are served. Prints the service rate without and with the idle crowd, and
/// pen's CPU time while only the crowd is connected.
///
/// Descriptors: the test process holds 3 per idle client (its end, the server's end and the
/// server's handle to close it), pen 2 (client and server sockets) and inherits our limit; we
/// raise the soft RLIMIT_NOFILE up to the hard limit if needed, and scale the crowd down
/// (saying so) if even that is not enough.
#[test]
fn slowloris_idle_crowd_does_not_stop_service() {
    if is_c_pen() {
        return; // [ours] metrics
    }
    const CROWD: usize = 5000;
    const SPARE: u64 = 600; // other tests in this process, harness, penctl, ...
    let want = 3 * CROWD as u64 + SPARE;
    let limit = raise_nofile(want);
    let crowd = if limit >= want {
        CROWD
    } else {
        (limit.saturating_sub(SPARE) / 3) as usize
    };
    if crowd < CROWD {
        eprintln!("slowloris: RLIMIT_NOFILE is {limit}: crowd scaled down to {crowd}");
    }
    assert!(
        crowd >= 100,
        "RLIMIT_NOFILE {limit} leaves no room for a crowd"
    );
    let echo = Backend::crowd();
    // -t 10: on a busy machine the server may be slow to accept thousands of connections; a
    // connect timeout would blacklist the only server.
    let pen = PenBuilder::new()
        .opts(&["-x", "10000", "-q", "4096", "-t", "10"])
        .server(echo.spec())
        .start();
    let addr = pen.addr().to_string();
    let each = Duration::from_millis(1000);
    let before = service_rates(&addr, each);

    // The crowd connects within a time budget: on a machine short of CPU or local ports (other
    // load), it stops early and says so rather than run long.
    let sa: SocketAddr = addr.parse().expect("pen's address");
    let t0 = Instant::now();
    let mut idle: Vec<TcpStream> = Vec::with_capacity(crowd);
    while idle.len() < crowd {
        if t0.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "slowloris: connecting too slow (busy machine): crowd of {}",
                idle.len()
            );
            break;
        }
        match TcpStream::connect_timeout(&sa, WAIT) {
            Ok(s) => idle.push(s),
            Err(e) => {
                eprintln!(
                    "slowloris: connect {}: {e}: crowd of {}",
                    idle.len(),
                    idle.len()
                );
                break;
            }
        }
    }
    let connected = idle.len() as u64;
    assert!(connected >= 100, "could not connect a crowd: {connected}");
    // pen takes them all (a connection whose server connect must wait for a local port or
    // descriptor counts as active meanwhile).
    wait_for(Duration::from_secs(30), "pen to take the crowd", || {
        (active(&pen) >= connected).then_some(())
    });
    let connected_in = t0.elapsed();
    // pen's CPU time over a second of only the crowd, which is the second an idle client
    // spends waiting for a byte that must not come.
    let mut one = idle.first().expect("a crowd").try_clone().expect("clone");
    let cpu0 = cpu_seconds(pen.pid).expect("pen's cpu time");
    assert_eq!(
        peek(&mut one, Duration::from_millis(1000)),
        Peek::Quiet,
        "an idle client for a second"
    );
    let idle_cpu = cpu_seconds(pen.pid).expect("pen's cpu time") - cpu0;
    drop(one);
    let rss = proc_status_kib(pen.pid, "VmRSS").unwrap_or(0);

    let during = service_rates(&addr, each);
    // The crowd is still there: none was closed, none sent anything.
    assert!(
        active(&pen) >= connected,
        "crowd intact: {} active",
        active(&pen)
    );
    let mut sample: Vec<TcpStream> = idle
        .iter()
        .step_by(idle.len() / 20)
        .map(|s| s.try_clone().expect("clone"))
        .collect();
    for s in &mut sample {
        assert_eq!(
            peek(s, Duration::from_millis(1)),
            Peek::Quiet,
            "an idle client"
        );
    }
    eprintln!(
        "slowloris: {connected} idle clients connected in {connected_in:?}; pen with them: {:.3} s CPU per 1 s idle, VmRSS {} MiB",
        idle_cpu,
        rss >> 10
    );
    eprintln!(
        "slowloris: service without the crowd: {:.0} conn/s, {:.0} round trips/s; with {connected} idle: {:.0} conn/s, {:.0} round trips/s",
        before.0, before.1, during.0, during.1
    );
    // The server closes first (see Backend::crowd), then the clients.
    echo.close_all();
    for s in &mut sample {
        assert!(matches!(peek(s, WAIT), Peek::Closed), "the crowd sees EOF");
    }
    drop(sample);
    drop(idle);
    wait_for(Duration::from_secs(30), "the crowd to leave", || {
        (active(&pen) == 0).then_some(())
    });
}

/// (5) A slow reader receiving 256 MiB: the client reads 1 KiB every 5 ms for about a second
/// (the server is far faster), then reads the rest at full speed. pen reads from the server
/// only as fast as the client takes, so its memory stays bounded: its VmRSS is sampled every
/// 10 ms during the transfer and must stay within 64 MiB of its start (the peak is printed).
/// The 256 MiB arrive complete and byte-exact.
#[test]
fn slow_reader_of_256_mib_keeps_pen_memory_bounded() {
    if is_c_pen() {
        return; // C pen's memory is not the subject here
    }
    const LEN: usize = 256 << 20;
    let seed = 0x510;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let server = Backend::send_stream(seed, LEN, sent.clone());
    let pen = PenBuilder::new().server(server.spec()).start();
    let pid = pen.pid;
    let start_kib = proc_status_kib(pid, "VmRSS").expect("pen's VmRSS");
    let peak = Arc::new(AtomicU64::new(start_kib));
    let stop = Arc::new(AtomicBool::new(false));
    // Samples until the transfer ends (at most 10 minutes: a failed test leaves no sampler).
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        thread::spawn(move || {
            poll_until(Duration::from_secs(600), || {
                if let Some(k) = proc_status_kib(pid, "VmRSS") {
                    peak.fetch_max(k, Ordering::SeqCst);
                }
                stop.load(Ordering::SeqCst).then_some(())
            })
        })
    };
    let t0 = Instant::now();
    let mut c = pen.connect();
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut h = Fnv::new();
    let mut got = 0usize;
    let mut small = [0u8; 1024];
    while t0.elapsed() < Duration::from_millis(1000) {
        let k = c.read(&mut small).expect("slow read");
        assert!(k > 0, "EOF after {got} bytes");
        h.update(&small[..k]);
        got += k;
        pace(Duration::from_millis(5));
    }
    let slow_bytes = got;
    let slow_peak = peak.load(Ordering::SeqCst);
    let (h, n) = read_sum_from(&mut c, h).expect("fast read");
    let wall = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    got += n;
    assert_eq!(got, LEN, "all 256 MiB arrived");
    let want = wait_for(WAIT, "the server's checksum", || {
        sent.lock().expect("lock").first().copied()
    });
    assert_eq!(h, want, "the 256 MiB are byte-exact");
    let peak_kib = peak.load(Ordering::SeqCst);
    let grew = peak_kib.saturating_sub(start_kib);
    eprintln!(
        "slow reader: 256 MiB in {wall:?} ({slow_bytes} bytes in the slow second); pen VmRSS start {} KiB, peak {} KiB during the slow phase, {} KiB overall (+{} KiB)",
        start_kib, slow_peak, peak_kib, grew
    );
    assert!(
        grew < 64 << 10,
        "pen's VmRSS grew by {grew} KiB relaying to a slow reader"
    );
}

/// Reads `r` to EOF with a big buffer; returns (checksum continued from `h`, length read).
fn read_sum_from<R: Read>(r: &mut R, mut h: Fnv) -> std::io::Result<(Fnv, usize)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0usize;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((h, n)),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How one client fared.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Served,
    Dropped,
    Queued,
}

/// (6) Running out of file descriptors: pen started with RLIMIT_NOFILE 64, and 100 clients
/// (each sends 4 bytes to an echo server and keeps its connection). pen keeps running, does not
/// spin while out of descriptors (its CPU time over 2 s is measured and printed, and must stay
/// well below one core), its control socket answers again, and once descriptors free it
/// serves the clients that waited and new ones.
#[test]
fn out_of_descriptors_pen_waits_without_spinning_and_recovers() {
    if is_c_pen() {
        return;
    }
    const NOFILE: u64 = 64;
    const CLIENTS: usize = 100;
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .nofile(NOFILE)
        .opts(&["-x", "1000", "-t", "10"])
        .server(echo.spec())
        .start();
    let base = fd_count(pen.pid);
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut c = pen.connect();
            c.write_all(format!("{i:04}").as_bytes()).expect("write");
            c
        })
        .collect();
    wait_for(WAIT, "pen to run out of descriptors", || {
        (fd_count(pen.pid) as u64 >= NOFILE - 1).then_some(())
    });
    // Let pen settle into its out-of-descriptors state: every connection it made to the server
    // has been echoed back to its client. Classify the clients as their replies arrive.
    let count = |fates: &[Fate], f: Fate| fates.iter().filter(|x| **x == f).count();
    let echo_port = echo.addr.port();
    let mut fates = vec![Fate::Queued; CLIENTS];
    wait_until(
        WAIT,
        "pen's connections to the server echoed to their clients",
        || {
            for (i, c) in clients.iter_mut().enumerate() {
                if fates[i] == Fate::Queued {
                    fates[i] = match peek(c, Duration::from_millis(1)) {
                        Peek::Data(d) => {
                            assert_eq!(d, format!("{i:04}").as_bytes(), "client {i}");
                            Fate::Served
                        }
                        Peek::Closed => Fate::Dropped,
                        Peek::Quiet => Fate::Queued,
                    };
                }
            }
            // The server's ends of pen's connections, accepted or not yet.
            let at_server = tcp_rows(echo_port)
                .iter()
                .filter(|r| {
                    r.local_port == echo_port && matches!(r.state, TCP_ESTABLISHED | TCP_SYN_RECV)
                })
                .count();
            // (A dropped client ends the wait: the assertion below says so.)
            count(&fates, Fate::Dropped) > 0
                || (at_server > 0 && count(&fates, Fate::Served) >= at_server)
        },
    );
    // A control client arriving now waits (pen has no descriptor to accept it).
    let control = pen.control.clone();
    let ctl = thread::spawn(move || {
        let mut c = connect(&control);
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        c.write_all(b"pid\n").expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).map(|_| out)
    });
    // pen's CPU time over two seconds out of descriptors, which are two seconds a client
    // beyond the descriptors waits, unserved and not dropped.
    let queued = fates
        .iter()
        .rposition(|f| *f == Fate::Queued)
        .expect("clients beyond the descriptors");
    let cpu0 = cpu_seconds(pen.pid).expect("cpu");
    let t0 = Instant::now();
    assert_eq!(
        peek(&mut clients[queued], Duration::from_millis(2000)),
        Peek::Quiet,
        "client {queued} while pen is out of descriptors"
    );
    let cpu = cpu_seconds(pen.pid).expect("cpu") - cpu0;
    let wall = t0.elapsed();
    let fds = fd_count(pen.pid);
    eprintln!(
        "out of descriptors (RLIMIT_NOFILE {NOFILE}, {base} at start, {fds} open): {} served, {} dropped, {} queued; pen used {cpu:.3} s CPU in {wall:?}",
        count(&fates, Fate::Served),
        count(&fates, Fate::Dropped),
        count(&fates, Fate::Queued)
    );
    assert!(
        cpu < 0.5,
        "pen spins while out of descriptors: {cpu:.3} s CPU in {wall:?}"
    );
    assert!(count(&fates, Fate::Served) > 0, "{fates:?}");
    // Clients beyond the descriptors wait in the queue (like at the -x limit); one accepted
    // with the last descriptor, with none left for its server socket, waits in pen (up to the
    // connect timeout, -t 10 here).
    assert_eq!(
        count(&fates, Fate::Dropped),
        0,
        "clients dropped instead of kept waiting while out of descriptors: {fates:?}"
    );

    // Free descriptors: the served clients leave.
    for (i, f) in fates.iter_mut().enumerate() {
        if *f == Fate::Served {
            let _ = clients[i].shutdown(Shutdown::Both);
            *f = Fate::Dropped; // done with
        }
    }
    // Those that waited are served now, as descriptors free: in pen's order, not ours, so
    // look at all of them round after round, letting each one go once served.
    let mut waiting: Vec<usize> = (0..CLIENTS).filter(|&i| fates[i] == Fate::Queued).collect();
    let freed = Instant::now();
    while !waiting.is_empty() {
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "clients still waiting 10 s after descriptors freed: {waiting:?}"
        );
        waiting.retain(|&i| match peek(&mut clients[i], Duration::from_millis(1)) {
            Peek::Data(d) => {
                assert_eq!(d, format!("{i:04}").as_bytes(), "client {i}");
                let _ = clients[i].shutdown(Shutdown::Both);
                false
            }
            Peek::Closed => panic!("client {i} waited while out of descriptors, then was dropped"),
            Peek::Quiet => true,
        });
    }
    let served_late = count(&fates, Fate::Queued);
    let drained_in = freed.elapsed();
    let reply = ctl.join().expect("control client").expect("control reply");
    assert_eq!(
        reply,
        format!("{}\n", pen.pid),
        "the control socket answers again"
    );
    eprintln!(
        "out of descriptors: the {served_late} waiting clients served within {drained_in:?} once descriptors freed"
    );
    drop(clients);
    let mut c = pen.connect();
    c.write_all(b"new").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_eof(&mut c), "new", "a new client is served");
    assert_eq!(pen.ctl("pid"), format!("{}\n", pen.pid));
}

/// (7) The `-x 20` limit reached by 100 concurrent clients, each uploading 48 KiB and reading a
/// 48 KiB reply computed from it: while all 100 are connected only 20 are relayed and the rest
/// wait in the kernel's queue; then every one of them gets its full, checksummed reply — none
/// refused or lost.
#[test]
fn connection_limit_under_load_queues_and_loses_nobody() {
    if is_c_pen() {
        return; // [ours] metrics
    }
    const CLIENTS: usize = 100;
    const HEAD: usize = 16 << 10;
    const LEN: usize = 48 << 10;
    let server = Backend::sink_then_send();
    let pen = PenBuilder::new()
        .opts(&["-x", "20"])
        .server(server.spec())
        .start();
    let addr = pen.addr().to_string();
    let all_connected = Arc::new(Barrier::new(CLIENTS + 1));
    let go = Arc::new(Barrier::new(CLIENTS + 1));
    let workers: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            let (addr, all_connected, go) = (addr.clone(), all_connected.clone(), go.clone());
            thread::spawn(move || {
                let mut c = connect(&addr);
                c.set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("timeout");
                c.set_write_timeout(Some(Duration::from_secs(20)))
                    .expect("timeout");
                // Sent in two parts: the head before everyone is connected (it fits in the
                // socket buffers even while the connection waits in the queue), the rest after.
                let mut stream = Vec::with_capacity(LEN);
                let sum = write_stream(&mut stream, 100 + i, LEN).expect("stream");
                c.write_all(&stream[..HEAD]).expect("write head");
                all_connected.wait();
                go.wait();
                c.write_all(&stream[HEAD..]).expect("write rest");
                c.shutdown(Shutdown::Write).expect("shutdown");
                let (h, n) = read_sum(&mut c).expect("read reply");
                assert_eq!(n, LEN, "client {i}: reply length");
                assert_eq!(h, stream_sum(sum.0, LEN), "client {i}: reply checksum");
            })
        })
        .collect();
    all_connected.wait();
    let at_limit = wait_for(WAIT, "pen to reach the -x limit", || {
        let pauses = pen.metric("pen_accept_pauses_total").unwrap_or(0.0);
        (active(&pen) == 20 && pauses > 0.0).then_some(pauses)
    });
    // Stays at the limit: the others are queued (in the kernel's accept queue), not refused.
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    wait_until(WAIT, "the other 80 clients in pen's accept queue", || {
        accept_queue(port) == Some((CLIENTS - 20) as u64)
    });
    assert_eq!(
        active(&pen),
        20,
        "exactly -x 20 relayed while 100 are connected"
    );
    let t0 = Instant::now();
    go.wait();
    let mut failed = 0;
    for w in workers {
        if w.join().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "every client got its full reply");
    eprintln!(
        "-x 20 with {CLIENTS} clients: {at_limit} accept pauses at the limit; all {CLIENTS} served in {:?}",
        t0.elapsed()
    );
    assert_eq!(server.accepted(), CLIENTS);
    assert_eq!(
        pen.metric("pen_connections_accepted_total"),
        Some(CLIENTS as f64)
    );
}
