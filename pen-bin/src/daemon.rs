//! Daemon mode and the other libc calls of start-up: detaching (fork, new session, standard
//! streams to /dev/null), chroot, and syslog for messages once there is no terminal.
//!
//! With `privs.rs`, the only module of the binary with `unsafe`. [`detach`] forks, so it must
//! run while the process has a single thread: after `Balancer::bind`, before `Bound::start` and
//! before the signal thread exists.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the process has detached and opened syslog: [`log_error`] then goes there.
static SYSLOG: AtomicBool = AtomicBool::new(false);

/// The daemon's end of the start-up pipe: it tells the waiting parent (still attached to the
/// terminal) whether start-up succeeded, so the parent's exit status and message are those of
/// the start-up.
///
/// Protocol: one byte `0` for success; otherwise the exit status (nonzero) followed by the
/// message text. End of file without a byte means the daemon died.
#[derive(Debug)]
pub(crate) struct StartReport {
    pipe: File,
}

impl StartReport {
    /// Start-up succeeded: the parent exits 0.
    pub(crate) fn started(mut self) {
        // If the parent is gone there is nobody to tell; carry on.
        let _ = self.pipe.write_all(&[0]);
    }

    /// Start-up failed: the parent prints `pen: MSG` and exits with `code` (at least 1).
    pub(crate) fn failed(mut self, code: u8, msg: &str) {
        let mut buf = vec![code.max(1)];
        buf.extend_from_slice(msg.as_bytes());
        let _ = self.pipe.write_all(&buf);
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Detaches from the terminal. Returns only in the daemon (child); the parent waits for the
/// daemon's [`StartReport`] and exits with its status (0 once the daemon has started).
///
/// The daemon is in a new session (no controlling terminal), its working directory is `/`,
/// and stdin, stdout and stderr are `/dev/null`. The umask is kept.
///
/// # Errors
/// pipe or fork failed (the caller is then still the only process). If a later step fails in
/// the daemon, it reports the error to the parent and exits 1.
pub(crate) fn detach() -> io::Result<StartReport> {
    if let Some(n) = threads().filter(|&n| n > 1) {
        // Only the forking thread would survive in the child: refuse rather than run broken.
        return Err(io::Error::other(format!(
            "{n} threads already running, cannot fork safely"
        )));
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill in.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller guarantees the process has a single thread (see the module docs), so
    // the child is a complete copy and may run any code, not only async-signal-safe functions.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(wr);
        parent_wait(File::from(rd));
    }
    drop(rd);
    let report = StartReport {
        pipe: File::from(wr),
    };
    if let Err(e) = new_session() {
        report.failed(1, &format!("cannot detach: {e}"));
        std::process::exit(1);
    }
    Ok(report)
}

/// The daemon's side of [`detach`]: new session, `/` as working directory, no terminal streams.
fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments; it only fails if we already lead a process group,
    // which a freshly forked child never does.
    cvt(unsafe { libc::setsid() })?;
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..=2 {
        // SAFETY: both descriptors are open; dup2 atomically replaces `target`, which Rust's
        // std only uses as the standard streams (now writing to /dev/null).
        cvt(unsafe { libc::dup2(null.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// The number of threads of this process (Linux `/proc`), if known.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The parent's side: wait for the daemon's report, print its message, exit with its status.
fn parent_wait(mut pipe: File) -> ! {
    let mut first = [0u8; 1];
    let code = loop {
        match pipe.read(&mut first) {
            Ok(0) => {
                eprintln!("pen: the daemon exited during start-up");
                break 1;
            }
            Ok(_) if first[0] == 0 => break 0,
            Ok(_) => {
                let mut msg = Vec::new();
                let _ = pipe.read_to_end(&mut msg);
                eprintln!("pen: {}", String::from_utf8_lossy(&msg).trim_end());
                break i32::from(first[0]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("pen: cannot hear from the daemon: {e}");
                break 1;
            }
        }
    };
    // Nothing of the parent's needs cleaning up: the sockets belong to the daemon now.
    std::process::exit(code)
}

/// Opens syslog (ident `pen`, facility daemon, with the pid) and sends [`log_error`] there from
/// now on. The socket is opened at once, so it keeps working after a chroot.
pub(crate) fn open_syslog() {
    // SAFETY: the ident is a static NUL-terminated string, as openlog requires (it keeps the
    // pointer); the flags and facility are plain integers.
    unsafe {
        libc::openlog(
            c"pen".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        );
    }
    SYSLOG.store(true, Ordering::SeqCst);
}

/// Reports a runtime error: to syslog once detached, else as `pen: MSG` on stderr.
pub(crate) fn log_error(msg: &str) {
    log(libc::LOG_ERR, msg);
}

/// Reports something worth knowing (e.g. the SIGUSR1 summary), like [`log_error`].
pub(crate) fn log_info(msg: &str) {
    log(libc::LOG_INFO, msg);
}

fn log(priority: libc::c_int, msg: &str) {
    if !SYSLOG.load(Ordering::SeqCst) {
        eprintln!("pen: {msg}");
        return;
    }
    let Ok(text) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: the format is a static "%s" and its one argument a valid NUL-terminated string,
    // so syslog reads nothing else.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}

/// Changes the root directory to `dir` (`-j`), then the working directory to the new `/`.
///
/// # Errors
/// The OS error of chroot or chdir (chroot needs root).
pub(crate) fn chroot(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    cvt(unsafe { libc::chroot(c.as_ptr()) })?;
    std::env::set_current_dir("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_threads() {
        // Other tests run in parallel threads: only a lower bound is stable here.
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(threads().expect("Threads: in /proc/self/status") >= 1);
        }
    }

    #[test]
    fn log_error_without_syslog_goes_to_stderr() {
        // Not detached in tests: must not touch syslog (and must not panic on NUL).
        log_error("test message\0with nul");
        assert!(!SYSLOG.load(Ordering::SeqCst));
    }
}
