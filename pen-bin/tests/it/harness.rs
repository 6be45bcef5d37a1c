//! Starting `pen` as a child process, waiting for it to listen, talking to its control socket,
//! and client-side helpers. Every wait here is bounded.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// How long any single wait for pen may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// The engine `PEN_TEST_ENGINE` asks every pen of ours to run (`None`: the default; never
/// for C pen, which has no such option).
pub(crate) fn test_engine() -> Option<String> {
    let e = std::env::var("PEN_TEST_ENGINE")
        .ok()
        .filter(|e| !e.is_empty())?;
    (!is_c_pen()).then_some(e)
}

/// The `pen` binary under test: `$PEN_BIN`, else the one cargo built.
pub(crate) fn pen_bin() -> PathBuf {
    match std::env::var_os("PEN_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_pen")),
    }
}

/// The `penctl` binary: `$PENCTL_BIN`, else the file `penctl` next to our `pen`.
pub(crate) fn penctl_bin() -> PathBuf {
    match std::env::var_os("PENCTL_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_BIN_EXE_pen")).with_file_name("penctl"),
    }
}

/// True when the binary under test is not ours (e.g. `PEN_BIN=/usr/bin/pen`): tests of
/// behaviour marked [ours] in PEN-SPEC return early.
pub(crate) fn is_c_pen() -> bool {
    if let Some(v) = std::env::var_os("PEN_IS_C") {
        return v != "0";
    }
    let Some(p) = std::env::var_os("PEN_BIN") else {
        return false;
    };
    let ours = Path::new(env!("CARGO_BIN_EXE_pen"));
    let ours_dir = ours.parent().and_then(|d| d.canonicalize().ok());
    let theirs = Path::new(&p)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(&p));
    match ours_dir {
        Some(d) => !theirs.starts_with(d),
        None => true,
    }
}

/// Effective uid is 0 (read from /proc, no unsafe code).
pub(crate) fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// A port that was free a moment ago on every IPv4 address, below the kernel's ephemeral range.
///
/// Below the range, because a port the kernel picked for us (`bind` to port 0) is one it may
/// hand to any client's `connect` a moment later (seen: `-C 0.0.0.0:PORT` refused with "Address
/// already in use" in a full run), while ports below it are taken only by an explicit bind.
/// The ports handed out lately are remembered and not handed out again (two calls in a row
/// could otherwise return the same port). Falls back to a kernel-chosen port.
pub(crate) fn free_port() -> u16 {
    static RECENT: std::sync::Mutex<std::collections::VecDeque<u16>> =
        std::sync::Mutex::new(std::collections::VecDeque::new());
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            r.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    // A different walk per test process: pid and time pick the start, a counter the step.
    let seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    let (base, span) = (10_000u64, u64::from(low.saturating_sub(10_000).max(1)));
    for i in 0..256u64 {
        let port = if i < 192 {
            u16::try_from(base + (seed.wrapping_add(i.wrapping_mul(7919)) % span)).unwrap_or(0)
        } else {
            0 // the kernel's choice, if nothing below the range is free
        };
        let Ok(l) = TcpListener::bind(("0.0.0.0", port)) else {
            continue;
        };
        let port = l.local_addr().expect("local_addr").port();
        if !recent.contains(&port) {
            if recent.len() >= 1024 {
                recent.pop_front();
            }
            recent.push_back(port);
            return port;
        }
    }
    panic!("no free port that was not handed out lately");
}

/// True when ::1 can be bound here.
pub(crate) fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory under /tmp (removed by [`ScratchDir`]'s Drop unless a test panics).
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl ScratchDir {
    pub(crate) fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pen-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        ScratchDir(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Where pen listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenKind {
    V4,
    V6,
    /// `:::PORT`: all IPv6 addresses, dual-stack (clients connect to 127.0.0.1:PORT).
    AnyV6,
    Unix,
}

/// Builds a pen command line: `pen -f [-u root] -C 127.0.0.1:CPORT OPTS LISTEN SERVERS`.
pub(crate) struct PenBuilder {
    opts: Vec<String>,
    servers: Vec<String>,
    listen: ListenKind,
    unix_control: bool,
    pid_file: bool,
    nofile: Option<u64>,
}

impl PenBuilder {
    pub(crate) fn new() -> Self {
        PenBuilder {
            opts: Vec::new(),
            servers: Vec::new(),
            listen: ListenKind::V4,
            unix_control: false,
            pid_file: false,
            nofile: None,
        }
    }

    /// Starts pen with RLIMIT_NOFILE (soft and hard) set to `n`, through `sh -c 'ulimit -n N;
    /// exec pen ...'` (the shell execs pen: the PID is pen's).
    pub(crate) fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Adds options (each string one argv word).
    pub(crate) fn opts(mut self, words: &[&str]) -> Self {
        self.opts.extend(words.iter().map(|w| w.to_string()));
        self
    }

    /// Uses a Unix-domain control socket in the scratch directory.
    pub(crate) fn control_unix(mut self) -> Self {
        self.unix_control = true;
        self
    }

    /// Passes `-p DIR/pen.pid` (see [`Pen::pid_path`]).
    pub(crate) fn pid_file(mut self) -> Self {
        self.pid_file = true;
        self
    }

    /// Adds a server spec.
    pub(crate) fn server(mut self, spec: impl Into<String>) -> Self {
        self.servers.push(spec.into());
        self
    }

    pub(crate) fn listen(mut self, kind: ListenKind) -> Self {
        self.listen = kind;
        self
    }

    /// Starts pen and waits until both its listener and its control socket are listening.
    /// Retries with other ports if pen exits early (a port taken meanwhile).
    pub(crate) fn start(self) -> Pen {
        let t0 = Instant::now();
        let pen = self.start_inner();
        slow("start", t0);
        pen
    }

    fn start_inner(self) -> Pen {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let dir = ScratchDir::new("pen");
            let cport = free_port();
            let (listen_arg, listen) = match self.listen {
                ListenKind::V4 => {
                    let p = free_port();
                    (
                        format!("127.0.0.1:{p}"),
                        Target::Tcp(format!("127.0.0.1:{p}")),
                    )
                }
                ListenKind::V6 => {
                    let p = {
                        let l = TcpListener::bind("[::1]:0").expect("bind [::1]:0");
                        l.local_addr().expect("local_addr").port()
                    };
                    // C pen takes the last colon as the separator and has no brackets.
                    let arg = if is_c_pen() {
                        format!("::1:{p}")
                    } else {
                        format!("[::1]:{p}")
                    };
                    (arg, Target::Tcp(format!("[::1]:{p}")))
                }
                ListenKind::AnyV6 => {
                    // Free on the dual-stack wildcard, not just on 127.0.0.1: with many
                    // TIME_WAIT sockets around, a port free on one address may not be on [::].
                    let p = TcpListener::bind("[::]:0")
                        .and_then(|l| l.local_addr())
                        .map_or_else(|_| free_port(), |a| a.port());
                    (format!(":::{p}"), Target::Tcp(format!("127.0.0.1:{p}")))
                }
                ListenKind::Unix => {
                    let path = dir.0.join("pen.sock");
                    (path.display().to_string(), Target::Unix(path))
                }
            };
            let control = if self.unix_control {
                dir.0.join("ctl.sock").display().to_string()
            } else {
                format!("127.0.0.1:{cport}")
            };
            let mut args: Vec<String> = vec!["-f".into()];
            if is_c_pen() {
                // C pen 0.34's epoll backend treats EPOLLERR/EPOLLHUP as fatal: a refused
                // connect closes the client instead of failing over, and a half-close may drop
                // the last bytes. Its poll() backend does what PEN-SPEC describes.
                args.push("-P".into());
            }
            if running_as_root() {
                args.push("-u".into());
                args.push("root".into());
            }
            // PEN_TEST_ENGINE=uring: every pen of ours started here runs that engine (CI runs
            // the relay, failover, selection and fault tests with the io_uring engine).
            if let Some(engine) = test_engine() {
                args.push("--engine".into());
                args.push(engine);
            }
            args.push("-C".into());
            args.push(control.clone());
            if self.pid_file {
                args.push("-p".into());
                args.push(dir.0.join("pen.pid").display().to_string());
            }
            args.extend(self.opts.iter().cloned());
            args.push(listen_arg);
            args.extend(self.servers.iter().cloned());
            let log = dir.0.join("pen.log");
            let logf = std::fs::File::create(&log).expect("create log");
            let mut cmd = match self.nofile {
                None => Command::new(pen_bin()),
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                        .arg(pen_bin());
                    c
                }
            };
            let child = cmd
                .args(&args)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup log"))
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", pen_bin().display()));
            let pid = child.id();
            let mut pen = Pen {
                child,
                pid,
                listen,
                control,
                args,
                log,
                dir,
            };
            match pen.wait_ready() {
                Ok(()) => return pen,
                Err(e) => last_err = format!("{e}; pen {:?} said: {}", pen.args, pen.log_text()),
            }
        }
        panic!("pen did not start: {last_err}");
    }
}

/// Where to connect to reach pen's listener.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// A running pen. Dropping it kills the child by PID and reaps it.
pub(crate) struct Pen {
    child: Child,
    /// The child's process id.
    pub(crate) pid: u32,
    /// pen's listener.
    pub(crate) listen: Target,
    /// `127.0.0.1:PORT` (or the path) of the control socket.
    pub(crate) control: String,
    /// The argv given to pen (without the program).
    pub(crate) args: Vec<String>,
    log: PathBuf,
    dir: ScratchDir,
}

impl Pen {
    /// `host:port` of the TCP listener.
    pub(crate) fn addr(&self) -> &str {
        match &self.listen {
            Target::Tcp(a) => a,
            Target::Unix(p) => panic!("pen listens on {}", p.display()),
        }
    }

    /// What pen wrote to stdout/stderr so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The scratch directory's `pen.pid` (written when started with [`PenBuilder::pid_file`]).
    pub(crate) fn pid_path(&self) -> PathBuf {
        self.dir.0.join("pen.pid")
    }

    /// Sends a signal to pen by PID with kill(1), e.g. `"TERM"`.
    pub(crate) fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {sig} {}", self.pid);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let cport: u16 = self
            .control
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let ready = poll_until(WAIT, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(Err(format!("pen exited early with {st}")));
            }
            // Cheap probe first (the system may hold tens of thousands of TIME_WAIT sockets,
            // which makes /proc/net/tcp slow): is anything accepting on the control port?
            let unix_ctl = self.control.starts_with('/');
            let probe = SocketAddr::from(([127, 0, 0, 1], cport));
            let up = if unix_ctl {
                UnixStream::connect(&self.control).is_ok()
            } else {
                TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok()
            };
            if !up {
                return None;
            }
            // Then make sure both listeners belong to this pen (not to a port thief).
            let inodes = socket_inodes(self.pid);
            let listening = match &self.listen {
                Target::Tcp(a) => {
                    let port = a
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    tcp_listening(port, &inodes)
                }
                Target::Unix(p) => unix_listening(p, &inodes),
            };
            let ctl_listening = if unix_ctl {
                unix_listening(Path::new(&self.control), &inodes)
            } else {
                tcp_listening(cport, &inodes)
            };
            (listening && ctl_listening).then_some(Ok(()))
        });
        ready.unwrap_or_else(|| {
            let _ = self.child.kill();
            let _ = self.child.wait();
            Err("pen did not listen within 5 s".into())
        })
    }

    /// Waits (bounded) for pen to exit on its own.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        poll_until(within, || self.child.try_wait().ok().flatten())
    }

    /// Sends one control line directly over TCP and reads the reply to EOF.
    pub(crate) fn ctl(&self, line: &str) -> String {
        control(&self.control, line)
    }

    /// Runs `penctl CONTROL words...`; returns (stdout, exit code).
    pub(crate) fn penctl(&self, words: &[&str]) -> (String, i32) {
        let mut args = vec![self.control.clone()];
        args.extend(words.iter().map(|w| w.to_string()));
        run_bounded(&penctl_bin(), &args, WAIT)
    }

    /// `servers` via the control socket, one string per line.
    pub(crate) fn servers(&self) -> Vec<String> {
        self.ctl("servers").lines().map(str::to_string).collect()
    }

    /// The value of one series of the `metrics` exposition, e.g. `pen_connections_active` or
    /// `pen_bytes_total{direction="to_clients"}` (exactly as printed); `None` if absent.
    pub(crate) fn metric(&self, series: &str) -> Option<f64> {
        self.ctl("metrics").lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Connects a client to pen's listener (from 127.0.0.1).
    pub(crate) fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Connects a client to pen's listener from 127.0.0.`n`.
    pub(crate) fn connect_from(&self, n: u8) -> TcpStream {
        connect_from(Ipv4Addr::new(127, 0, 0, n), self.addr())
    }

    /// Connects from 127.0.0.`n`, reads to EOF, returns what a "name" backend said.
    pub(crate) fn fetch_from(&self, n: u8) -> String {
        let mut s = self.connect_from(n);
        read_to_eof(&mut s)
    }

    /// Connects from 127.0.0.1, reads to EOF.
    pub(crate) fn fetch(&self) -> String {
        self.fetch_from(1)
    }
}

impl Drop for Pen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("pen {:?} log:\n{}", self.args, self.log_text());
        }
    }
}

/// Runs a program with a deadline; returns (stdout, exit code or -1 if killed by a signal).
pub(crate) fn run_bounded(prog: &Path, args: &[String], within: Duration) -> (String, i32) {
    let t0 = Instant::now();
    let (out, _err, code) = run_bounded_full(prog, args, within);
    slow("run", t0);
    (out, code)
}

/// Runs a program with a deadline; returns (stdout, stderr, exit code). Panics on timeout.
pub(crate) fn run_bounded_full(
    prog: &Path,
    args: &[String],
    within: Duration,
) -> (String, String, i32) {
    let dir = ScratchDir::new("run");
    let out_p = dir.0.join("out");
    let err_p = dir.0.join("err");
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).expect("create out"))
        .stderr(std::fs::File::create(&err_p).expect("create err"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", prog.display()));
    let Some(status) = poll_until(within, || child.try_wait().expect("try_wait")) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} {args:?} did not finish within {within:?}",
            prog.display()
        );
    };
    let out = std::fs::read_to_string(&out_p).unwrap_or_default();
    let err = std::fs::read_to_string(&err_p).unwrap_or_default();
    (out, err, status.code().unwrap_or(-1))
}

/// Speaks the control protocol: connect, send `line\n`, read the reply to EOF.
pub(crate) fn control(addr: &str, line: &str) -> String {
    let t0 = Instant::now();
    let r = control_inner(addr, line);
    slow(line, t0);
    r
}

fn slow(what: &str, t0: Instant) {
    if t0.elapsed() > Duration::from_millis(900) {
        eprintln!(
            "SLOW {what}: {:?} in {:?}",
            t0.elapsed(),
            thread::current().name()
        );
    }
}

fn control_inner(addr: &str, line: &str) -> String {
    if addr.starts_with('/') {
        let mut s = connect_unix(Path::new(addr));
        s.write_all(format!("{line}\n").as_bytes())
            .expect("send control line");
        return read_to_eof(&mut s);
    }
    control_over(connect(addr), line)
}

/// Speaks the control protocol from client address 127.0.0.`n`.
pub(crate) fn control_from(n: u8, addr: &str, line: &str) -> String {
    control_over(connect_from(Ipv4Addr::new(127, 0, 0, n), addr), line)
}

fn control_over(mut s: TcpStream, line: &str) -> String {
    s.write_all(format!("{line}\n").as_bytes())
        .expect("send control line");
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "control {line:?}: {e} (got so far {:?})",
            String::from_utf8_lossy(&buf)
        ),
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
}

/// A TCP client connection with 5 s connect/read/write timeouts.
pub(crate) fn connect(addr: &str) -> TcpStream {
    let sa = resolve(addr);
    let t0 = Instant::now();
    let s = TcpStream::connect_timeout(&sa, WAIT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    slow("connect", t0);
    set_timeouts(&s);
    s
}

/// A TCP client connection bound to `src:0` first, so pen sees client address `src`.
pub(crate) fn connect_from(src: Ipv4Addr, addr: &str) -> TcpStream {
    let sa = resolve(addr);
    let t0 = Instant::now();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sock.bind(&SockAddr::from(SocketAddr::from((src, 0))))
        .expect("bind client");
    sock.connect_timeout(&SockAddr::from(sa), WAIT)
        .unwrap_or_else(|e| panic!("connect {addr} from {src}: {e}"));
    slow("connect_from", t0);
    let s: TcpStream = sock.into();
    set_timeouts(&s);
    s
}

/// A Unix-socket client connection with timeouts.
pub(crate) fn connect_unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// Reads to EOF (a reset counts as EOF); panics on timeout. Returns text.
pub(crate) fn read_to_eof<R: Read>(s: &mut R) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e} (got so far {:?})", String::from_utf8_lossy(&buf)),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// What a read attempt within a short window saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Bytes arrived.
    Data(Vec<u8>),
    /// Orderly EOF or reset: the connection is closed.
    Closed,
    /// Nothing within the window: still open and quiet.
    Quiet,
}

/// Reads once with a short timeout to see whether the peer sent, closed, or stayed quiet.
pub(crate) fn peek(s: &mut TcpStream, window: Duration) -> Peek {
    s.set_read_timeout(Some(window)).expect("read timeout");
    let mut chunk = [0u8; 4096];
    let r = loop {
        match s.read(&mut chunk) {
            Ok(0) => break Peek::Closed,
            Ok(n) => break Peek::Data(chunk[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break Peek::Closed,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                break Peek::Quiet
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        }
    };
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    r
}

/// How often [`poll_until`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// Calls `f` until it returns `Some` (every [`POLL`]), or returns `None` once `within` has
/// passed (`f` is called at least once, and once more at the deadline). The only pause of these
/// tests' waits: whatever waits for pen, a process or a socket state polls through here (or
/// blocks on a read with a timeout).
pub(crate) fn poll_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(POLL.min(deadline - now));
    }
}

/// Lets `d` of real time pass, for a client whose pace is what it models: a load generator's
/// rate, a slow reader or writer, a chatty client's interval. Never a wait for pen or any
/// other state: that is [`wait_for`] on the condition. Through [`poll_until`], so the suite
/// keeps one pause.
pub(crate) fn pace(d: Duration) {
    let _ = poll_until(d, || None::<()>);
}

/// Waits until `f` returns `Some` and returns it; panics naming `what` if that has not happened
/// within `within`.
pub(crate) fn wait_for<T>(within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_until(within, f).unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// Waits until `cond` holds; panics naming `what` if it does not within `within`.
pub(crate) fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(within, what, || cond().then_some(()));
}

/// The inodes of the sockets process `pid` holds (from `/proc/PID/fd`: cheap, unlike
/// `/proc/net/tcp` on a machine with tens of thousands of sockets).
pub(crate) fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut set = HashSet::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return set;
    };
    for e in rd.flatten() {
        if let Ok(t) = std::fs::read_link(e.path()) {
            let t = t.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    set.insert(n);
                }
            }
        }
    }
    set
}

/// Is there a TCP (v4 or v6) socket in LISTEN state on `port` owned by one of `inodes`?
fn tcp_listening(port: u16, inodes: &HashSet<u64>) -> bool {
    // Listening sockets have a zero remote address and state 0A; match that text before parsing.
    let v4 = format!(":{port:04X} 00000000:0000 0A ");
    let v6 = format!(":{port:04X} 00000000000000000000000000000000:0000 0A ");
    for (f, pat) in [("/proc/net/tcp", &v4), ("/proc/net/tcp6", &v6)] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(pat.as_str())) {
            let inode: Option<u64> = line.split_whitespace().nth(9).and_then(|i| i.parse().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                return true;
            }
        }
    }
    false
}

/// TCP state numbers of `/proc/net/tcp`.
pub(crate) const TCP_ESTABLISHED: u8 = 0x01;
pub(crate) const TCP_SYN_RECV: u8 = 0x03;
pub(crate) const TCP_LISTEN: u8 = 0x0A;

/// One TCP socket as `/proc/net/tcp` or `/proc/net/tcp6` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpRow {
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    /// [`TCP_ESTABLISHED`], [`TCP_SYN_RECV`], [`TCP_LISTEN`], ...
    pub(crate) state: u8,
    /// Bytes sent and not yet acknowledged by the peer.
    pub(crate) tx_queue: u64,
    /// Established: bytes received and not yet read by the socket's owner. Listening:
    /// connections waiting in the accept queue.
    pub(crate) rx_queue: u64,
    /// The socket's inode (as in the `socket:[INODE]` links of `/proc/PID/fd`).
    pub(crate) inode: u64,
}

/// The TCP sockets (IPv4 and IPv6) with `port` as their local or remote port. Reading
/// `/proc/net/tcp` takes tens of milliseconds when the system holds tens of thousands of sockets
/// (e.g. in TIME_WAIT after the load tests), so only the lines naming the port are parsed.
pub(crate) fn tcp_rows(port: u16) -> Vec<TcpRow> {
    let pat = format!(":{port:04X} ");
    let hex_port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
    let mut rows = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        rows.extend(text.lines().filter(|l| l.contains(&pat)).filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (tx, rx) = w.get(4)?.split_once(':')?;
            Some(TcpRow {
                local_port: hex_port(w.get(1)?)?,
                remote_port: hex_port(w.get(2)?)?,
                state: u8::from_str_radix(w.get(3)?, 16).ok()?,
                tx_queue: u64::from_str_radix(tx, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
                inode: w.get(9)?.parse().ok()?,
            })
        }));
    }
    rows.retain(|r| r.local_port == port || r.remote_port == port);
    rows
}

/// How many connections wait in the accept queue of the listener(s) on `port`; `None` if
/// nothing listens there.
pub(crate) fn accept_queue(port: u16) -> Option<u64> {
    let rows: Vec<TcpRow> = tcp_rows(port)
        .into_iter()
        .filter(|r| r.state == TCP_LISTEN && r.local_port == port)
        .collect();
    (!rows.is_empty()).then(|| rows.iter().map(|r| r.rx_queue).sum())
}

/// The other end of loopback connection `s` once everything written on `s` has been
/// acknowledged by the peer's kernel and read by the peer process; `None` before.
pub(crate) fn peer_has_read(s: &TcpStream) -> Option<TcpRow> {
    let (me, peer) = (s.local_addr().ok()?.port(), s.peer_addr().ok()?.port());
    let rows = tcp_rows(me);
    let end = |local: u16, remote: u16| {
        rows.iter()
            .find(|r| r.local_port == local && r.remote_port == remote)
            .copied()
    };
    let (mine, theirs) = (end(me, peer)?, end(peer, me)?);
    (mine.tx_queue == 0 && theirs.rx_queue == 0).then_some(theirs)
}

/// Loopback connection `s` as the kernel sees it: (bytes its other end holds and could not
/// send yet, bytes `s` has received and not read); `None` if either end is not listed. A peer that holds bytes
/// while `s` is not read is held back by `s`'s full receive window.
pub(crate) fn unsent_and_unread(s: &TcpStream) -> Option<(u64, u64)> {
    let (me, peer) = (s.local_addr().ok()?.port(), s.peer_addr().ok()?.port());
    let rows = tcp_rows(me);
    let end = |local: u16, remote: u16| {
        rows.iter()
            .find(|r| {
                r.local_port == local && r.remote_port == remote && r.state == TCP_ESTABLISHED
            })
            .copied()
    };
    Some((end(peer, me)?.tx_queue, end(me, peer)?.rx_queue))
}

/// Is there a listening Unix socket bound to `path` owned by one of `inodes`?
fn unix_listening(path: &Path, inodes: &HashSet<u64>) -> bool {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let want = path.to_string_lossy();
    text.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() >= 8
            && cols[7] == want
            && cols[3] == "00010000"
            && cols[6].parse::<u64>().is_ok_and(|i| inodes.contains(&i))
    })
}

/// FNV-1a 64-bit running checksum of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A deterministic pseudo-random byte stream (splitmix64).
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Self {
        Prng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Fills `buf` with the next bytes of the stream.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    /// A number in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// Writes `len` bytes of the stream seeded with `seed`; returns their checksum.
pub(crate) fn write_stream<W: Write>(w: &mut W, seed: u64, len: usize) -> std::io::Result<Fnv> {
    let mut rng = Prng::new(seed);
    let mut h = Fnv::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        left -= n;
    }
    Ok(h)
}

/// The checksum `write_stream(seed, len)` would produce, without writing.
pub(crate) fn stream_sum(seed: u64, len: usize) -> Fnv {
    write_stream(&mut std::io::sink(), seed, len).expect("sink")
}

/// Reads to EOF; returns (checksum, length).
pub(crate) fn read_sum<R: Read>(r: &mut R) -> std::io::Result<(Fnv, usize)> {
    let mut h = Fnv::new();
    let mut n = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((h, n)),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A `/proc/PID/status` field in KiB (e.g. `"VmRSS"`), if the process exists.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, else 100).
fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t: &f64| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system, all threads) used so far by process `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// How many file descriptors process `pid` has open.
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |rd| rd.count())
}

/// This process's RLIMIT_NOFILE (soft, hard) from `/proc/self/limits`.
pub(crate) fn nofile_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |w: Option<&str>| match w {
        Some("unlimited") => Some(u64::MAX),
        Some(v) => v.parse().ok(),
        None => None,
    };
    Some((parse(it.next())?, parse(it.next())?))
}

/// Raises this process's soft RLIMIT_NOFILE to `want` (capped by the hard limit) with
/// `prlimit(1)` if it is lower; returns the soft limit in force afterwards.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    let Some((soft, hard)) = nofile_limits() else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    let to = want.min(hard);
    let _ = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={to}:{hard}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    nofile_limits().map_or(soft, |(s, _)| s)
}

/// True when process `pid` has a TCP socket listening on `port` (read from /proc, no connect:
/// a probe connection would show in pen's counters).
pub(crate) fn pid_listens_on(pid: u32, port: u16) -> bool {
    tcp_listening(port, &socket_inodes(pid))
}
