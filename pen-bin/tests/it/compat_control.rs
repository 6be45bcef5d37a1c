//! Control protocol replies checked byte for byte against C pen 0.34.1 (issue 12, "drop-in
//! fidelity"). Every test here passes against both binaries (`PEN_BIN=/usr/bin/pen
//! PENCTL_BIN=/usr/bin/penctl`), except the parts guarded by `is_c_pen()`, where C pen crashes.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    connect, control, free_port, ipv6_available, is_c_pen, peek, pen_bin, running_as_root,
    wait_for, ListenKind, Peek, Pen, PenBuilder, ScratchDir, WAIT,
};

fn pen() -> Pen {
    let a = Backend::name("A");
    PenBuilder::new().server(a.spec()).start()
}

/// The reply through penctl (words joined by spaces, as both penctl programs do).
fn penctl(pen: &Pen, line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    pen.penctl(&words).0
}

#[test]
fn obsolete_and_dsr_commands_reply_as_c_pen() {
    let pen = pen();
    assert_eq!(pen.ctl("no block"), "");
    assert_eq!(pen.ctl("no delayed_forward"), "");
    assert_eq!(penctl(&pen, "no block"), "");
    assert_eq!(
        pen.ctl("tarpit_acl"),
        "tarpit_acl = -1",
        "no newline, as C pen"
    );
    assert_eq!(pen.ctl("tarpit_acl 3"), "tarpit_acl = 3");
    assert_eq!(pen.ctl("tarpit_acl"), "tarpit_acl = 3");
    assert_eq!(pen.ctl("idlers"), "Idlers: 0/0\n");
    assert_eq!(pen.ctl("idlers 0"), "Idlers: 0/0\n");
    assert_eq!(pen.ctl("dsr_if"), "");
    if is_c_pen() {
        // C pen dies of SIGSEGV after `dsr_if IF` and (mostly) after `idlers 2`.
        return;
    }
    assert_eq!(pen.ctl("idlers 2"), "Idlers: 0/2\n");
    assert_eq!(pen.ctl("idlers"), "Idlers: 0/2\n");
    assert_eq!(pen.ctl("dsr_if eth1"), "");
    assert_eq!(pen.ctl("tarpit_acl -1"), "tarpit_acl = -1");
    assert_eq!(
        pen.ctl("mode"),
        "no hash no roundrobin no stubborn no weight no prio\n"
    );
}

#[test]
fn a_trailing_comment_is_ignored_on_penctl_and_config_lines() {
    let dir = ScratchDir::new("comment");
    let cfg = dir.0.join("pen.cfg");
    std::fs::write(&cfg, "blacklist 7 # seven\ntimeout 4 #four\n").expect("write");
    let a = Backend::name("A");
    let cfg_arg = cfg.display().to_string();
    let pen = PenBuilder::new()
        .opts(&["-F", &cfg_arg])
        .server(a.spec())
        .start();
    assert_eq!(pen.ctl("blacklist"), "7\n");
    assert_eq!(pen.ctl("timeout"), "4\n");
    assert_eq!(pen.ctl("blacklist 5 # note"), "5\n");
    assert_eq!(penctl(&pen, "tracking 9 # nine"), "9\n");
    assert_eq!(
        pen.ctl("mode # c"),
        "no hash no roundrobin no stubborn no weight no prio\n"
    );
}

#[test]
fn include_replies_nothing() {
    let dir = ScratchDir::new("include");
    let inc = dir.0.join("inc.cfg");
    std::fs::write(&inc, "blacklist 9\ntimeout 4\nidle_timeout 3\n").expect("write");
    let pen = pen();
    assert_eq!(pen.ctl(&format!("include {}", inc.display())), "");
    assert_eq!(pen.ctl("blacklist"), "9\n");
    assert_eq!(pen.ctl("timeout"), "4\n");
    assert_eq!(pen.ctl("idle_timeout"), "Idle timeout: 3 seconds\n");
}

/// Sends `bytes` without a newline, keeps the connection open, and returns what came back
/// within 2 s and how long it took.
fn unterminated(pen: &Pen, bytes: &[u8]) -> (Peek, Duration) {
    let mut s = connect(&pen.control);
    s.write_all(bytes).expect("send");
    let t0 = Instant::now();
    let got = peek(&mut s, Duration::from_secs(2));
    (got, t0.elapsed())
}

#[test]
fn an_unterminated_command_is_answered_at_once() {
    let pen = pen();
    let (got, took) = unterminated(&pen, b"blacklist");
    assert_eq!(got, Peek::Data(b"30\n".to_vec()));
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let (got, _) = unterminated(&pen, b"blacklist 12");
    assert_eq!(got, Peek::Data(b"12\n".to_vec()));
    assert_eq!(pen.ctl("blacklist"), "12\n");
}

#[test]
fn conn_max_only_raises_the_limit() {
    let pen = pen();
    assert_eq!(pen.ctl("conn_max"), "500\n");
    assert_eq!(penctl(&pen, "conn_max 600"), "600\n");
    assert_eq!(penctl(&pen, "conn_max 100"), "600\n");
    assert_eq!(pen.ctl("conn_max"), "600\n");
}

#[test]
fn connection_and_close_ranges_and_a_free_slot_as_c_pen() {
    let pen = pen();
    let free = "state = 0\ndownfd = -1, upfd = -1\nclient = 0, server = 0\npend = 0\n";
    assert_eq!(
        pen.ctl("connection 499"),
        format!("Connection 499:\n{free}")
    );
    assert_eq!(pen.ctl("connection 500"), "Connection 500 out of range\n");
    assert_eq!(
        pen.ctl("connection 99999"),
        "Connection 99999 out of range\n"
    );
    assert_eq!(pen.ctl("close 500"), "Connection 500 out of range\n");
    assert_eq!(pen.ctl("close 499"), "Forcibly closing connection 499\n");
    assert_eq!(pen.ctl("conn_max 600"), "600\n");
    assert_eq!(
        pen.ctl("connection 599"),
        format!("Connection 599:\n{free}")
    );
    assert_eq!(pen.ctl("connection 600"), "Connection 600 out of range\n");
}

#[test]
fn listen_echoes_the_address_as_given() {
    if !ipv6_available() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .listen(ListenKind::AnyV6)
        .server(a.spec())
        .start();
    let given = pen
        .args
        .iter()
        .find(|w| w.starts_with(":::"))
        .expect("the :::PORT operand")
        .clone();
    assert_eq!(pen.ctl("listen"), format!("{given}\n"));
    // A bare port, live: the reply and the query echo it; the listener really moved.
    let port = free_port();
    assert_eq!(pen.ctl(&format!("listen {port}")), format!("{port}\n"));
    assert_eq!(pen.ctl("listen"), format!("{port}\n"));
    let moved = format!("127.0.0.1:{port}");
    wait_for(WAIT, "served on the new port", || {
        let mut s = std::net::TcpStream::connect(&moved).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        let got = super::harness::read_to_eof(&mut s);
        (got == "A").then_some(())
    });
}

/// A pen started by hand, killed (by PID) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn control_echoes_a_bare_port_as_given() {
    let a = Backend::name("A");
    let cport = free_port();
    let mut args = vec!["-f".to_string()];
    if running_as_root() {
        args.extend(["-u".to_string(), "root".to_string()]);
    }
    args.extend([
        "-C".to_string(),
        cport.to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ]);
    let _pen = Proc(
        Command::new(pen_bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pen"),
    );
    let addr = format!("127.0.0.1:{cport}");
    wait_for(WAIT, "the control port", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    assert_eq!(control(&addr, "control"), format!("{cport}\n"));
}
