//! Operations: daemon mode (no `-f`), start-up errors reported before detaching, dropping
//! privileges on a privileged port, chroot, and signals that must not kill pen.
//!
//! The harness always passes `-f`, so daemons are spawned here. Every daemon is tracked by the
//! pid from its pid file and killed by that pid (after checking it is our pen) if a test fails.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    free_port, is_c_pen, pen_bin, poll_until, run_bounded_full, running_as_root, wait_for,
    wait_until, PenBuilder, ScratchDir, WAIT,
};

/// Is process `pid` still there (a zombie counts as gone: nobody may reap a daemon's corpse)?
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => !s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("Z")),
        Err(_) => false,
    }
}

/// The process's command line, words joined by spaces.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// A daemon we started: killed by pid on drop if still running (and still our pen).
struct Daemon {
    pid: u32,
    /// A word of its command line that only this daemon has (its pid file path).
    marker: String,
}

impl Daemon {
    fn is_ours(&self) -> bool {
        alive(self.pid) && cmdline(self.pid).contains(&self.marker)
    }

    fn signal(&self, sig: &str) {
        assert!(self.is_ours(), "pid {} is not our pen", self.pid);
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {sig} {}", self.pid);
    }

    /// Waits (bounded) for the process to be gone.
    fn wait_gone(&self, within: Duration) -> bool {
        poll_until(within, || (!alive(self.pid)).then_some(())).is_some()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_ours() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// Every process whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| alive(pid) && cmdline(pid).contains(marker))
        .collect()
}

/// `-u root` when running as root (pen refuses `-C` as root without `-u`).
fn user_args() -> Vec<String> {
    if running_as_root() {
        vec!["-u".into(), "root".into()]
    } else {
        Vec::new()
    }
}

/// Runs pen without `-f` (so it detaches) with `-p PIDFILE` added; returns (stderr, status) of
/// the launching process, and the daemon if one was left running (status 0).
fn launch(dir: &ScratchDir, args: &[String]) -> (String, i32, Option<Daemon>) {
    let pid_file = dir.0.join("pen.pid");
    let mut all = vec!["-p".to_string(), pid_file.display().to_string()];
    all.extend(args.iter().cloned());
    let (out, err, code) = run_bounded_full(&pen_bin(), &all, WAIT);
    let daemon = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(|pid| Daemon {
            pid,
            marker: pid_file.display().to_string(),
        });
    (format!("{out}{err}"), code, daemon)
}

/// Connects to `addr` and reads until EOF (bounded).
fn fetch(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to pen");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read from pen");
    out
}

#[test]
fn daemon_detaches_writes_its_pid_relays_and_stops_on_term() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("daemon");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut args = user_args();
    args.extend([
        "-C".to_string(),
        format!("127.0.0.1:{}", free_port()),
        listen.to_string(),
        a.spec(),
    ]);
    let t0 = Instant::now();
    let pid_file = dir.0.join("pen.pid");
    let mut all = vec!["-p".to_string(), pid_file.display().to_string()];
    all.extend(args);
    let mut launcher = Command::new(pen_bin())
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pen");
    let launcher_pid = launcher.id();
    let status = wait_for(WAIT, "the launching pen to exit", || {
        launcher.try_wait().expect("try_wait")
    });
    let daemon = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(|pid| Daemon {
            pid,
            marker: pid_file.display().to_string(),
        });
    assert_eq!(status.code(), Some(0), "the launcher exits 0: {status}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the launcher returns promptly"
    );
    let daemon = daemon.expect("the pid file exists when the launcher has exited");
    assert_ne!(
        daemon.pid, launcher_pid,
        "the pid file holds the daemon's pid"
    );
    assert!(daemon.is_ours(), "the daemon runs");
    assert_eq!(fetch(listen), "A", "the daemon relays");
    daemon.signal("TERM");
    assert!(daemon.wait_gone(WAIT), "the daemon exits on SIGTERM");
    assert!(!pid_file.exists(), "pid file removed on SIGTERM");
    assert_eq!(
        processes_with(&pid_file.display().to_string()),
        Vec::<u32>::new(),
        "no pen left behind"
    );
}

/// A free port below 1024 on 127.0.0.1, if any.
fn free_privileged_port() -> Option<u16> {
    (600..1000).find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// The uid of `name` from /etc/passwd.
fn uid_of(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
    })
}

/// The four uids (real, effective, saved, filesystem) of a process.
fn uids(pid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|r| {
            r.split_whitespace()
                .filter_map(|u| u.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A foreground pen spawned here; killed by pid and reaped on drop.
struct Foreground(Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn drops_to_nobody_after_binding_a_privileged_port() {
    if is_c_pen() || !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (Some(nobody), Some(port)) = (uid_of("nobody"), free_privileged_port()) else {
        eprintln!("skipped: no user nobody or no free port below 1024");
        return;
    };
    let a = Backend::name("A");
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(pen_bin())
        .args([
            "-f",
            "-u",
            "nobody",
            "-C",
            &format!("127.0.0.1:{}", free_port()),
            &listen.to_string(),
            &a.spec(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pen");
    let mut pen = Foreground(child);
    let pid = pen.0.id();
    let reply = wait_for(WAIT, "pen to relay on the privileged port", || {
        if let Ok(Some(st)) = pen.0.try_wait() {
            panic!("pen exited: {st}");
        }
        let mut s = TcpStream::connect_timeout(&listen, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    });
    assert_eq!(reply, "A");
    assert_eq!(uids(pid), vec![nobody; 4], "pen runs as nobody");
    assert_eq!(fetch(listen), "A", "and keeps relaying");
}

#[test]
fn chroot_after_binding() {
    if is_c_pen() || !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("chroot");
    let jail = dir.0.join("jail");
    std::fs::create_dir(&jail).expect("mkdir jail");
    // The pid file is written inside the jail (as C pen does), and relative to its root:
    // `-p /pen.pid` is JAIL/pen.pid.
    let pid_file = jail.join("pen.pid");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args = vec![
        "-j".to_string(),
        jail.display().to_string(),
        "-p".to_string(),
        "/pen.pid".to_string(),
        listen.to_string(),
        a.spec(),
    ];
    let (out, err, code) = run_bounded_full(&pen_bin(), &args, WAIT);
    assert_eq!(code, 0, "pen -j: {out}{err}");
    let daemon = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .map(|pid| Daemon {
            pid,
            marker: jail.display().to_string(),
        })
        .expect("pid file in the jail");
    let root = std::fs::read_link(format!("/proc/{}/root", daemon.pid)).expect("root link");
    assert_eq!(
        root.canonicalize().unwrap(),
        jail.canonicalize().unwrap(),
        "pen runs chrooted"
    );
    assert_eq!(fetch(listen), "A", "a chrooted pen relays");
    daemon.signal("TERM");
    assert!(daemon.wait_gone(WAIT), "exits on SIGTERM");
    assert!(
        !pid_file.exists(),
        "the pid file in the jail removed at exit"
    );
}

/// Asserts a start-up failure: status `code`, one line naming `token`, and no daemon.
fn expect_start_error(args: &[String], code: i32, token: &str) {
    let dir = ScratchDir::new("starterr");
    let (msg, got, daemon) = launch(&dir, args);
    drop(daemon);
    assert_eq!(got, code, "pen {args:?}: status (said {msg:?})");
    let lines: Vec<&str> = msg.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "pen {args:?}: one line, got {msg:?}");
    assert!(lines[0].starts_with("pen: "), "{msg:?}");
    assert!(lines[0].contains(token), "{msg:?} must name {token:?}");
}

#[test]
fn listen_port_in_use_fails_before_detaching() {
    if is_c_pen() {
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    expect_start_error(&[addr.clone(), "127.0.0.1:9".into()], 1, &addr);
}

#[test]
fn bad_start_command_fails_before_detaching() {
    if is_c_pen() {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    expect_start_error(
        &["-O".into(), "bogus".into(), listen, "127.0.0.1:9".into()],
        2,
        "bogus",
    );
}

/// Writes a config file with `text` into a fresh scratch directory.
fn config_file(text: &str) -> (ScratchDir, PathBuf) {
    let dir = ScratchDir::new("conf");
    let p = dir.0.join("pen.conf");
    std::fs::write(&p, text).expect("write config");
    (dir, p)
}

fn with_config(p: &Path) -> Vec<String> {
    vec![
        "-F".into(),
        p.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
        "127.0.0.1:9".into(),
    ]
}

#[test]
fn bad_config_line_fails_before_detaching() {
    if is_c_pen() {
        return;
    }
    let (_dir, p) = config_file("# comment\ntimeout 3\nbogus 1\n");
    expect_start_error(&with_config(&p), 2, &format!("{}:3", p.display()));
}

#[test]
fn missing_config_file_fails_before_detaching() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("noconf");
    let p = dir.0.join("missing.conf");
    expect_start_error(&with_config(&p), 2, &p.display().to_string());
}

#[test]
fn usr1_and_hup_do_not_kill_pen() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("usr1-hup");
    let access = dir.0.join("access.log");
    let access_arg = access.display().to_string();
    let mut pen = PenBuilder::new()
        .pid_file()
        .opts(&["-l", &access_arg])
        .server(a.spec())
        .start();
    for sig in ["USR1", "HUP", "USR1", "HUP"] {
        // Each USR1 logs a summary: wait for pen's line. Without -F, HUP only reopens the
        // access log (and says nothing, C-17): move the log away and wait for the new one.
        if sig == "USR1" {
            let mark = "pen: statistics: ";
            let before = pen.log_text().matches(mark).count();
            pen.signal(sig);
            wait_until(WAIT, "pen's log line for USR1", || {
                pen.log_text().matches(mark).count() > before
            });
        } else {
            let _ = std::fs::remove_file(&access);
            pen.signal(sig);
            wait_until(WAIT, "the access log reopened by HUP", || access.exists());
        }
        assert!(
            pen.wait_exit(Duration::ZERO).is_none(),
            "pen survives {sig}"
        );
        assert_eq!(pen.fetch(), "A", "pen relays after {sig}");
    }
    // Each USR1 logs a one-line summary (PEN-SPEC 6); without -F, HUP says nothing (C-17).
    let log = wait_for(WAIT, "the SIGUSR1 summaries", || {
        let t = pen.log_text();
        (t.matches("pen: statistics: ").count() == 2).then_some(t)
    });
    assert!(log.contains("servers up"), "{log:?}");
    assert!(
        log.lines().all(|l| l.starts_with("pen: statistics: ")),
        "{log:?}"
    );
    pen.signal("TERM");
    let st = pen.wait_exit(WAIT).expect("pen exits on SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert!(!pen.pid_path().exists(), "pid file removed");
}

#[test]
fn daemon_survives_hup_and_usr1() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let dir = ScratchDir::new("daemonsig");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // A daemon logs to syslog; what shows that it acted on a signal is a file: HUP reopens the
    // access log (-l), USR1 writes the status file (-w), each creating its file if missing.
    let access = dir.0.join("access.log");
    let status = dir.0.join("status.html");
    let (msg, code, daemon) = launch(
        &dir,
        &[
            "-l".into(),
            access.display().to_string(),
            "-w".into(),
            status.display().to_string(),
            listen.to_string(),
            a.spec(),
        ],
    );
    assert_eq!(code, 0, "{msg}");
    let daemon = daemon.expect("pid file");
    for (sig, file) in [("HUP", &access), ("USR1", &status)] {
        let _ = std::fs::remove_file(file);
        daemon.signal(sig);
        wait_until(
            WAIT,
            &format!("the daemon to act on {sig} ({} created)", file.display()),
            || file.exists(),
        );
        assert!(daemon.is_ours(), "the daemon survives {sig}");
        assert_eq!(fetch(listen), "A", "the daemon relays after {sig}");
    }
    daemon.signal("TERM");
    assert!(daemon.wait_gone(WAIT));
}

#[test]
fn hup_reloads_the_config_file_all_or_nothing() {
    if is_c_pen() {
        return;
    }
    let a = Backend::name("A");
    let (_dir, conf) = config_file("timeout 5\n");
    let conf_arg = conf.display().to_string();
    let pen = PenBuilder::new()
        .opts(&["-F", &conf_arg])
        .server(a.spec())
        .start();
    assert_eq!(pen.ctl("timeout"), "5\n", "-F applied at start");
    std::fs::write(&conf, "timeout 7\n").expect("rewrite config");
    pen.signal("HUP");
    wait_for(WAIT, "the reload by SIGHUP", || {
        (pen.ctl("timeout") == "7\n").then_some(())
    });
    // A bad file: an error line naming FILE:LINE, and the running configuration stays.
    std::fs::write(&conf, "timeout 9\nbogus\n").expect("rewrite config");
    pen.signal("HUP");
    let log = wait_for(WAIT, "the SIGHUP error line", || {
        let t = pen.log_text();
        t.contains("pen: SIGHUP").then_some(t)
    });
    assert!(log.contains(&format!("{conf_arg}:2")), "{log:?}");
    assert_eq!(pen.ctl("timeout"), "7\n", "nothing of a bad file applied");
    assert_eq!(pen.fetch(), "A");
}
