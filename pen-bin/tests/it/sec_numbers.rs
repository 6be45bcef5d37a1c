//! Issue 11, numbers and tables: every time and count argument has a maximum (a huge
//! `timeout` used to wrap the connect deadline and blacklist healthy servers), and a flood of
//! UDP sources does not move a live client's flow.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    free_port, is_c_pen, pen_bin, poll_until, running_as_root, wait_for, Pen, PenBuilder,
    ScratchDir, WAIT,
};

/// Whether `servers` shows any server blacklisted.
fn any_blacklisted(pen: &Pen) -> bool {
    pen.servers().iter().any(|l| l.contains(" blacklisted "))
}

/// `timeout 18446744073709551615` is refused, naming the token and the maximum; the setting
/// stays, and healthy servers keep serving, never blacklisted.
#[test]
fn huge_timeout_is_refused_and_servers_keep_serving() {
    if is_c_pen() {
        return; // C pen reads the number with atoi: -1
    }
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-r"])
        .server(a.spec())
        .server(b.spec())
        .start();
    let before = pen.ctl("timeout");
    let huge = pen.ctl("timeout 18446744073709551615");
    // Whatever the reply, healthy servers must serve and never be blacklisted (on the code
    // before the maxima, the wrapped connect deadline fired at once and blacklisted them).
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(pen.fetch());
    }
    assert!(!any_blacklisted(&pen), "{huge:?}: {:?}", pen.servers());
    assert!(
        seen.iter().any(|s| s == "A") && seen.iter().any(|s| s == "B"),
        "{seen:?}"
    );
    let refused = |token: &str| {
        format!(
            "error: '{token}': out of range, expected a number of seconds up to 31536000 \
             (one year)\n"
        )
    };
    assert_eq!(huge, refused("18446744073709551615"));
    assert_eq!(pen.ctl("timeout 31536001"), refused("31536001"));
    assert_eq!(pen.ctl("timeout"), before, "a refused value is not kept");
    for cmd in [
        "blacklist",
        "tracking",
        "idle_timeout",
        "recent",
        "handshake_timeout",
    ] {
        let reply = pen.ctl(&format!("{cmd} 18446744073709551615"));
        assert!(reply.contains("up to 31536000"), "{cmd}: {reply:?}");
    }
    // The largest accepted value is a working timeout.
    assert_eq!(pen.ctl("timeout 31536000"), "31536000\n");
    assert!(["A", "B"].contains(&pen.fetch().as_str()));
    assert!(!any_blacklisted(&pen), "{:?}", pen.servers());
}

/// A running `pen -U` (the harness's builder waits for a TCP listener, which UDP mode has
/// not). Dropping it kills the child by its handle and reaps it.
struct UdpPen {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: ScratchDir,
}

impl UdpPen {
    /// `pen -f [-u root] -C 127.0.0.1:CPORT -U OPTS 127.0.0.1:PORT SERVER`, once its control
    /// socket answers (the UDP socket is bound before).
    fn start(opts: &[&str], server: SocketAddr) -> UdpPen {
        let dir = ScratchDir::new("sec-udp");
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free udp port")
            .port();
        let control = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = vec!["-f".into()];
        if running_as_root() {
            args.extend(["-u".into(), "root".into()]);
        }
        args.extend(["-C".into(), control.clone(), "-U".into()]);
        args.extend(opts.iter().map(|o| o.to_string()));
        args.extend([format!("127.0.0.1:{port}"), server.to_string()]);
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
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        };
        let probe: SocketAddr = control.parse().expect("control address");
        let up = poll_until(WAIT, || {
            if let Ok(Some(_)) = pen.child.try_wait() {
                return Some(false);
            }
            TcpStream::connect_timeout(&probe, Duration::from_millis(200))
                .is_ok()
                .then_some(true)
        });
        assert_eq!(up, Some(true), "pen -U did not start: {}", pen.log_text());
        pen
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for UdpPen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("pen -U log:\n{}", self.log_text());
        }
    }
}

/// A UDP server that answers each datagram with the source port it came from (pen's
/// upstream port for that flow).
fn port_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind backend");
    let addr = s.local_addr().expect("local_addr");
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(from.port().to_string().as_bytes(), from);
        }
    });
    addr
}

/// A client socket on `ip` (its own source port: its own flow).
fn client_on(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind client");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    s
}

/// Sends one datagram and returns the answer, if one came.
fn ask(c: &UdpSocket, to: SocketAddr) -> Option<String> {
    c.send_to(b"q", to).expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = c.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned())
}

/// A flood of new flows (three addresses of 127/8, ten source ports each) past the `-x`
/// limit does not end a live client's flow: the backend sees that client on the same pen
/// port before and after (it used to be evicted as the least recently active flow, and come
/// back on a new upstream socket).
#[test]
fn udp_flood_of_sources_keeps_a_live_clients_flow() {
    if is_c_pen() {
        return; // [ours] flow admission
    }
    let backend = port_echo();
    // One worker: every flow lives in the same table, the case where eviction bit.
    let pen = UdpPen::start(&["-x", "8", "--workers", "1"], backend);
    let legit = client_on("127.0.0.1");
    let before = wait_for(Duration::from_secs(5), "the client's first answer", || {
        ask(&legit, pen.addr)
    });
    let mut flood = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        for _ in 0..10 {
            let c = client_on(ip);
            c.send_to(b"flood", pen.addr).expect("send flood");
            flood.push(c);
        }
    }
    // The flood's answers (if any) arrive before the client's next one: same pen socket,
    // handled in order.
    let after = wait_for(Duration::from_secs(5), "the client's next answer", || {
        ask(&legit, pen.addr)
    });
    assert_eq!(
        before, after,
        "the client's flow moved to a new upstream port"
    );
    // The flood still gets flows (it rolls over its own).
    let last = flood.last().expect("flood sockets");
    assert!(
        ask(last, pen.addr).is_some(),
        "a flooding source is served too"
    );
}
