//! Runtime behaviours an operator relies on when replacing C pen (issue 12, "drop-in
//! fidelity"): SIGHUP on top of the running state, relative file names in commands sent to a
//! daemon, access-log rotation, the remote log's datagrams, tracked clients across a server's
//! new address. Each runs against both binaries unless it says it is ours only.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};

use super::backends::Backend;
use super::harness::{
    connect, control, free_port, is_c_pen, pen_bin, read_to_eof, running_as_root, wait_for,
    wait_until, Pen, PenBuilder, ScratchDir, WAIT,
};

fn port_of(spec: &str) -> String {
    spec.rsplit(':').next().unwrap_or_default().to_string()
}

/// `servers` reduced to `addr A port P weight W` per line: what these tests change.
fn servers_brief(pen: &Pen) -> Vec<String> {
    pen.servers()
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            ["addr", "port", "weight"]
                .iter()
                .filter_map(|k| {
                    let i = w.iter().position(|x| x == k)?;
                    Some(format!("{k} {}", w.get(i + 1)?))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// C-1: SIGHUP applies the `-F` file on top of the running state: what penctl changed and the
/// file does not set survives the reload; what the file sets takes effect.
#[test]
fn sighup_applies_the_file_on_top_of_penctl_changes() {
    let dir = ScratchDir::new("hupontop");
    let (a, b, c) = (Backend::name("A"), Backend::name("B"), Backend::name("C"));
    let cfg = dir.0.join("pen.cfg");
    std::fs::write(&cfg, "blacklist 13\n").expect("write");
    let pen = PenBuilder::new()
        .opts(&["-F", &cfg.display().to_string()])
        .server(a.spec())
        .server(b.spec())
        .start();
    for cmd in [
        "timeout 9",
        "hash",
        "tracking 5",
        &format!("server 2 address 127.0.0.1 port {}", port_of(&c.spec())),
        "server 0 weight 4",
    ] {
        pen.ctl(cmd);
    }
    let (mode, servers) = (pen.ctl("mode"), servers_brief(&pen));
    assert!(mode.starts_with("hash "), "{mode}");
    assert_eq!(servers.len(), 3, "{servers:?}");
    std::fs::write(&cfg, "blacklist 4\n").expect("rewrite");
    pen.signal("HUP");
    wait_for(WAIT, "the reload", || {
        (pen.ctl("blacklist") == "4\n").then_some(())
    });
    assert_eq!(pen.ctl("mode"), mode, "penctl's mode survives the reload");
    assert_eq!(pen.ctl("timeout"), "9\n");
    assert_eq!(pen.ctl("tracking"), "5\n");
    assert_eq!(servers_brief(&pen), servers, "servers and weights survive");
}

/// `reload_reset` (ours): the configuration becomes the command line plus the `-F` file as it
/// is now, dropping what penctl changed; the servers added at run time are gone.
#[test]
fn reload_reset_returns_to_the_command_line_plus_the_file() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("reset");
    let (a, b, c) = (Backend::name("A"), Backend::name("B"), Backend::name("C"));
    let cfg = dir.0.join("pen.cfg");
    std::fs::write(&cfg, "blacklist 13\nhash\n").expect("write");
    let pen = PenBuilder::new()
        .opts(&["-F", &cfg.display().to_string()])
        .server(a.spec())
        .server(b.spec())
        .start();
    let servers = servers_brief(&pen);
    pen.ctl("timeout 9");
    pen.ctl("server 0 weight 4");
    pen.ctl(&format!(
        "server 2 address 127.0.0.1 port {}",
        port_of(&c.spec())
    ));
    std::fs::write(&cfg, "blacklist 4\n").expect("rewrite");
    assert_eq!(pen.ctl("reload_reset"), "");
    assert_eq!(pen.ctl("blacklist"), "4\n");
    assert_eq!(pen.ctl("timeout"), "3\n", "penctl's change is undone");
    assert!(
        pen.ctl("mode").starts_with("no hash"),
        "the line gone from the file is undone"
    );
    assert_eq!(
        servers_brief(&pen),
        servers,
        "back to the command line's servers"
    );
    std::fs::write(&cfg, "blacklist 4\nbogus\n").expect("break");
    assert!(pen.ctl("reload_reset").contains(":2: "), "all or nothing");
    assert_eq!(pen.ctl("blacklist"), "4\n");
}

/// A pen started as a daemon (no `-f`) from `dir`, stopped by the pid in its pid file.
struct Daemon {
    pid_file: std::path::PathBuf,
    control: String,
}

impl Daemon {
    fn start(dir: &Path, server: &str) -> Daemon {
        let (cport, lport) = (free_port(), free_port());
        let pid_file = dir.join("pen.pid");
        let control = format!("127.0.0.1:{cport}");
        let mut args: Vec<String> = Vec::new();
        if running_as_root() {
            args.extend(["-u".into(), "root".into()]);
        }
        args.extend([
            "-C".into(),
            control.clone(),
            "-p".into(),
            pid_file.display().to_string(),
            format!("127.0.0.1:{lport}"),
            server.to_string(),
        ]);
        let st = Command::new(pen_bin())
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pen");
        assert!(st.success(), "pen {args:?}: {st}");
        let d = Daemon { pid_file, control };
        wait_for(WAIT, "the daemon's control socket", || {
            std::net::TcpStream::connect(&d.control).ok().map(drop)
        });
        d
    }

    fn pid(&self) -> Option<String> {
        let p = std::fs::read_to_string(&self.pid_file).ok()?;
        let p = p.trim().to_string();
        (!p.is_empty()).then_some(p)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-s", sig, &pid]).status();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal("TERM");
    }
}

/// Relative file names in commands sent to a daemon mean what they mean in the directory pen
/// was started from (C pen never changes its working directory; ours, as a daemon, is in `/`).
#[test]
fn relative_names_in_commands_to_a_daemon_point_to_the_start_directory() {
    let dir = ScratchDir::new("reldir");
    let a = Backend::name("A");
    std::fs::write(dir.0.join("inc.cfg"), "blacklist 17\n").expect("write");
    let pen = Daemon::start(&dir.0, &a.spec());
    control(&pen.control, "include inc.cfg"); // the reply is C-3's business
    assert_eq!(
        control(&pen.control, "blacklist"),
        "17\n",
        "include read it"
    );
    control(&pen.control, "write rel.cfg");
    control(&pen.control, "log rel.log");
    control(&pen.control, "web_stats rel.html");
    pen.signal("USR1"); // writes the web_stats file
    for name in ["rel.cfg", "rel.log", "rel.html"] {
        wait_for(WAIT, name, || dir.0.join(name).exists().then_some(()));
    }
    let written = std::fs::read_to_string(dir.0.join("rel.cfg")).expect("read");
    assert!(written.contains("blacklist 17"), "{written}");
}

/// One request through pen to an echo backend: send `line`, half-close, read it back.
fn echo_request(pen_addr: &str, line: &str) {
    let mut s = connect(pen_addr);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(line.as_bytes()).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("read");
    assert_eq!(got, line);
}

/// The request ids in an access log (`... REQ ID`), and the number of lines.
fn ids(path: &Path) -> (BTreeSet<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let set = text
        .lines()
        .filter_map(|l| l.split(' ').skip_while(|w| *w != "REQ").nth(1))
        .map(str::to_string)
        .collect();
    (set, text.lines().count())
}

/// `mv log log.1; kill -HUP`: the lines of the requests served before the signal are in
/// `log.1` (the workers write what they hold to the old file before following the reopen),
/// the later ones in the new `log`; checked by the set of request ids and the line counts.
#[test]
fn lines_served_before_sighup_stay_in_the_rotated_file() {
    let dir = ScratchDir::new("hupflush");
    let echo = Backend::echo();
    let (log, rotated) = (dir.0.join("a.log"), dir.0.join("a.log.1"));
    let mut pen = PenBuilder::new()
        .opts(&["-l", &log.display().to_string()])
        .server(echo.spec())
        .start();
    let addr = pen.addr().to_string();
    let before: BTreeSet<String> = (0..20).map(|i| format!("b{i:02}")).collect();
    for id in &before {
        echo_request(&addr, &format!("REQ {id}\n"));
    }
    std::fs::rename(&log, &rotated).expect("mv a.log a.log.1");
    pen.signal("HUP");
    wait_for(WAIT, "the reopened a.log", || log.exists().then_some(()));
    if !is_c_pen() {
        // Ours creates the new file, then switches the workers to it, in its signal thread,
        // which handles signals in turn: the summary a later SIGUSR1 writes to pen's log says
        // the switch is done. (C pen reopens in its one loop before it serves another client.)
        let said = pen.log_text().len();
        pen.signal("USR1");
        wait_until(WAIT, "the SIGUSR1 summary", || pen.log_text().len() > said);
    }
    let after: BTreeSet<String> = (0..15).map(|i| format!("a{i:02}")).collect();
    for id in &after {
        echo_request(&addr, &format!("REQ {id}\n"));
    }
    pen.signal("TERM"); // a clean exit writes every worker's lines
    pen.wait_exit(WAIT).expect("pen exits");
    let (old, old_lines) = ids(&rotated);
    let (new, new_lines) = ids(&log);
    assert_eq!(
        (old, old_lines),
        (before, 20),
        "log.1: the lines before the HUP"
    );
    assert_eq!((new, new_lines), (after, 15), "log: the lines after it");
}

/// C-9: `-l host:port` sends each request to the collector as penlogd's datagram,
/// `+ CLIENT SERVER FIRST_LINE\n`.
#[test]
fn remote_log_sends_penlogd_datagrams() {
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind collector");
    collector
        .set_read_timeout(Some(WAIT))
        .expect("read timeout");
    let at = collector.local_addr().expect("local_addr").to_string();
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&["-l", &at])
        .server(a.spec())
        .start();
    let mut s = pen.connect();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    assert_eq!(read_to_eof(&mut s), "A");
    let mut buf = [0u8; 2048];
    let n = collector.recv(&mut buf).expect("a datagram");
    assert_eq!(
        String::from_utf8_lossy(buf.get(..n).unwrap_or_default()),
        "+ 127.0.0.1 127.0.0.1 GET / HTTP/1.0\n"
    );
}

/// What the "name" backend reached from 127.0.0.`n` says ("" when pen closes the client).
fn served(pen: &Pen, n: u8) -> String {
    pen.fetch_from(n)
}

/// Item 8: a client tracked to server N stays with N when N's port changes (C pen: it follows
/// N to the new address). Prio makes a fresh choice pick the other server, so a forgotten
/// client would show.
#[test]
fn a_tracked_client_follows_its_server_to_a_new_port() {
    let (a, b, c) = (Backend::name("A"), Backend::name("B"), Backend::name("C"));
    let pen = PenBuilder::new().server(a.spec()).server(b.spec()).start();
    for cmd in ["prio", "server 0 prio 1", "server 1 prio 2"] {
        pen.ctl(cmd);
    }
    assert_eq!(served(&pen, 1), "A", "prio: server 0 first");
    pen.ctl("server 0 prio 3"); // a new client now goes to server 1
    assert_eq!(served(&pen, 2), "B", "a new client: server 1");
    assert_eq!(served(&pen, 1), "A", "the tracked client stays on server 0");
    pen.ctl(&format!("server 0 port {}", port_of(&c.spec())));
    assert_eq!(served(&pen, 1), "C", "and follows server 0 to its new port");
}

/// Item 8 with `-s`: the tracked client of a server that now refuses is closed, never moved.
#[test]
fn stubborn_closes_a_tracked_client_whose_server_moved_and_fails() {
    let (a, b) = (Backend::name("A"), Backend::name("B"));
    let pen = PenBuilder::new()
        .opts(&["-s"])
        .server(a.spec())
        .server(b.spec())
        .start();
    for cmd in ["prio", "server 0 prio 1", "server 1 prio 2"] {
        pen.ctl(cmd);
    }
    assert_eq!(served(&pen, 1), "A");
    pen.ctl("server 0 prio 3");
    let closed = free_port(); // nothing listens there
    pen.ctl(&format!("server 0 port {closed}"));
    assert_eq!(served(&pen, 1), "", "closed, not moved to server 1");
    assert_eq!(served(&pen, 2), "B", "a new client goes to server 1");
}
