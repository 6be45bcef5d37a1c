//! `transparent` for real (issue 12, C-11): three network namespaces made for the test (a
//! client, pen, a server), joined by veth pairs, with the server's route back to the client
//! through pen's namespace. Under `transparent` the server must see the client's address as
//! its peer; without it, pen's. Every address lives inside the namespaces only (the host's
//! interfaces and routes are never touched) and the namespaces are deleted at the end, also on
//! failure. Skips (with a message) when not root, or `ip` or `python3` is missing, or namespaces
//! cannot be created. Runs against both binaries.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::{pen_bin, poll_until, running_as_root};

/// Client namespace side, pen's two sides, server side.
const CLIENT_IP: &str = "10.77.1.2";
const PEN_CLIENT_SIDE: &str = "10.77.1.1";
const PEN_SERVER_SIDE: &str = "10.77.2.1";
const SERVER_IP: &str = "10.77.2.2";
const PEN_PORT: u16 = 8000;
const SERVER_PORT: u16 = 8080;

/// Answers every connection with `peer ADDRESS\n` (its peer's address), forever.
const SERVER_PY: &str = r"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('10.77.2.2', 8080))
l.listen()
while True:
    s, a = l.accept()
    s.sendall(('peer %s\n' % a[0]).encode())
    s.close()
";

/// Connects to pen once, prints what the server said (fails if pen does not listen yet: the
/// test retries).
const CLIENT_PY: &str = r"
import socket
s = socket.create_connection(('10.77.1.1', 8000), timeout=3)
d = b''
while True:
    x = s.recv(100)
    if not x: break
    d += x
print(d.decode().strip())
";

/// Runs `ip ARGS`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test's namespaces; dropping deletes them (and with them their veth ends).
struct Namespaces {
    client: String,
    pen: String,
    server: String,
}

impl Namespaces {
    /// Creates and wires the three namespaces; `None` if it cannot (then nothing is left).
    fn create() -> Option<Namespaces> {
        let id = std::process::id();
        let ns = Namespaces {
            client: format!("penc{id}"),
            pen: format!("penp{id}"),
            server: format!("pens{id}"),
        };
        for n in [&ns.client, &ns.pen, &ns.server] {
            if !ip(&["netns", "add", n]) {
                return None; // `ns` drops: what was made is deleted
            }
        }
        let (vc, vp1, vp2, vs) = (
            format!("vc{id}"),
            format!("vp1{id}"),
            format!("vp2{id}"),
            format!("vs{id}"),
        );
        let (c, p, s) = (ns.client.as_str(), ns.pen.as_str(), ns.server.as_str());
        let steps: Vec<Vec<&str>> = vec![
            // veth pairs created with both ends already inside the namespaces.
            vec![
                "link", "add", &vc, "netns", c, "type", "veth", "peer", "name", &vp1, "netns", p,
            ],
            vec![
                "link", "add", &vs, "netns", s, "type", "veth", "peer", "name", &vp2, "netns", p,
            ],
            vec!["-n", c, "addr", "add", "10.77.1.2/24", "dev", &vc],
            vec!["-n", p, "addr", "add", "10.77.1.1/24", "dev", &vp1],
            vec!["-n", p, "addr", "add", "10.77.2.1/24", "dev", &vp2],
            vec!["-n", s, "addr", "add", "10.77.2.2/24", "dev", &vs],
            vec!["-n", c, "link", "set", &vc, "up"],
            vec!["-n", p, "link", "set", &vp1, "up"],
            vec!["-n", p, "link", "set", &vp2, "up"],
            vec!["-n", s, "link", "set", &vs, "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
            vec!["-n", p, "link", "set", "lo", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            // The server answers the client's address through pen's namespace...
            vec!["-n", s, "route", "add", "default", "via", "10.77.2.1"],
            // ...where whatever comes from the server's side is delivered locally (to pen's
            // transparent socket bound to the client's address) rather than forwarded: the
            // minimal policy routing, no packet marks or firewall rules needed.
            vec!["-n", p, "rule", "add", "iif", &vp2, "lookup", "100"],
            vec![
                "-n",
                p,
                "route",
                "add",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                "100",
            ],
        ];
        for step in &steps {
            if !ip(step) {
                eprintln!("netns setup failed at: ip {}", step.join(" "));
                return None;
            }
        }
        Some(ns)
    }

    /// `ip netns exec NS PROG ARGS` (ip execs the program: the child is it).
    fn spawn(&self, ns: &str, prog: &str, args: &[&str]) -> Killed {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, prog])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        Killed(child)
    }

    /// Runs the client in its namespace; what the server told it.
    fn client_sees(&self) -> String {
        // Bounded by the script's own timeouts (3 s to connect, then 3 s per read).
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, "python3", "-c", CLIENT_PY])
            .output()
            .expect("run the client");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.client, &self.pen, &self.server] {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// A child killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// C-11: under `transparent` the server sees the client's own address (pen binds its
/// server-side socket to it with `IP_TRANSPARENT`); without it, or without the privilege,
/// pen's address.
#[test]
fn transparent_shows_the_client_address_to_the_server() {
    if !running_as_root() {
        eprintln!("SKIPPED transparent_shows_the_client_address_to_the_server: needs root");
        return;
    }
    if !have("ip", "-V") || !have("python3", "-V") {
        eprintln!(
            "SKIPPED transparent_shows_the_client_address_to_the_server: needs ip and python3"
        );
        return;
    }
    // Declared first: dropped last, after the processes below are gone.
    let Some(ns) = Namespaces::create() else {
        eprintln!(
            "SKIPPED transparent_shows_the_client_address_to_the_server: \
             cannot create network namespaces"
        );
        return;
    };
    let _server = ns.spawn(&ns.server, "python3", &["-c", SERVER_PY]);
    // The server must listen before pen's first connect (a refused one blacklists it).
    let up = poll_until(Duration::from_secs(10), || {
        let probe = format!(
            "import socket; socket.create_connection(('{SERVER_IP}', {SERVER_PORT}), timeout=1)"
        );
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.pen, "python3", "-c", &probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(())
    });
    assert!(up.is_some(), "the server in its namespace did not start");
    let pen = pen_bin().display().to_string();
    let listen = format!("{PEN_CLIENT_SIDE}:{PEN_PORT}");
    let server = format!("{SERVER_IP}:{SERVER_PORT}");
    // Without `transparent`; with it; with it but without the privilege (`-u nobody`): as in
    // C pen the connect then goes ahead from pen's own address (the server is not failed).
    let cases: [(&[&str], &str); 3] = [
        (&[], PEN_SERVER_SIDE),
        (&["-o", "transparent"], CLIENT_IP),
        (&["-u", "nobody", "-o", "transparent"], PEN_SERVER_SIDE),
    ];
    for (opts, expected) in cases {
        let mut args = vec!["-f"];
        args.extend(opts);
        args.extend([listen.as_str(), server.as_str()]);
        let _pen = ns.spawn(&ns.pen, &pen, &args);
        // Retried until pen listens (a refused connect fails the client at once).
        let seen = poll_until(Duration::from_secs(10), || {
            Some(ns.client_sees()).filter(|s| s.starts_with("peer "))
        })
        .unwrap_or_default();
        assert_eq!(seen, format!("peer {expected}"), "options {opts:?}");
    }
}

// ---- The HA lab's servers and client (issue 14 item 4, used by ha_netns.rs) ----
//
// Programs run inside the namespaces of contrib/ha/lab.sh (its addresses are built in): four
// servers that say who they are and who connected, and a client driven line by line from the
// test, acting as many clients (one source address each).

use std::io::{BufRead, BufReader, Write};
use std::process::ChildStdin;
use std::sync::mpsc::{self, Receiver};

/// The four servers: each greets a connection with `sN PEER\n` (PEER: the pen's address),
/// then echoes. Prints `ready` once all four listen.
pub(crate) const LAB_SERVERS_PY: &str = r"
import socket, threading
def serve(c, name):
    try:
        c.sendall(('%s %s\n' % (name, c.getpeername()[0])).encode())
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()
def accept(l, name):
    while True:
        c, _ = l.accept()
        threading.Thread(target=serve, args=(c, name), daemon=True).start()
ls = []
for i in range(4):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('10.78.3.%d' % (21 + i), 8080))
    l.listen(1024)
    ls.append(threading.Thread(target=accept, args=(l, 's%d' % i), daemon=True))
for t in ls: t.start()
print('ready', flush=True)
for t in ls: t.join()
";

/// The client side: one command per line on stdin, one answer line on stdout. Client `i` is
/// source address 10.78.128.0 + i (the client's namespace owns all of 10.78.128.0/17).
/// - `try DST`: one connection to DST:8000 (1 s at most): `ok` or `failed`.
/// - `map DST A B`: clients A..B connect once each: `sN@PEER` per client (`-`: failed).
/// - `hold DST A B`: the same, but the connections stay open.
/// - `check`: each held connection sends `ping`: `1` if echoed, `0` if not.
/// - `round DST A R`: R new connections (0.25 s each) from clients A, A+1, ...: how many
///   failed.
pub(crate) const LAB_CLIENT_PY: &str = r"
import ipaddress, socket, sys
BASE = int(ipaddress.IPv4Address('10.78.128.0'))
def greet(dst, i, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((str(ipaddress.IPv4Address(BASE + i)), 0))
        s.connect((dst, 8000))
        line = b''
        while not line.endswith(b'\n'):
            d = s.recv(100)
            if not d: raise OSError('closed')
            line += d
        name, peer = line.decode().split()
        return s, name + '@' + peer
    except (OSError, ValueError):
        s.close()
        return None, '-'
held = []
for cmd in sys.stdin:
    w = cmd.split()
    if w[0] == 'try':
        s, g = greet(w[1], 0, 1)
        if s: s.close()
        print('ok' if s else 'failed', flush=True)
    elif w[0] in ('map', 'hold'):
        out = []
        for i in range(int(w[2]), int(w[3])):
            s, g = greet(w[1], i, 3)
            out.append(g)
            if w[0] == 'hold': held.append(s)
            elif s: s.close()
        print(' '.join(out), flush=True)
    elif w[0] == 'check':
        out = []
        for s in held:
            ok = 0
            if s:
                try:
                    s.settimeout(2)
                    s.sendall(b'ping\n')
                    ok = int(s.recv(100) == b'ping\n')
                except OSError:
                    pass
            out.append(str(ok))
        print(' '.join(out), flush=True)
    elif w[0] == 'round':
        dst, i, r = w[1], int(w[2]), int(w[3])
        failed = 0
        for k in range(r):
            s, g = greet(dst, i + k, 0.25)
            if s: s.close()
            else: failed += 1
        print(failed, flush=True)
";

/// The lines a reader yields, through a channel (so that waits on them are bounded).
pub(crate) fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The client driver ([`LAB_CLIENT_PY`]) in the client's namespace; killed when dropped.
pub(crate) struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Client {
    /// Starts the driver in namespace `ns`.
    pub(crate) fn start(ns: &str) -> Client {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", LAB_CLIENT_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the client");
        let stdin = child.stdin.take().expect("client's stdin");
        let lines = lines_of(child.stdout.take().expect("client's stdout"));
        Client {
            child,
            stdin,
            lines,
        }
    }

    /// One command, its answer (at most 60 s).
    pub(crate) fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write to the client");
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("client: no answer to {cmd:?}: {e}"))
    }

    /// Waits (up to 10 s) until DST:8000 accepts connections.
    pub(crate) fn wait(&mut self, dst: &str) {
        let up = poll_until(Duration::from_secs(10), || {
            (self.ask(&format!("try {dst}")) == "ok").then_some(())
        });
        assert!(up.is_some(), "{dst}:8000 never answered");
    }

    /// `map`/`hold`: per client, (server, pen's address) or `None` if the connection failed.
    pub(crate) fn connect(&mut self, how: &str, dst: &str, from: usize, to: usize) -> Vec<Conn> {
        let answer = self.ask(&format!("{how} {dst} {from} {to}"));
        answer
            .split(' ')
            .map(|w| {
                w.split_once('@')
                    .map(|(s, p)| (s.to_string(), p.to_string()))
            })
            .collect()
    }

    /// Rounds of `round` new connections to DST:8000 from clients `from`, `from + 1`, ...
    /// until a whole round succeeds (at most 30 s): (seconds from the call to the start of that
    /// round, connections failed before it).
    pub(crate) fn probe(&mut self, dst: &str, from: usize, round: usize) -> (f64, u64) {
        let t0 = std::time::Instant::now();
        let (mut next, mut failed) = (from, 0u64);
        let gap = poll_until(Duration::from_secs(30), || {
            let start = t0.elapsed().as_secs_f64();
            let answer = self.ask(&format!("round {dst} {next} {round}"));
            next += round;
            match answer.parse::<u64>() {
                Ok(0) => Some(start),
                Ok(n) => {
                    failed += n;
                    None
                }
                Err(_) => panic!("client: {answer:?} to a round"),
            }
        });
        let gap =
            gap.unwrap_or_else(|| panic!("no new connection succeeded: timeout failed {failed}"));
        (gap, failed)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client's connection: (server name, the address of the pen the server saw).
pub(crate) type Conn = Option<(String, String)>;

/// The server names of a `map`, panicking if a connection failed.
pub(crate) fn servers_of(conns: &[Conn], what: &str) -> Vec<String> {
    conns
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Some((s, _)) => s.clone(),
            None => panic!("{what}: client {i} could not connect"),
        })
        .collect()
}
