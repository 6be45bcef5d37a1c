//! Issue 11, control and metrics endpoints: a bare port binds loopback only, a Unix control
//! socket is private to pen's user and never taken over from another process, access levels
//! per endpoint, a metrics ACL of its own, and idle control clients cannot hold penctl off.
//! Ours only (C pen binds every address and has none of this: docs/compatibility.md 8.1).

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    connect, connect_from, connect_unix, control, control_from, free_port, is_c_pen, pen_bin,
    penctl_bin, poll_until, read_to_eof, run_bounded_full, running_as_root, wait_for, PenBuilder,
    ScratchDir, WAIT,
};

/// A pen started with exactly the given arguments (after `-f`, and `-u root` as root); killed
/// by PID on drop.
struct Started {
    child: Child,
    log: PathBuf,
    _dir: ScratchDir,
}

impl Started {
    fn new(args: &[String]) -> Started {
        let dir = ScratchDir::new("secctl");
        Started::in_dir(dir, args)
    }

    fn in_dir(dir: ScratchDir, args: &[String]) -> Started {
        let log = dir.0.join("pen.log");
        let logf = std::fs::File::create(&log).expect("create log");
        let mut all = vec!["-f".to_string()];
        if running_as_root() && !args.iter().any(|a| a == "-u") {
            all.extend(["-u".to_string(), "root".to_string()]);
        }
        all.extend(args.iter().cloned());
        let child = Command::new(pen_bin())
            .args(&all)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn pen");
        Started {
            child,
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM by PID, then waits (bounded) for pen to exit.
    fn terminate(&mut self) {
        let st = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success());
        assert_eq!(self.exit_code(), Some(0), "{}", self.log_text());
    }

    /// Waits (bounded) for pen to exit; its status code.
    fn exit_code(&mut self) -> Option<i32> {
        poll_until(WAIT, || self.child.try_wait().ok().flatten()).and_then(|s| s.code())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_tcp(addr: &str) {
    wait_for(WAIT, addr, || TcpStream::connect(addr).ok());
}

/// The local address (`/proc/net/tcp` hex, e.g. `0100007F` for 127.0.0.1) of the IPv4
/// socket listening on `port`.
fn listening_v4_addr(port: u16) -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let pat = format!(":{port:04X}");
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (addr, p) = w.get(1)?.split_once(':')?;
        (format!(":{p}") == pat && *w.get(3)? == "0A").then(|| addr.to_string())
    })
}

const LOOPBACK_HEX: &str = "0100007F";

#[test]
fn bare_control_and_metrics_ports_bind_loopback_only() {
    if is_c_pen() {
        return; // C pen binds every address (declared difference)
    }
    let a = Backend::name("A");
    let (cport, mport) = (free_port(), free_port());
    let _pen = Started::new(&[
        "-C".into(),
        cport.to_string(),
        "--metrics".into(),
        mport.to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ]);
    wait_tcp(&format!("127.0.0.1:{cport}"));
    wait_tcp(&format!("127.0.0.1:{mport}"));
    assert_eq!(listening_v4_addr(cport).as_deref(), Some(LOOPBACK_HEX));
    assert_eq!(listening_v4_addr(mport).as_deref(), Some(LOOPBACK_HEX));
    // The query still shows the text as given.
    assert_eq!(
        control(&format!("127.0.0.1:{cport}"), "control"),
        format!("{cport}\n")
    );
}

#[test]
fn explicit_wildcard_control_address_binds_there_with_a_warning_at_level_operate() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let cport = free_port();
    let dir = ScratchDir::new("secctl-wild");
    let target = dir.0.join("written.cfg");
    let pen = Started::in_dir(
        dir,
        &[
            "-C".into(),
            format!("0.0.0.0:{cport}"),
            format!("127.0.0.1:{}", free_port()),
            a.spec(),
        ],
    );
    let addr = format!("127.0.0.1:{cport}");
    wait_tcp(&addr);
    assert_eq!(listening_v4_addr(cport).as_deref(), Some("00000000"));
    assert!(
        pen.log_text().contains("is not on a loopback address"),
        "no warning: {}",
        pen.log_text()
    );
    // Not a loopback endpoint: operate by default, whoever connects.
    let reply = control(&addr, &format!("write {}", target.display()));
    assert_eq!(
        reply,
        "Command 'write' needs level admin; this control socket is at level operate\n"
    );
    assert!(!target.exists());
    assert_eq!(control(&addr, "server 0 max 7"), "");
    assert!(control(&addr, "servers").contains("max 7"));
}

#[test]
fn control_levels_refuse_what_they_do_not_allow() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let op = PenBuilder::new()
        .opts(&["--control-level", "operate"])
        .server(a.spec())
        .start();
    let target = std::env::temp_dir().join(format!("pen-secctl-{}.cfg", std::process::id()));
    let _ = std::fs::remove_file(&target);
    let reply = op.ctl(&format!("write {}", target.display()));
    assert_eq!(
        reply,
        "Command 'write' needs level admin; this control socket is at level operate\n"
    );
    assert!(!target.exists(), "write ran at level operate");
    for line in ["include /etc/passwd", "log /tmp/x", "listen 1", "exit"] {
        assert!(op.ctl(line).contains("needs level admin"), "{line}");
    }
    assert_eq!(op.ctl("server 0 weight 3"), "");
    assert!(op.ctl("servers").contains("weight 3"));
    // penctl shows the refusal too.
    let (out, _) = op.penctl(&["write"]);
    assert!(out.contains("needs level admin"), "{out}");

    let read = PenBuilder::new()
        .opts(&["--control-level", "read"])
        .server(a.spec())
        .start();
    assert_eq!(
        read.ctl("hash"),
        "Command 'hash' needs level operate; this control socket is at level read\n"
    );
    assert!(!read.ctl("mode").contains("needs level"));
    assert!(read.ctl("metrics").contains("pen_"));

    // The default on a loopback address stays admin: C pen's behaviour for penctl on localhost.
    let admin = PenBuilder::new().server(a.spec()).start();
    assert_eq!(admin.ctl("hash"), "");
    assert!(admin.ctl("write /nonexistent-dir/x").contains("error"));
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn unix_control_socket_is_private_to_pen_user() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().control_unix().server(a.spec()).start();
    let path = PathBuf::from(&pen.control);
    assert_eq!(mode_of(&path), 0o600);
    assert!(pen.ctl("servers").contains("127.0.0.1"));
    if running_as_root() {
        // After dropping to another user, the socket is theirs (0600), not root's.
        let nobody: u32 = std::process::Command::new("id")
            .args(["-u", "nobody"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534);
        let dir = ScratchDir::new("secctl-nobody");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sock = dir.0.join("ctl.sock");
        let _pen = Started::new(&[
            "-u".into(),
            "nobody".into(),
            "--control-group".into(),
            "4242".into(),
            "-C".into(),
            sock.display().to_string(),
            format!("127.0.0.1:{}", free_port()),
            a.spec(),
        ]);
        wait_for(WAIT, "the control socket", || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
        let meta = std::fs::symlink_metadata(&sock).expect("stat");
        assert_eq!(meta.uid(), nobody);
        assert_eq!(meta.gid(), 4242);
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    }
}

#[test]
fn control_socket_never_takes_over_a_live_socket() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("secctl-live");
    let theirs = dir.0.join("theirs.sock");
    let other = UnixListener::bind(&theirs).expect("bind theirs");
    // -C on it: refused, and the other process keeps its socket.
    let mut pen = Started::new(&[
        "-C".into(),
        theirs.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ]);
    assert_eq!(pen.exit_code(), Some(1), "{}", pen.log_text());
    assert!(
        pen.log_text().contains("not replaced"),
        "{}",
        pen.log_text()
    );
    let mut c = connect_unix(&theirs);
    c.write_all(b"x").expect("write");
    assert!(other.accept().is_ok(), "the other process lost its socket");

    // A file that is not a socket: refused, untouched.
    let file = dir.0.join("file");
    std::fs::write(&file, "keep").expect("write");
    let mut pen = Started::new(&[
        "-C".into(),
        file.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ]);
    assert_eq!(pen.exit_code(), Some(1));
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("keep"));

    // A stale socket (nobody listens): another program's, for all pen knows: refused, kept.
    let stale = dir.0.join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind stale"));
    assert!(stale.exists());
    let mut pen = Started::new(&[
        "-C".into(),
        stale.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ]);
    assert_eq!(pen.exit_code(), Some(1));
    assert!(
        stale.exists(),
        "pen removed a socket file it did not create"
    );

    // Its own socket pen removes when it stops, so the next pen starts on the same path.
    let ours = dir.0.join("ours.sock");
    let args = [
        "-C".to_string(),
        ours.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
        a.spec(),
    ];
    for round in 0..2 {
        let mut pen = Started::new(&args);
        wait_for(WAIT, "pen on its control socket", || {
            std::os::unix::net::UnixStream::connect(&ours).ok()
        });
        assert!(
            control(&ours.display().to_string(), "servers").contains("127.0.0.1"),
            "round {round}"
        );
        pen.terminate();
        assert!(
            !ours.exists(),
            "round {round}: pen left its control socket behind"
        );
    }
}

#[test]
fn listen_path_never_takes_over_a_live_socket() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("secctl-listen");
    let theirs = dir.0.join("theirs.sock");
    let other = UnixListener::bind(&theirs).expect("bind theirs");
    // `listen /path` (the data listener) follows the -C rule.
    let running = PenBuilder::new().server(a.spec()).start();
    let reply = running.ctl(&format!("listen {}", theirs.display()));
    assert!(reply.contains("not replaced"), "{reply}");
    let mut c = connect_unix(&theirs);
    c.write_all(b"y").expect("write");
    assert!(
        other.accept().is_ok(),
        "listen took the other process's socket"
    );
    assert!(running.ctl("servers").contains("127.0.0.1"));
}

/// Scrapes `/metrics` from 127.0.0.`n`: the response, or "" when pen closed at once.
fn scrape_from(n: u8, addr: &str) -> String {
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, n), addr);
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    read_to_eof(&mut s)
}

#[test]
fn metrics_are_guarded_by_metrics_acl_not_control_acl() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let pen = PenBuilder::new()
        .opts(&[
            "--metrics",
            &maddr,
            "-O",
            "acl 1 deny 127.0.0.2",
            "-O",
            "control_acl 1",
            "-O",
            "acl 2 deny 127.0.0.3",
            "-O",
            "metrics_acl 2",
        ])
        .server(a.spec())
        .start();
    wait_tcp(&maddr);
    // The monitoring host may scrape, yet not use the control socket.
    assert!(scrape_from(2, &maddr).starts_with("HTTP/1.1 200"));
    assert_eq!(control_from(2, &pen.control, "servers"), "");
    // The metrics ACL denies 127.0.0.3, who may still use penctl.
    assert_eq!(scrape_from(3, &maddr), "");
    assert!(control_from(3, &pen.control, "servers").contains("127.0.0.1"));
}

#[test]
fn idle_control_clients_do_not_delay_penctl() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    // 70 connections that never send a byte: more than the 64 places.
    let idle: Vec<TcpStream> = (0..70).map(|_| connect(&pen.control)).collect();
    let t0 = Instant::now();
    let (out, err, code) = run_bounded_full(
        &penctl_bin(),
        &[pen.control.clone(), "servers".into()],
        Duration::from_secs(5),
    );
    let took = t0.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1"), "{out}");
    assert!(took < Duration::from_secs(1), "penctl took {took:?}");
    drop(idle);
}
