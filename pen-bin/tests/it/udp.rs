//! UDP mode (`-U`) with the real binary: tracking, round robin, penctl blacklisting, failover
//! on ICMP port unreachable, IPv6, flow expiry, a C-pen-style command line. Backends are small
//! DNS-like responders (each answers a datagram with its name, `:`, the payload).
//!
//! The harness's `PenBuilder` waits for a TCP listener, which UDP mode has not: [`UdpPen`]
//! starts pen itself and waits until the control socket answers (the UDP sockets are bound
//! before it is served).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::harness::{
    control, free_port, ipv6_available, is_c_pen, pen_bin, penctl_bin, poll_until, run_bounded,
    running_as_root, wait_for, ScratchDir, WAIT,
};

/// How long a client waits for one answer.
const ANSWER: Duration = Duration::from_millis(500);

/// A running `pen -U`. Dropping it kills the child (by its handle) and reaps it.
struct UdpPen {
    child: Child,
    /// Where clients send.
    addr: SocketAddr,
    /// `127.0.0.1:PORT` of the control socket.
    control: String,
    args: Vec<String>,
    log: std::path::PathBuf,
    _dir: ScratchDir,
}

/// A UDP port that was free a moment ago on `ip`.
fn free_udp_port(ip: &str) -> u16 {
    let s = UdpSocket::bind((ip, 0)).expect("bind udp");
    s.local_addr().expect("local_addr").port()
}

impl UdpPen {
    /// Starts `pen -f [-u root] -C 127.0.0.1:CPORT -U OPTS LISTEN SERVERS`, where `listen`
    /// makes the listen argument from a free port and returns it with the address to send
    /// to. Retries with other ports if pen exits early.
    fn start(
        opts: &[&str],
        listen: impl Fn(u16) -> (String, SocketAddr),
        servers: &[String],
    ) -> UdpPen {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = ScratchDir::new("udp");
            let v6 = listen(0).1.is_ipv6();
            let port = free_udp_port(if v6 { "::1" } else { "127.0.0.1" });
            let (listen_arg, addr) = listen(port);
            let control = format!("127.0.0.1:{}", free_port());
            let mut args: Vec<String> = vec!["-f".into()];
            if running_as_root() {
                args.extend(["-u".into(), "root".into()]);
            }
            args.extend(["-C".into(), control.clone(), "-U".into()]);
            args.extend(opts.iter().map(|o| o.to_string()));
            args.push(listen_arg);
            args.extend(servers.iter().cloned());
            let log = dir.0.join("pen.log");
            let logf = std::fs::File::create(&log).expect("create log");
            let child = Command::new(pen_bin())
                .args(&args)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup log"))
                .stderr(logf)
                .spawn()
                .expect("spawn pen");
            let mut pen = UdpPen {
                child,
                addr,
                control,
                args,
                log,
                _dir: dir,
            };
            match pen.wait_ready() {
                Ok(()) => return pen,
                Err(e) => last = format!("{e}; pen {:?} said: {}", pen.args, pen.log_text()),
            }
        }
        panic!("pen -U did not start: {last}");
    }

    /// Waits (at most [`WAIT`]) until the control socket accepts; fails if pen exits.
    fn wait_ready(&mut self) -> Result<(), String> {
        let probe: SocketAddr = self.control.parse().expect("control address");
        poll_until(WAIT, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(Err(format!("pen exited early: {st}")));
            }
            TcpStream::connect_timeout(&probe, Duration::from_millis(200))
                .is_ok()
                .then_some(Ok(()))
        })
        .unwrap_or_else(|| Err("control socket not up within 5 s".into()))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctl(&self, line: &str) -> String {
        control(&self.control, line)
    }

    /// Runs `penctl CONTROL words...`; asserts it succeeded.
    fn penctl(&self, words: &[&str]) {
        let mut args = vec![self.control.clone()];
        args.extend(words.iter().map(|w| w.to_string()));
        let (out, code) = run_bounded(&penctl_bin(), &args, WAIT);
        assert_eq!(code, 0, "penctl {words:?}: {out}");
    }

    /// The `servers` line of server `n`.
    fn server_line(&self, n: usize) -> String {
        self.ctl("servers")
            .lines()
            .nth(n)
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for UdpPen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("pen {:?} log:\n{}", self.args, self.log_text());
        }
    }
}

/// Listen on 127.0.0.1.
fn v4(port: u16) -> (String, SocketAddr) {
    (
        format!("127.0.0.1:{port}"),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

/// A responder thread: answers every datagram with `NAME:PAYLOAD`.
fn responder_at(at: &str, name: &str) -> SocketAddr {
    let s = UdpSocket::bind(at).expect("bind responder");
    let addr = s.local_addr().expect("local_addr");
    let name = name.to_string();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut out = format!("{name}:").into_bytes();
            out.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&out, from);
        }
    });
    addr
}

fn responder(name: &str) -> SocketAddr {
    responder_at("127.0.0.1:0", name)
}

/// A client socket (its own source port: its own flow).
fn client_at(at: &str) -> UdpSocket {
    let s = UdpSocket::bind(at).expect("bind client");
    s.set_read_timeout(Some(ANSWER)).expect("read timeout");
    s
}

fn client() -> UdpSocket {
    client_at("127.0.0.1:0")
}

/// Sends `payload`; the answer, or `None` if none came within [`ANSWER`].
fn ask(c: &UdpSocket, to: SocketAddr, payload: &str) -> Option<String> {
    c.send_to(payload.as_bytes(), to).expect("send");
    let mut buf = [0u8; 65536];
    c.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Asks until answered (a bounded number of tries: UDP may lose a datagram).
fn ask_until_answered(c: &UdpSocket, to: SocketAddr, payload: &str) -> String {
    wait_for(Duration::from_secs(10), "an answer", || ask(c, to, payload))
}

fn who(answer: &str) -> String {
    answer.split(':').next().unwrap_or_default().to_string()
}

fn field(line: &str, name: &str) -> u64 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no {name} in {line:?}")
}

#[test]
fn udp_tracking_sends_a_client_to_the_same_server() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = UdpPen::start(&[], v4, &[a.to_string(), b.to_string()]);
    let c = client();
    let first = who(&ask_until_answered(&c, pen.addr, "q"));
    for i in 0..5 {
        let ans = ask_until_answered(&c, pen.addr, &format!("q{i}"));
        assert_eq!(ans, format!("{first}:q{i}"));
    }
    // Other source ports of the same address: other flows, the same server.
    for _ in 0..3 {
        assert_eq!(who(&ask_until_answered(&client(), pen.addr, "x")), first);
    }
}

#[test]
fn udp_round_robin_alternates_evenly() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = UdpPen::start(&["-r"], v4, &[a.to_string(), b.to_string()]);
    let mut names = Vec::new();
    let mut keep = Vec::new();
    for i in 0..10 {
        let c = client();
        names.push(who(&ask_until_answered(&c, pen.addr, &format!("{i}"))));
        keep.push(c);
    }
    let a_count = names.iter().filter(|n| *n == "a").count();
    assert_eq!(a_count, 5, "{names:?}");
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "not alternating: {names:?}");
    }
    assert_eq!(field(&pen.server_line(0), "conn"), 5);
    assert_eq!(field(&pen.server_line(1), "conn"), 5);
}

#[test]
fn udp_blacklist_and_whitelist_via_penctl() {
    let (a, b) = (responder("a"), responder("b"));
    let pen = UdpPen::start(&["-r"], v4, &[a.to_string(), b.to_string()]);
    pen.penctl(&["server", "0", "blacklist", "60"]);
    for i in 0..4 {
        let ans = ask_until_answered(&client(), pen.addr, &format!("{i}"));
        assert_eq!(who(&ans), "b", "server 0 is blacklisted");
    }
    pen.penctl(&["server", "1", "blacklist", "60"]);
    // All blacklisted: no answer, neither to a new client nor on an existing flow.
    let c = client();
    assert_eq!(ask(&c, pen.addr, "none"), None);
    assert_eq!(ask(&client(), pen.addr, "none"), None);
    pen.penctl(&["server", "0", "blacklist", "0"]);
    assert_eq!(ask_until_answered(&c, pen.addr, "back"), "a:back");
}

#[test]
fn udp_port_unreachable_blacklists_and_the_next_query_succeeds_elsewhere() {
    // A closed UDP port: bound, then dropped, so the kernel answers port unreachable.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind");
    let b = responder("b");
    // Server 0 is the first choice of a fresh pen in round-robin order.
    let pen = UdpPen::start(&["-b", "60"], v4, &[dead.to_string(), b.to_string()]);
    let c = client();
    assert_eq!(ask_until_answered(&c, pen.addr, "q"), "b:q");
    let line = pen.server_line(0);
    // [ours] `servers` shows the blacklisting (C pen's does not).
    assert!(is_c_pen() || line.contains("blacklisted"), "{line}");
    assert_eq!(field(&line, "conn"), 0);
    assert_eq!(who(&ask_until_answered(&client(), pen.addr, "n")), "b");
}

#[test]
fn udp_ipv6_listen_and_servers() {
    if !ipv6_available() || is_c_pen() {
        eprintln!("skipped: ::1 unavailable (or C pen, which fails at IPv6 UDP)");
        return;
    }
    let (a, b) = (responder_at("[::1]:0", "a6"), responder("b4"));
    let listen = |port: u16| {
        (
            format!("[::1]:{port}"),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        )
    };
    let pen = UdpPen::start(&["-r"], listen, &[a.to_string(), b.to_string()]);
    let mut names = Vec::new();
    for i in 0..4 {
        let c = client_at("[::1]:0");
        names.push(who(&ask_until_answered(&c, pen.addr, &format!("{i}"))));
    }
    assert_eq!(names, ["a6", "b4", "a6", "b4"]);
}

#[test]
fn udp_flows_expire_after_idle_timeout() {
    let a = responder("a");
    let pen = UdpPen::start(&["-O", "idle_timeout 1"], v4, &[a.to_string()]);
    let c = client();
    ask_until_answered(&c, pen.addr, "q");
    assert_eq!(field(&pen.server_line(0), "conn"), 1);
    wait_for(Duration::from_secs(5), "the flow to expire", || {
        (field(&pen.server_line(0), "conn") == 0).then_some(())
    });
    if !is_c_pen() {
        // [ours] the `metrics` command.
        let metrics = pen.ctl("metrics");
        assert!(
            metrics.contains("pen_idle_timeouts_total 1"),
            "counted: {metrics}"
        );
    }
    // A later datagram starts a new flow.
    assert_eq!(ask_until_answered(&c, pen.addr, "again"), "a:again");
}

#[test]
fn udp_with_a_c_pen_style_command_line() {
    // As an operator would write it: listen on a bare port (all addresses), servers as
    // host:port, a few classic options.
    let (a, b) = (responder("a"), responder("b"));
    let listen = |port: u16| (port.to_string(), SocketAddr::from(([127, 0, 0, 1], port)));
    let pen = UdpPen::start(
        &["-b", "10", "-x", "100", "-t", "2"],
        listen,
        &[format!("127.0.0.1:{}", a.port()), b.to_string()],
    );
    let c = client();
    let ans = ask_until_answered(&c, pen.addr, "hello");
    assert!(ans.ends_with(":hello"), "{ans}");
    let listen = pen.ctl("listen");
    assert!(listen.contains(&pen.addr.port().to_string()), "{listen}");
}
