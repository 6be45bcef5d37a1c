//! DNS-driven servers (issue 14, docs/dns.md) against a tiny DNS server in the test
//! ([`Stub`], UDP on loopback, pointed at by `dns_server`): a server given by name follows
//! the name's answer under traffic, keeps its last address while the name fails, `all`
//! expands a name to one server per address, and `write` keeps the name. All ours: C pen
//! resolves a name once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::harness::{is_c_pen, wait_until, Pen, PenBuilder, ScratchDir, WAIT};

/// What the stub answers for a name.
#[derive(Clone, Debug)]
enum Reply {
    /// These IPv4 addresses (and no IPv6 one).
    Addrs(Vec<Ipv4Addr>),
    /// NXDOMAIN.
    NxDomain,
    /// Nothing at all (the lookup times out).
    Silent,
}

/// A DNS server for the test: answers A and AAAA queries from a table the test changes.
struct Stub {
    port: u16,
    table: Arc<Mutex<HashMap<String, Reply>>>,
    /// Queries received, per name.
    queries: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    fn new() -> Stub {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind stub");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let table: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (t, q, st) = (table.clone(), queries.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Some((name, qtype, end)) = question(&buf[..n]) else {
                    continue;
                };
                *q.lock().unwrap().entry(name.clone()).or_default() += 1;
                let reply = t.lock().unwrap().get(&name).cloned();
                let reply = reply.unwrap_or(Reply::NxDomain);
                if let Some(msg) = answer(&buf[..end], qtype, &reply) {
                    let _ = sock.send_to(&msg, from);
                }
            }
        });
        Stub {
            port,
            table,
            queries,
            stop,
        }
    }

    fn set(&self, name: &str, reply: Reply) {
        self.table.lock().unwrap().insert(name.to_string(), reply);
    }

    /// Queries for `name` so far (an A and an AAAA per lookup).
    fn queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The question of a query: (lowercase name, type, end of the question).
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// The answer to `query` (header and question): A records for A queries, none for AAAA.
fn answer(query: &[u8], qtype: u16, reply: &Reply) -> Option<Vec<u8>> {
    let mut m = query.to_vec();
    m[2] = 0x81; // response, recursion desired
    m[3] = 0x80; // recursion available, no error
    m[6..12].copy_from_slice(&[0; 6]);
    match reply {
        Reply::Silent => return None,
        Reply::NxDomain => m[3] |= 3,
        Reply::Addrs(ips) if qtype == 1 => {
            m[7] = ips.len() as u8;
            for ip in ips {
                m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
                m.extend_from_slice(&ip.octets());
            }
        }
        Reply::Addrs(_) => {}
    }
    Some(m)
}

/// A backend on `ip:port` that greets with `NAME\n` and then echoes until EOF; stops
/// accepting when dropped.
struct Greeter {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Greeter {
    fn start(ip: Ipv4Addr, port: u16, name: &str) -> Option<Greeter> {
        let l = TcpListener::bind((ip, port)).ok()?;
        let addr = l.local_addr().ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let greeting = format!("{name}\n");
        thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let greeting = greeting.clone();
                thread::spawn(move || {
                    let _ = s.write_all(greeting.as_bytes());
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s.shutdown(Shutdown::Both);
                });
            }
        });
        Some(Greeter { addr, stop })
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Greeting backends on one port at 127.0.0.1, .2 and .3 (named A, B, C).
fn three_backends() -> (u16, Vec<Greeter>) {
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let all: Vec<Greeter> = [(1, "A"), (2, "B"), (3, "C")]
            .iter()
            .filter_map(|(last, name)| Greeter::start(Ipv4Addr::new(127, 0, 0, *last), port, name))
            .collect();
        if all.len() == 3 {
            return (port, all);
        }
    }
    panic!("no port free on 127.0.0.1-3");
}

/// One client through pen: the backend's name, after checking that it echoes.
fn visit(pen: &Pen) -> Result<String, String> {
    visit_addr(pen.addr())
}

/// pen asking `stub`, names looked up every second, with `extra` options.
fn pen_with(stub: &Stub, extra: &[&str]) -> Pen {
    let dns = format!("dns_server {}", stub.addr());
    let mut opts = vec!["-O", "dns_interval 1", "-O", &dns];
    opts.extend_from_slice(extra);
    PenBuilder::new().opts(&opts).start()
}

fn servers_have(pen: &Pen, want: &[&str]) -> bool {
    let s = pen.servers();
    s.len() == want.len() && s.iter().zip(want).all(|(line, w)| line.contains(w))
}

/// The name's address changes while clients keep coming: every client succeeds, a
/// connection opened before the change finishes on the old server, and once a client reached
/// the new server no later one goes to the old.
#[test]
fn a_changed_address_is_followed_under_traffic() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 1)]));
    let line = format!("server 0 address svc.test port {port}");
    let pen = pen_with(&stub, &["-O", &line]);
    assert_eq!(visit(&pen).unwrap(), "A");
    // A connection in flight across the change.
    let held = TcpStream::connect(pen.addr()).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut held_r = BufReader::new(held.try_clone().unwrap());
    let mut greeting = String::new();
    held_r.read_line(&mut greeting).unwrap();
    assert_eq!(greeting, "A\n");

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Result<String, String>>>> = Arc::default();
    let traffic = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let addr = pen.addr().to_string();
        thread::spawn(move || {
            let client = PenAddr(addr);
            while !stop.load(Ordering::SeqCst) {
                let r = client.visit();
                seen.lock().unwrap().push(r);
            }
        })
    };
    wait_until(WAIT, "traffic", || seen.lock().unwrap().len() >= 20);
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 2)]));
    let at_b = || {
        let s = seen.lock().unwrap();
        s.iter().filter(|r| r.as_deref() == Ok("B")).count()
    };
    wait_until(
        Duration::from_secs(15),
        "a client at the new address",
        || at_b() >= 20,
    );
    stop.store(true, Ordering::SeqCst);
    traffic.join().unwrap();

    let seen = seen.lock().unwrap();
    let failed: Vec<&String> = seen.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    let first_b = seen.iter().position(|r| r.as_deref() == Ok("B")).unwrap();
    assert!(first_b > 0, "some clients went to the old address first");
    assert!(
        seen[first_b..].iter().all(|r| r.as_deref() == Ok("B")),
        "a client went back to the old address"
    );
    // The connection opened before the change still talks to the old server.
    (&held).write_all(b"still\n").unwrap();
    let mut echo = String::new();
    held_r.read_line(&mut echo).unwrap();
    assert_eq!(echo, "still\n");
    assert!(
        servers_have(&pen, &["addr 127.0.0.2 port"]),
        "{:?}",
        pen.servers()
    );
}

/// The traffic thread's view of pen (the `Pen` stays with the test).
struct PenAddr(String);

impl PenAddr {
    fn visit(&self) -> Result<String, String> {
        visit_addr(&self.0)
    }
}

fn visit_addr(addr: &str) -> Result<String, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut name = String::new();
    r.read_line(&mut name)
        .map_err(|e| format!("greeting: {e}"))?;
    (&s).write_all(b"ping\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut echo = String::new();
    r.read_line(&mut echo).map_err(|e| format!("echo: {e}"))?;
    if echo != "ping\n" || name.is_empty() {
        return Err(format!("greeting {name:?}, echo {echo:?}"));
    }
    Ok(name.trim().to_string())
}

/// A name that stops resolving (NXDOMAIN, then no answer at all) keeps its server's last
/// address and clients keep being served; the failure is logged once, not per lookup, and
/// `dns` shows it; when the name answers again, the new address is taken.
#[test]
fn a_failing_name_keeps_its_last_address() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 1)]));
    let line = format!("server 0 address svc.test port {port}");
    let pen = pen_with(&stub, &["-O", &line]);
    wait_until(WAIT, "the first lookup", || {
        pen.ctl("dns").contains(" ok\n")
    });
    stub.set("svc.test", Reply::NxDomain);
    let before = stub.queries("svc.test");
    // Three more lookups (an A and an AAAA query each).
    wait_until(Duration::from_secs(15), "lookups go on", || {
        stub.queries("svc.test") >= before + 6
    });
    assert!(
        servers_have(&pen, &["addr 127.0.0.1 port"]),
        "{:?}",
        pen.servers()
    );
    assert_eq!(visit(&pen).unwrap(), "A");
    let dns = pen.ctl("dns");
    assert!(dns.contains("failing: no such name"), "{dns}");
    assert!(
        dns.starts_with("svc.test servers 0 addresses 127.0.0.1 "),
        "{dns}"
    );
    // No answer at all: still failing, still the same address, still one log line.
    stub.set("svc.test", Reply::Silent);
    let before = stub.queries("svc.test");
    wait_until(Duration::from_secs(20), "silent lookups", || {
        stub.queries("svc.test") >= before + 4
    });
    assert_eq!(visit(&pen).unwrap(), "A");
    let warned = |log: &str| {
        log.lines()
            .filter(|l| l.contains("server name svc.test:"))
            .count()
    };
    assert_eq!(warned(&pen.log_text()), 1, "{}", pen.log_text());
    // Answers again, elsewhere.
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 3)]));
    wait_until(Duration::from_secs(15), "the new address", || {
        servers_have(&pen, &["addr 127.0.0.3 port"])
    });
    assert_eq!(visit(&pen).unwrap(), "C");
    assert!(pen
        .log_text()
        .contains("server name svc.test resolves again"));
    assert_eq!(warned(&pen.log_text()), 1, "{}", pen.log_text());
}

/// `address NAME all 3`: one server per address of the answer, slots appearing and going
/// (to no address) as the answer changes, addresses that stay keeping their slots; clients
/// are served by the servers the name has.
#[test]
fn all_expands_a_name_to_one_server_per_address() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    let ips = |l: &[u8]| Reply::Addrs(l.iter().map(|x| Ipv4Addr::new(127, 0, 0, *x)).collect());
    stub.set("svc.test", ips(&[1, 2]));
    let line = format!("server 0 address svc.test all 3 port {port}");
    let pen = pen_with(&stub, &["-r", "-O", &line]);
    let p = |ip: &str| format!("addr {ip} port {port} ");
    let (a, b, c, none) = (p("127.0.0.1"), p("127.0.0.2"), p("127.0.0.3"), p("0.0.0.0"));
    wait_until(WAIT, "two servers", || servers_have(&pen, &[&a, &b, &none]));
    stub.set("svc.test", ips(&[2, 3]));
    wait_until(Duration::from_secs(15), "the answer's change", || {
        servers_have(&pen, &[&c, &b, &none])
    });
    let mut names: Vec<String> = (0..6).map(|_| visit(&pen).unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["B", "C"]);
    stub.set("svc.test", ips(&[3, 1, 2]));
    wait_until(Duration::from_secs(15), "a third server", || {
        servers_have(&pen, &[&c, &b, &a])
    });
    stub.set("svc.test", ips(&[1]));
    wait_until(Duration::from_secs(15), "servers gone", || {
        servers_have(&pen, &[&none, &none, &a])
    });
    for _ in 0..4 {
        assert_eq!(visit(&pen).unwrap(), "A");
    }
    let dns = pen.ctl("dns");
    assert!(
        dns.starts_with("svc.test servers 0+3 addresses 127.0.0.1 "),
        "{dns}"
    );
    // A follower's address is the name's, not the operator's.
    let refused = pen.ctl("server 1 address 127.0.0.9");
    assert!(refused.contains("server 0"), "{refused}");
}

/// `write` keeps the name (and `all`, `dns_interval`, `dns_server`), not the address it
/// resolved to; a pen started from the written file asks the same server and has the same
/// servers.
#[test]
fn write_keeps_the_name() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set(
        "svc.test",
        Reply::Addrs(vec![
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 3),
        ]),
    );
    let line = format!("server 0 address svc.test all 2 port {port}");
    let pen = pen_with(&stub, &["-O", &line]);
    let (b, c) = (
        format!("addr 127.0.0.2 port {port} "),
        format!("addr 127.0.0.3 port {port} "),
    );
    wait_until(WAIT, "two servers", || servers_have(&pen, &[&b, &c]));
    let dir = ScratchDir::new("dns-write");
    let file = dir.0.join("pen.cfg");
    assert_eq!(pen.ctl(&format!("write {}", file.display())), "");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "server 0 address svc.test all 2 port {port} max 0 hard 0\n"
        )),
        "{text}"
    );
    assert!(!text.contains("server 1 "), "{text}");
    assert!(!text.contains("127.0.0.2"), "{text}");
    let at = |w: &str| text.find(w).unwrap_or_else(|| panic!("{w} in {text}"));
    assert!(at(&format!("dns_server {}\n", stub.addr())) < at("server 0 "));
    assert!(at("dns_interval 1\n") < at("server 0 "));
    let f = file.display().to_string();
    let again = PenBuilder::new().opts(&["-F", &f]).start();
    wait_until(WAIT, "the same servers", || servers_have(&again, &[&b, &c]));
    assert!(again.ctl("dns").contains(" ok\n"), "{}", again.ctl("dns"));
}

/// A server named on the command line is followed too (as if given by `-O "server N address
/// NAME"`), and `write` keeps its name.
#[test]
fn a_server_named_on_the_command_line_is_followed() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set("localhost", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 2)]));
    let dns = format!("dns_server {}", stub.addr());
    let pen = PenBuilder::new()
        .opts(&["-O", "dns_interval 1", "-O", &dns])
        .server(format!("localhost:{port}"))
        .start();
    wait_until(WAIT, "the stub's address", || {
        servers_have(&pen, &[&format!("addr 127.0.0.2 port {port} ")])
    });
    assert_eq!(visit(&pen).unwrap(), "B");
    let dir = ScratchDir::new("dns-cli");
    let file = dir.0.join("pen.cfg");
    assert_eq!(pen.ctl(&format!("write {}", file.display())), "");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("server 0 address localhost port {port} ")),
        "{text}"
    );
}

/// Changes to the settings apply at once: another `dns_server` makes every name be looked up
/// again with it, and a shorter `dns_interval` is honoured from the next round, not after the
/// old interval has run out.
#[test]
fn a_new_dns_server_or_interval_applies_at_once() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let (first, second) = (Stub::new(), Stub::new());
    first.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 1)]));
    second.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 2)]));
    let dns = format!("dns_server {}", first.addr());
    let line = format!("server 0 address svc.test port {port}");
    let pen = PenBuilder::new()
        .opts(&["-O", "dns_interval 3600", "-O", &dns, "-O", &line])
        .start();
    let at = |ip: &str| format!("addr {ip} port {port} ");
    wait_until(WAIT, "the first lookup", || {
        pen.ctl("dns").contains(" ok\n")
    });
    assert!(servers_have(&pen, &[&at("127.0.0.1")]));
    assert_eq!(
        pen.ctl(&format!("dns_server {}", second.addr())),
        format!("{}\n", second.addr())
    );
    wait_until(WAIT, "a lookup with the new server", || {
        servers_have(&pen, &[&at("127.0.0.2")])
    });
    second.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 3)]));
    assert_eq!(pen.ctl("dns_interval 1"), "1\n");
    wait_until(Duration::from_secs(15), "the shorter interval", || {
        servers_have(&pen, &[&at("127.0.0.3")])
    });
    assert_eq!(visit(&pen).unwrap(), "C");
}

/// The names of pen's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// No resolver thread while no server has a name (a C-pen-style configuration has no extra
/// thread); one from the first name; gone with the last, back with the next.
#[test]
fn the_resolver_thread_exists_only_while_a_server_has_a_name() {
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 2)]));
    let pen = pen_with(&stub, &[]);
    pen.ctl(&format!("server 0 address 127.0.0.1 port {port}"));
    assert_eq!(visit(&pen).unwrap(), "A");
    let has = || thread_names(pen.pid).iter().any(|n| n == "pen-resolver");
    assert!(!has(), "{:?}", thread_names(pen.pid));
    assert_eq!(pen.ctl("server 0 address svc.test"), "");
    wait_until(WAIT, "a pen-resolver thread", has);
    assert_eq!(visit(&pen).unwrap(), "B");
    assert_eq!(pen.ctl("server 0 address 127.0.0.3"), "");
    wait_until(WAIT, "the pen-resolver thread gone", || !has());
    assert_eq!(pen.ctl("server 0 address svc.test"), "");
    wait_until(WAIT, "a pen-resolver thread again", has);
}

#[test]
fn sigterm_does_not_wait_for_a_lookup_in_progress() {
    // C pen exits at once on SIGTERM; a lookup that gets no answer (up to 3 s) must not hold
    // the exit up.
    if is_c_pen() {
        return; // [ours]
    }
    let (port, _backends) = three_backends();
    let stub = Stub::new();
    stub.set("svc.test", Reply::Addrs(vec![Ipv4Addr::new(127, 0, 0, 1)]));
    let line = format!("server 0 address svc.test port {port}");
    let mut pen = pen_with(&stub, &["-O", &line]);
    wait_until(WAIT, "the first lookup", || {
        pen.ctl("dns").contains(" ok\n")
    });
    stub.set("svc.test", Reply::Silent);
    let before = stub.queries("svc.test");
    // A query the stub will never answer has arrived: a lookup is in progress.
    wait_until(Duration::from_secs(10), "a silent lookup", || {
        stub.queries("svc.test") > before
    });
    let sent = std::time::Instant::now();
    pen.signal("TERM");
    let status = pen.wait_exit(Duration::from_secs(10));
    let took = sent.elapsed();
    assert!(status.is_some(), "pen did not exit");
    // A hang bound, not a benchmark: the lookup's own limit is 3 s.
    assert!(took < Duration::from_millis(1500), "exit took {took:?}");
}
