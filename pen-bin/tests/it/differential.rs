//! The differential suite (issue 12, "the contract and its proof"): the same scripted sessions
//! run against ours and C pen (`/usr/bin/pen` with Debian's `/usr/bin/penctl`) in the same test,
//! and what an operator sees is compared: penctl replies, raw control replies, `write` output,
//! `servers` and `recent` after traffic, the access log, and the effect of signals. The ports,
//! the scratch directory, the pid and the date line are replaced by placeholders (`LP`, `CP`,
//! `B0`, `B1`, `DIR`, `PID`, `DATE`); every difference left must match an entry of [`ALLOWED`]
//! (differential_allowed.rs),
//! which names the row of docs/compatibility.md that declares it. An undeclared difference fails
//! the test with both outputs. Skips, with a message, when C pen is not installed.
//!
//! C pen 0.34.1 dies on `no acl`, `source` without an address, `ssl_ocsp_response` and
//! `ssl_client_renegotiation_interval` without an argument, `dsr_if IF` and after `idlers N`
//! (docs/compatibility.md 3.3, 3.5): the sessions avoid them. Every wait is bounded.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::backends::Backend;
use super::differential_allowed::{same_written_state, Expect, ALLOWED};
use super::harness::{
    connect, control, free_port, is_c_pen, pid_listens_on, poll_until, read_to_eof, run_bounded,
    running_as_root, ScratchDir, WAIT,
};

const C_PEN: &str = "/usr/bin/pen";
const C_PENCTL: &str = "/usr/bin/penctl";

/// One step of a scripted session.
#[derive(Clone, Copy)]
enum Step {
    /// A command through the side's own penctl; its stdout is compared.
    Ctl(&'static str),
    /// A raw line sent over the control socket as is (blanks, `\r`, two lines).
    Raw(&'static str),
    /// N clients through pen, each sending `ping\n` (or an HTTP GET when true), half-closing
    /// and reading to EOF; then waits until `servers` shows no open connection.
    Traffic(usize, bool),
    /// A file of the scratch directory, compared (`write` output, the pid file).
    File(&'static str),
    /// Rewrites the `-F` file, sends SIGHUP and waits until the command's reply is the text.
    Hup(&'static str, &'static str, &'static str),
    /// Sends a signal; TERM, INT and USR2 then wait for the exit (status and pid file compared).
    Signal(&'static str),
    /// Waits for pen to exit by itself (after `exit`); status and pid file compared.
    Exited,
    /// Waits until the file has N lines; compared with the Unix time field replaced.
    Lines(&'static str, usize),
}

/// A scripted session: options before the listen address (`{F}` is the `-F` file, `{DIR}` the
/// scratch directory, `{B0}` and `{B1}` the two echo servers' ports), an optional `-F` file.
struct Session {
    name: &'static str,
    opts: &'static [&'static str],
    config: Option<&'static str>,
    steps: &'static [Step],
}

/// A session (see [`Session`]).
#[rustfmt::skip]
const fn se(name: &'static str, opts: &'static [&'static str], config: Option<&'static str>,
    steps: &'static [Step]) -> Session {
    Session { name, opts, config, steps }
}

use Step::{Ctl, Exited, File, Hup, Lines, Raw, Signal, Traffic};

#[rustfmt::skip]
const QUERIES: &[Step] = &[
    Ctl("blacklist"), Ctl("timeout"), Ctl("tracking"), Ctl("debug"), Ctl("client_acl"),
    Ctl("control_acl"), Ctl("clients_max"), Ctl("conn_max"), Ctl("idle_timeout"), Ctl("mode"),
    Ctl("servers"),
];

#[rustfmt::skip]
const SESSIONS: &[Session] = &[
    se("queries", &[], None, &[
        Ctl("pid"), Ctl("control"), Ctl("listen"), Ctl("mode"), Ctl("servers"),
        Ctl("blacklist"), Ctl("timeout"), Ctl("tracking"), Ctl("debug"), Ctl("client_acl"),
        Ctl("control_acl"), Ctl("clients_max"), Ctl("conn_max"), Ctl("idle_timeout"),
        Ctl("log"), Ctl("web_stats"), Ctl("recent"), Ctl("recent 0"), Ctl("exit"),
        Ctl("epoll"), Ctl("poll"), Ctl("select"), Ctl("kqueue"), Ctl("tarpit_acl"),
        Ctl("tarpit_acl 3"), Ctl("tarpit_acl"), Ctl("dsr_if"), Ctl("pending_max"),
        Ctl("tcp_fastclose"), Ctl("status"), Ctl("metrics"), Ctl("ssl_reload"),
    ]),
    se("scalar settings", &[], None, &[
        Ctl("blacklist 20"), Ctl("timeout 7"), Ctl("tracking 10"), Ctl("debug 1"),
        Ctl("debug 0"), Ctl("idle_timeout 30"), Ctl("pending_max 50"), Ctl("blacklist"),
        Ctl("timeout"), Ctl("tracking"), Ctl("idle_timeout"),
    ]),
    se("acl lists", &[], None, &[
        Ctl("client_acl 1"), Ctl("control_acl 2"), Ctl("client_acl"), Ctl("control_acl"),
        Ctl("acl 1 permit 10.0.0.0 255.0.0.0"), Ctl("acl 2 permit ::1/128"),
        Ctl("acl 2 permit 1.2.3.4"), Ctl("acl 3 deny 192.168.0.0 255.255.0.0"),
        Ctl("no acl 3"), Ctl("control_acl 0"), Ctl("write {DIR}/w.cfg"), File("w.cfg"),
    ]),
    se("limits and slots", &[], None, &[
        Ctl("clients_max 4096"), Ctl("clients_max 100"), Ctl("clients_max"),
        Ctl("conn_max 600"), Ctl("conn_max 100"), Ctl("conn_max"), Ctl("connection 599"),
        Ctl("connection 600"), Ctl("close 99999"), Ctl("close 599"), Ctl("connection 0"),
    ]),
    se("modes", &[], None, &[
        Ctl("hash"), Ctl("roundrobin"), Ctl("stubborn"), Ctl("weight"), Ctl("prio"),
        Ctl("mode"), Ctl("no hash"), Ctl("no roundrobin"), Ctl("no stubborn"),
        Ctl("no weight"), Ctl("no prio"), Ctl("mode"),
    ]),
    se("flags", &[], None, &[
        Ctl("http"), Ctl("ascii"), Ctl("abort_on_error"), Ctl("tcp_nodelay"),
        Ctl("transparent"), Ctl("dummy"), Ctl("no dummy"), Ctl("no transparent"),
        Ctl("no ascii"), Ctl("tcp_fastclose up"), Ctl("tcp_fastclose down"),
        Ctl("tcp_fastclose both"), Ctl("write {DIR}/w.cfg"), File("w.cfg"),
        Ctl("tcp_fastclose off"), Ctl("no http"), Ctl("no tcp_nodelay"),
        Ctl("write {DIR}/w2.cfg"), File("w2.cfg"),
    ]),
    se("server fields", &[], None, &[
        Ctl("server 1 max 5 hard 7 weight 3 prio 2"), Ctl("server 0 acl 4"), Ctl("servers"),
        Ctl("server 0 port 0"), Ctl("server 1 address localhost"), Ctl("servers"),
        Ctl("server 1 blacklist 10"), Ctl("servers"), Ctl("server 1 blacklist 0"),
        Ctl("servers"), Ctl("server 0 address ::1"), Ctl("servers"), Ctl("write {DIR}/w.cfg"),
        File("w.cfg"),
    ]),
    se("server past the end", &[], None, &[
        Ctl("server 4 address 127.0.0.1 port {B0}"), Ctl("servers"), Ctl("write {DIR}/w.cfg"),
        File("w.cfg"),
    ]),
    se("log and web_stats", &[], None, &[
        Ctl("log {DIR}/a.log"), Ctl("log"), Ctl("no log"), Ctl("log"),
        Ctl("web_stats {DIR}/s.html"), Ctl("web_stats"), Ctl("no web_stats"), Ctl("web_stats"),
        Ctl("source 127.0.0.1"), Ctl("source ::1"),
    ]),
    se("round robin traffic", &["-r"], None, &[
        Traffic(4, false), Ctl("servers"), Ctl("recent"), Ctl("recent 10"),
        Ctl("mode"),
    ]),
    se("weighted traffic", &["-W", "-r"], None, &[
        Ctl("server 0 weight 2"), Ctl("server 1 weight 2"), Traffic(4, false), Ctl("servers"),
        Ctl("recent"), Ctl("mode"),
    ]),
    se("prio traffic", &["-O", "prio"], None, &[
        Ctl("server 0 prio 2"), Ctl("server 1 prio 1"), Traffic(3, false), Ctl("servers"),
        Ctl("recent"),
    ]),
    se("command-line values",
        &["-b", "20", "-t", "7", "-T", "10", "-x", "600", "-c", "100", "-h", "-s"], None, QUERIES),
    se("-O options", &["-O", "blacklist 7", "-O", "tracking 3", "-O", "roundrobin"], None,
        QUERIES),
    se("config file", &["-F", "{F}"], Some(
        "# a comment\n   # an indented comment\n\ntimeout 6\ntracking 4\nblacklist 5 # note\n\
         hash\nacl 3 deny 10.1.0.0 255.255.0.0\nserver 2 address 127.0.0.1 port {B0}\n"), &[
        Ctl("timeout"), Ctl("tracking"), Ctl("blacklist"), Ctl("mode"), Ctl("servers"),
        Ctl("write"), File("pen.cfg"),
    ]),
    se("include", &[], None, &[
        Ctl("write {DIR}/inc.cfg"), Ctl("blacklist 40"), Ctl("hash"),
        Ctl("include {DIR}/inc.cfg"), Ctl("blacklist"), Ctl("mode"),
    ]),
    se("sighup applies the file on top", &["-F", "{F}"], Some("blacklist 5\n"), &[
        Ctl("timeout 9"), Ctl("tracking 5"), Ctl("hash"), Ctl("server 0 weight 4"),
        Hup("blacklist 4\n", "blacklist", "4\n"),
        Ctl("timeout"), Ctl("tracking"), Ctl("mode"), Ctl("servers"),
    ]),
    se("sighup adds a server", &["-F", "{F}"], Some("timeout 4\n"), &[
        Hup("timeout 5\nserver 2 address 127.0.0.1 port {B1}\n", "timeout", "5\n"),
        Ctl("servers"),
    ]),
    se("sighup without -F", &[], None, &[
        Ctl("blacklist 11"), Signal("HUP"), Ctl("blacklist"), Ctl("mode"),
    ]),
    se("more commands", &[], None, &[
        Ctl("socket 3"), Ctl("socket 99"), Ctl("listen 127.0.0.1:{NP}"), Ctl("listen"),
        Ctl("ssl_ciphers X"), Ctl("acl 1 permit country SE"), Ctl("include"), Ctl("write"),
        Ctl("mode"),
    ]),
    se("raw protocol", &[], None, &[
        Raw("mode\n"), Raw("mode\r\n"), Raw("  mode  \n"), Raw("mode\nservers\n"),
        Raw("no block\n"), Raw("no delayed_forward\n"), Raw("mode # c\n"),
    ]),
    se("declared differences", &[], None, &[
        Ctl("bogus"), Ctl("blacklist abc"), Ctl("client_acl 10"), Ctl("timeout 0"),
        Ctl("blacklist 5 6"), Ctl("source bogus"), Ctl("tcp_fastclose bogus"),
        Ctl("acl 1 allow 1.2.3.4"), Ctl("server 99999 port 5"), Ctl("block"), Ctl("blacklist"),
        Ctl("timeout"),
    ]),
    se("access log", &["-H", "-r", "-l", "{DIR}/a.log"], None, &[
        Traffic(4, true), Signal("HUP"), Lines("a.log", 4), Ctl("servers"), Ctl("recent"),
    ]),
    se("exit with -X", &["-X", "-p", "{DIR}/p.pid"], None,
        &[File("p.pid"), Ctl("exit"), Exited]),
    se("sigterm", &["-p", "{DIR}/p.pid"], None,
        &[Traffic(1, false), Signal("TERM")]),
    // The issue 12 audit of 2026-12-07 (docs/compatibility.md 3.5, 4).
    se("include a bad line", &[], Some("blacklist 13\nbogus line\ntimeout 4\n"), &[
        Ctl("include {F}"), Ctl("blacklist"), Ctl("timeout"), Ctl("no idlers"),
    ]),
    se("emergency and abuse by name", &["-e", "localhost:{B0}", "-B", "localhost:{B1}"], None,
        &[Ctl("write {DIR}/w.cfg"), File("w.cfg")]),
    se("emergency and abuse as addresses", &["-e", "127.0.0.1:{B0}", "-B", "127.0.0.1:{B1}"],
        None, &[Ctl("write {DIR}/w.cfg"), File("w.cfg")]),
];

/// One side: the pen and penctl binaries.
struct Side {
    name: &'static str,
    pen: PathBuf,
    penctl: PathBuf,
}

/// What a run of one session saw: (label, normalised output) per compared step.
type Seen = Vec<(String, String)>;

struct Run {
    child: Child,
    pid: u32,
    lp: u16,
    cp: u16,
    /// A free port for `listen` (`{NP}`, normalised to `NP`).
    np: u16,
    dir: ScratchDir,
    b: [u16; 2],
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    fn subst(&self, s: &str) -> String {
        subst(s, &self.dir.0, self.b).replace("{NP}", &self.np.to_string())
    }

    /// Replaces the run's paths, ports, pid and dates by placeholders.
    fn norm(&self, text: &str) -> String {
        let mut t = text.replace(&self.dir.0.display().to_string(), "DIR");
        for (n, name) in [
            (u32::from(self.lp), "LP"),
            (u32::from(self.cp), "CP"),
            (u32::from(self.np), "NP"),
            (u32::from(self.b[0]), "B0"),
            (u32::from(self.b[1]), "B1"),
            (self.pid, "PID"),
        ] {
            t = replace_number(&t, &n.to_string(), name);
        }
        t.lines()
            .map(|l| {
                let l = if l.starts_with("# Generated by pen ") {
                    "# Generated by pen DATE"
                } else {
                    l
                };
                format!("{l}\n")
            })
            .collect::<String>()
            + if text.ends_with('\n') || text.is_empty() {
                ""
            } else {
                "[no final newline]\n"
            }
    }

    fn status(&mut self) -> String {
        let st = poll_until(WAIT, || self.child.try_wait().ok().flatten());
        let st = match st {
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit {c}"),
                (_, Some(sig)) => format!("signal {sig}"),
                _ => "?".into(),
            },
            None => "still running".into(),
        };
        let pid_left = self.dir.0.join("p.pid").exists();
        format!("{st}; pid file left: {pid_left}\n")
    }
}

/// Replaces whole decimal numbers equal to `num` (not digits of a longer number).
fn replace_number(text: &str, num: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(num) {
        let before = rest.get(..i).unwrap_or("");
        let after = rest.get(i + num.len()..).unwrap_or("");
        out.push_str(before);
        let digit_before = before.chars().last().is_some_and(|ch| ch.is_ascii_digit());
        let digit_after = after.chars().next().is_some_and(|ch| ch.is_ascii_digit());
        out.push_str(if digit_before || digit_after {
            num
        } else {
            with
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn subst(s: &str, dir: &Path, b: [u16; 2]) -> String {
    s.replace("{DIR}", &dir.display().to_string())
        .replace("{F}", &dir.join("pen.cfg").display().to_string())
        .replace("{B0}", &b[0].to_string())
        .replace("{B1}", &b[1].to_string())
}

fn start(side: &Side, s: &Session, b: [u16; 2]) -> Run {
    let mut last = String::new();
    for _attempt in 0..5 {
        let dir = ScratchDir::new("diff");
        let (lp, cp, np) = (free_port(), free_port(), free_port());
        let mut args: Vec<String> = vec!["-f".into(), "-P".into()];
        if running_as_root() {
            args.extend(["-u".into(), "root".into()]);
        }
        args.extend(["-C".into(), format!("127.0.0.1:{cp}")]);
        if let Some(cfg) = s.config {
            std::fs::write(dir.0.join("pen.cfg"), subst(cfg, &dir.0, b)).expect("write -F file");
        }
        args.extend(s.opts.iter().map(|o| subst(o, &dir.0, b)));
        args.push(format!("127.0.0.1:{lp}"));
        args.extend(b.iter().map(|p| format!("127.0.0.1:{p}")));
        let log = std::fs::File::create(dir.0.join("out.log")).expect("create out.log");
        let child = Command::new(&side.pen)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup out.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", side.pen.display()));
        let pid = child.id();
        let (b, dir) = (b, dir);
        let mut r = Run {
            child,
            pid,
            lp,
            cp,
            np,
            dir,
            b,
        };
        let up = poll_until(WAIT, || {
            if let Ok(Some(st)) = r.child.try_wait() {
                return Some(Err(format!("exited with {st}")));
            }
            (pid_listens_on(pid, lp) && pid_listens_on(pid, cp)).then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => return r,
            Some(Err(e)) => last = format!("{} {args:?}: {e}", side.name),
            None => last = format!("{} {args:?} did not listen within 5 s", side.name),
        }
        let out = std::fs::read_to_string(r.dir.0.join("out.log")).unwrap_or_default();
        last.push_str(&format!("; it said: {out}"));
    }
    panic!("session {:?}: {last}", s.name);
}

fn traffic(r: &Run, n: usize, http: bool) {
    for _ in 0..n {
        let mut c = connect(&format!("127.0.0.1:{}", r.lp));
        let req: &[u8] = if http {
            b"GET / HTTP/1.0\r\n\r\n"
        } else {
            b"ping\n"
        };
        c.write_all(req).expect("send through pen");
        let _ = c.shutdown(Shutdown::Write);
        let got = read_to_eof(&mut c);
        // HTTP mode adds headers (their order is declared in docs/compatibility.md 6).
        assert!(http || got.as_bytes() == req, "echo through pen: {got:?}");
    }
    let ctl = format!("127.0.0.1:{}", r.cp);
    poll_until(WAIT, || {
        let s = control(&ctl, "servers");
        s.lines().all(|l| l.contains(" conn 0 ")).then_some(())
    })
    .expect("connections closed within 5 s");
}

fn run_session(side: &Side, s: &Session, b: [u16; 2]) -> Seen {
    let mut r = start(side, s, b);
    let mut seen: Seen = Vec::new();
    let ctl_addr = format!("127.0.0.1:{}", r.cp);
    let penctl = |r: &Run, cmd: &str| -> String {
        let mut args = vec![ctl_addr.clone()];
        args.extend(r.subst(cmd).split_whitespace().map(str::to_string));
        run_bounded(&side.penctl, &args, WAIT).0
    };
    let push = |seen: &mut Seen, label: &str, text: String| {
        let n = seen
            .iter()
            .filter(|(l, _)| l == label || l.starts_with(&format!("{label}#")))
            .count();
        let label = match n {
            0 => label.to_string(),
            n => format!("{label}#{n}"),
        };
        seen.push((label, text));
    };
    for step in s.steps {
        match *step {
            Ctl(cmd) => {
                let out = penctl(&r, cmd);
                push(&mut seen, cmd, r.norm(&out));
            }
            Raw(line) => {
                let mut c = connect(&ctl_addr);
                c.write_all(line.as_bytes()).expect("send control line");
                let out = read_to_eof(&mut c);
                push(&mut seen, &format!("raw {line:?}"), r.norm(&out));
            }
            Traffic(n, http) => traffic(&r, n, http),
            File(name) => {
                let p = r.dir.0.join(name);
                let text =
                    poll_until(WAIT, || std::fs::read_to_string(&p).ok()).unwrap_or_default();
                push(&mut seen, &format!("file {name}"), r.norm(&text));
            }
            Hup(cfg, probe, want) => {
                std::fs::write(r.dir.0.join("pen.cfg"), r.subst(cfg)).expect("rewrite -F");
                signal(r.pid, "HUP");
                let mut last = String::new();
                let _ = poll_until(WAIT, || {
                    last = r.norm(&penctl(&r, probe));
                    (last == want).then_some(())
                });
                push(&mut seen, &format!("SIGHUP, then {probe}"), last);
            }
            Signal(sig) => {
                signal(r.pid, sig);
                if matches!(sig, "TERM" | "INT" | "USR2") {
                    push(&mut seen, &format!("SIG{sig}"), r.status());
                }
            }
            Exited => push(&mut seen, "exit status", r.status()),
            Lines(name, n) => {
                let p = r.dir.0.join(name);
                let read = || std::fs::read_to_string(&p).unwrap_or_default();
                let text = poll_until(WAIT, || Some(read()).filter(|t| t.lines().count() >= n))
                    .unwrap_or_else(read);
                let lines: String = (text.lines())
                    .map(|l| match l.splitn(3, ' ').collect::<Vec<_>>()[..] {
                        [client, _time, rest] => format!("{client} TIME {rest}\n"),
                        _ => format!("{l}\n"),
                    })
                    .collect();
                push(&mut seen, &format!("lines of {name}"), r.norm(&lines));
            }
        }
    }
    seen
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s {sig} {pid}");
}

fn allowed(session: &str, command: &str, c: &str, o: &str) -> Option<&'static str> {
    let write_file = command.starts_with("file w") || command == "file pen.cfg";
    if write_file && same_written_state(c, o) {
        return Some("4: `write`, lines after C pen's and server lines (same state)");
    }
    ALLOWED
        .iter()
        .filter(|a| a.session == session && a.command == command)
        .find(|a| match a.expect {
            Expect::Texts(ct, ot) => c == ct && o == ot,
            Expect::Pred(f) => f(c, o),
        })
        .map(|a| a.row)
}

#[test]
fn scripted_sessions_match_c_pen_or_a_declared_difference() {
    if is_c_pen() {
        // The suite's run against C pen (`PEN_BIN=/usr/bin/pen`): this test starts both
        // binaries itself, and the default run already did.
        return;
    }
    let c_pen = Path::new(C_PEN);
    if !c_pen.exists() || !Path::new(C_PENCTL).exists() {
        eprintln!(
            "SKIP differential suite: {C_PEN} or {C_PENCTL} is not installed (apt-get install pen)"
        );
        return;
    }
    let c = Side {
        name: "C pen",
        pen: c_pen.to_path_buf(),
        penctl: PathBuf::from(C_PENCTL),
    };
    let ours = Side {
        name: "ours",
        pen: PathBuf::from(env!("CARGO_BIN_EXE_pen")),
        // Our penctl, next to our pen (`$PENCTL_BIN` may be C pen's).
        penctl: Path::new(env!("CARGO_BIN_EXE_pen")).with_file_name("penctl"),
    };
    let backends = [Backend::echo(), Backend::echo()];
    let ports = backends.each_ref().map(|b| {
        b.spec()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("backend port")
    });
    let (mut compared, mut declared, mut failures) = (0, Vec::new(), Vec::new());
    for s in SESSIONS {
        let cs = run_session(&c, s, ports);
        let os = run_session(&ours, s, ports);
        assert_eq!(cs.len(), os.len(), "session {:?}: steps recorded", s.name);
        for ((label, ct), (_, ot)) in cs.iter().zip(&os) {
            compared += 1;
            if ct == ot {
                continue;
            }
            match allowed(s.name, label, ct, ot) {
                Some(row) => declared.push(format!("{} / {label}: {row}", s.name)),
                None => failures.push(format!(
                    "session {:?}, {label}: undeclared difference\n--- C pen:\n{ct}--- ours:\n{ot}---",
                    s.name
                )),
            }
        }
    }
    // An entry no difference used: ours now matches C pen there (update the docs row).
    for a in ALLOWED.iter().filter(|a| {
        let key = format!("{} / {}: ", a.session, a.command);
        !declared.iter().any(|d| d.starts_with(&key))
    }) {
        eprintln!(
            "differential: unused allow-list entry {} / {}",
            a.session, a.command
        );
    }
    eprintln!(
        "differential: {} sessions, {compared} compared outputs, {} declared differences:\n  {}",
        SESSIONS.len(),
        declared.len(),
        declared.join("\n  ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
