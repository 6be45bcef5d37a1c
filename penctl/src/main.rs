//! `penctl`: send one control command to pen and print the reply.
//!
//! `penctl host:port|/path command words...` connects (TCP, or a Unix socket if the target
//! contains `/`), sends the words joined by single spaces and a newline, and copies the reply to
//! stdout unchanged until pen closes the connection. The port may be a service name
//! (`127.0.0.1:smtp`), looked up in `/etc/services` as pen looks up its own ports.
//!
//! `penctl -h` and `penctl --help` print the usage on stdout and exit 0, as Debian's penctl.
//!
//! Exit status: 0 on success, 1 if the reply starts with `error:`, 2 if the target cannot be
//! reached or does not answer in time, or on a usage error (the usage on stderr).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long to wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the whole reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// C penctl's usage line, then what ours accepts besides.
const USAGE: &str = "\
usage: penctl host:port command
  host:port may also be [v6addr]:port or /path/to/socket, and the port a service
  name (smtp); the command's words may be separate arguments (penctl H:P mode)";

/// A failure, printed as one line; all exit with status 2.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Missing arguments.
    Usage,
    /// The target is not `host:port` or a path.
    BadTarget(String),
    /// The target's port is neither a number (0-65535) nor a known service name.
    BadPort {
        /// The whole target.
        target: String,
        /// The port text.
        port: String,
    },
    /// Resolving or connecting failed.
    Connect(String, String),
    /// Sending or receiving failed (including the reply timeout).
    Io(String, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage => f.write_str(USAGE),
            Failure::BadTarget(t) => {
                write!(
                    f,
                    "penctl: '{t}': expected host:port, [v6addr]:port or a socket path"
                )
            }
            Failure::BadPort { target, port } => write!(
                f,
                "penctl: '{port}' in '{target}': expected a port number or service name"
            ),
            Failure::Connect(t, why) => write!(f, "penctl: cannot connect to {t}: {why}"),
            Failure::Io(t, why) => write!(f, "penctl: {t}: {why}"),
        }
    }
}

/// An OS error without Rust's " (os error N)" suffix, as C tools print it.
fn describe(e: &io::Error) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return "timed out".to_string();
    }
    let s = e.to_string();
    match s.rsplit_once(" (os error ") {
        Some((text, _)) => text.to_string(),
        None => s,
    }
}

/// Splits `host:port` or `[v6]:port` (also `::1:port`: the port follows the last colon). The
/// port is a number or a service name, resolved as pen resolves its own ports.
fn split_target(t: &str) -> Result<(&str, u16), Failure> {
    let bad = || Failure::BadTarget(t.to_string());
    let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let port = pen_core::addr::parse_port(port).map_err(|_| Failure::BadPort {
        target: t.to_string(),
        port: port.to_string(),
    })?;
    Ok((host, port))
}

/// Either kind of stream, so the send/receive code is written once.
trait Stream: Read + Write {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// Connects to the target: a Unix socket if it contains `/`, else TCP to each resolved address
/// in turn (5 s each) until one answers.
fn connect(target: &str) -> Result<Box<dyn Stream>, Failure> {
    let fail = |why: String| Failure::Connect(target.to_string(), why);
    if target.contains('/') {
        return UnixStream::connect(target)
            .map(|s| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| fail(describe(&e)));
    }
    let (host, port) = split_target(target)?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(describe(&e)))?
        .collect();
    let mut last = "no addresses".to_string();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(Box::new(s)),
            Err(e) => last = describe(&e),
        }
    }
    Err(fail(last))
}

/// Sends one line and reads the reply until EOF, within [`REPLY_TIMEOUT`] overall.
fn exchange(stream: &mut dyn Stream, line: &str) -> io::Result<Vec<u8>> {
    stream.write_all(line.as_bytes())?;
    stream.flush()?;
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs penctl on the arguments after the program name; returns the reply.
fn run(args: &[String]) -> Result<Vec<u8>, Failure> {
    let [target, words @ ..] = args else {
        return Err(Failure::Usage);
    };
    if words.is_empty() {
        return Err(Failure::Usage);
    }
    let line = format!("{}\n", words.join(" "));
    let mut stream = connect(target)?;
    exchange(stream.as_mut(), &line).map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no complete reply within {} s", REPLY_TIMEOUT.as_secs())
            }
            _ => describe(&e),
        };
        Failure::Io(target.clone(), why)
    })
}

/// True for `penctl -h` and `penctl --help` (Debian's penctl prints its usage and exits 0).
fn wants_help(args: &[String]) -> bool {
    matches!(args.first().map(String::as_str), Some("-h" | "--help"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if wants_help(&args) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(reply) => {
            let mut out = io::stdout().lock();
            if out.write_all(&reply).and_then(|()| out.flush()).is_err() {
                return ExitCode::from(2);
            }
            if reply.starts_with(b"error:") {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(f) => {
            eprintln!("{f}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("127.0.0.1:80"), Ok(("127.0.0.1", 80)));
        assert_eq!(split_target("[::1]:80"), Ok(("::1", 80)));
        assert_eq!(split_target("::1:80"), Ok(("::1", 80)));
        assert_eq!(split_target("localhost:80"), Ok(("localhost", 80)));
        for bad in ["80", ":80", "h:"] {
            assert_eq!(
                split_target(bad),
                Err(Failure::BadTarget(bad.into())),
                "{bad}"
            );
        }
        for (bad, port) in [
            ("h:x-no-such-service", "x-no-such-service"),
            ("h:70000", "70000"),
        ] {
            let e = split_target(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("penctl: '{port}' in '{bad}': expected a port number or service name")
            );
        }
        assert!(split_target("h:+1").is_err());
    }

    #[test]
    fn service_names_as_ports() {
        // As pen's own addresses: a tcp service name from /etc/services.
        let Ok(services) = std::fs::read_to_string("/etc/services") else {
            return;
        };
        let Some(smtp) = pen_core::addr::lookup_service_in(&services, "smtp") else {
            return;
        };
        assert_eq!(split_target("127.0.0.1:smtp"), Ok(("127.0.0.1", smtp)));
        assert_eq!(split_target("[::1]:smtp"), Ok(("::1", smtp)));
    }

    #[test]
    fn help_is_not_a_usage_error() {
        assert!(wants_help(&args("-h")));
        assert!(wants_help(&args("--help")));
        assert!(!wants_help(&args("127.0.0.1:1 -h")));
        assert!(USAGE.starts_with("usage: penctl host:port command\n"));
    }

    #[test]
    fn usage_and_bad_target() {
        assert_eq!(run(&args("")), Err(Failure::Usage));
        assert_eq!(run(&args("127.0.0.1:1")), Err(Failure::Usage));
        let e = run(&args("8080 mode")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "penctl: '8080': expected host:port, [v6addr]:port or a socket path"
        );
    }

    #[test]
    fn refused_connection_is_one_line() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = run(&args(&format!("127.0.0.1:{port} mode"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("penctl: cannot connect to 127.0.0.1:{port}: Connection refused")
        );
    }

    #[test]
    fn sends_one_line_and_reads_to_eof_over_tcp() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while got.last() != Some(&b'\n') {
                s.read_exact(&mut b).unwrap();
                got.push(b[0]);
            }
            s.write_all(b"line 1\nline 2\n").unwrap();
            got
        });
        let reply = run(&args(&format!("{target} server 0  blacklist 5"))).unwrap();
        assert_eq!(reply, b"line 1\nline 2\n");
        assert_eq!(server.join().unwrap(), b"server 0 blacklist 5\n");
    }

    #[test]
    fn unix_socket() {
        let dir = std::env::temp_dir().join(format!("penctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 64];
            let n = s.read(&mut b).unwrap();
            s.write_all(b"error: 'x': expected a command\n").unwrap();
            b[..n].to_vec()
        });
        let reply = run(&[path.display().to_string(), "x".into()]).unwrap();
        assert!(reply.starts_with(b"error:"));
        assert_eq!(server.join().unwrap(), b"x\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
