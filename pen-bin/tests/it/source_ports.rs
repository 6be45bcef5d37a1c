//! `source IP` leaves the server-side port to the connect (`IP_BIND_ADDRESS_NO_PORT`, issue
//! 15): a local port then serves one connection per destination instead of one in all. Run in
//! a network namespace made for the test, whose ephemeral port range is cut to two ports; the
//! namespace is deleted at the end, also on failure. Skips (with a message) when not root, or
//! `ip` or `python3` is missing, or the namespace cannot be made.

use std::process::{Child, Command, Stdio};

use super::harness::{is_c_pen, pen_bin, running_as_root};

/// Two servers that greet each connection and keep it open; pen's listener is waited for; then four
/// clients, each bound to a fixed port outside the ephemeral range, connect through pen at
/// once and each waits for a greeting. Prints how many got one.
const SCRIPT: &str = r"
import socket, threading, time
def serve(port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('127.0.0.1', port))
    l.listen()
    held = []
    while True:
        s, _ = l.accept()
        s.sendall(b'hi')
        held.append(s)
for p in (8081, 8082):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
# pen listens when port 8000 (1F40) is in LISTEN (0A): a probe connection would hold a port.
end = time.time() + 5
while not any(l.split()[1].endswith(':1F40') and l.split()[3] == '0A'
              for l in open('/proc/net/tcp').readlines()[1:]):
    if time.time() > end: raise SystemExit('pen did not listen')
    time.sleep(0.05)
clients, ok = [], 0
for i in range(4):
    c = socket.socket()
    c.bind(('127.0.0.1', 9001 + i))
    c.settimeout(3)
    c.connect(('127.0.0.1', 8000))
    clients.append(c)
    try:
        ok += c.recv(2) == b'hi'
    except OSError:
        pass
print(ok)
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

/// The namespace, deleted when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
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

#[test]
fn with_source_a_port_serves_one_connection_per_server() {
    let tools = ["ip", "python3"].iter().all(|t| {
        Command::new(t)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !running_as_root() || !tools {
        eprintln!("skipped: needs root, ip and python3");
        return;
    }
    let ns = Netns(format!("pensrc{}", std::process::id()));
    if !ip(&["netns", "add", &ns.0]) {
        eprintln!("skipped: cannot create a network namespace");
        return;
    }
    let range = "echo 50000 50001 > /proc/sys/net/ipv4/ip_local_port_range";
    let set = Command::new("ip")
        .args(["netns", "exec", &ns.0, "sh", "-c", range])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]) && set,
        "set up the namespace"
    );
    let bin = pen_bin();
    let pen = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&bin)
        .args(["-f", "-r", "-O", "source 127.0.0.1", "127.0.0.1:8000"])
        .args(["127.0.0.1:8081", "127.0.0.1:8082"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pen in the namespace");
    let _pen = Killed(pen);
    // Bounded by the script's own timeouts (5 s for pen to listen, 3 s per greeting).
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", SCRIPT])
        .output()
        .expect("run the clients");
    let greeted = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if is_c_pen() {
        // C pen binds port 0, which takes one of the two ports for good: two at most.
        eprintln!("C pen: {greeted} of 4 connections greeted");
        return;
    }
    assert_eq!(
        greeted,
        "4",
        "connections greeted through two local ports to two servers (stderr: {})",
        String::from_utf8_lossy(&out.stderr)
    );
}
