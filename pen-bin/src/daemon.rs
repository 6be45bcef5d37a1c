//! Daemon mode: detaching (fork, new session, standard streams to /dev/null) with the
//! start-up report from the daemon to the waiting parent, and syslog for messages once there is
//! no terminal. The system calls are [`pen_core::os`]'s.
//!
//! pen-core logs through the `log` facade; [`install_logger`] makes its records (and the
//! binary's own) go where [`log_error`]'s do: `pen: MSG` on stderr, syslog once detached.
//!
//! [`detach`] forks, so it must run while the process has a single thread: after
//! `Balancer::bind`, before `Bound::start` and before the signal thread exists.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use pen_core::os::{self, Forked, SyslogLevel};

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

/// Detaches from the terminal. Returns only in the daemon (child); the parent waits for the
/// daemon's [`StartReport`] and exits with its status (0 once the daemon has started).
///
/// The daemon is in a new session (no controlling terminal), its working directory is `/`,
/// and stdin, stdout and stderr are `/dev/null`. The umask is kept.
///
/// # Errors
/// other threads are running, or pipe or fork failed (the caller is then still the only
/// process). If a later step fails in
/// the daemon, it reports the error to the parent and exits 1.
pub(crate) fn detach() -> io::Result<StartReport> {
    // Refused while other threads run: only the forking thread would survive in the child.
    let pipe = match os::fork_with_pipe()? {
        Forked::Parent(pipe) => parent_wait(pipe),
        Forked::Child(pipe) => pipe,
    };
    let report = StartReport { pipe };
    if let Err(e) = os::new_session() {
        report.failed(1, &format!("cannot detach: {e}"));
        std::process::exit(1);
    }
    Ok(report)
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
    os::open_syslog(c"pen");
    SYSLOG.store(true, Ordering::SeqCst);
}

/// Reports a runtime error: to syslog once detached, else as `pen: MSG` on stderr.
pub(crate) fn log_error(msg: &str) {
    log(SyslogLevel::Error, msg);
}

/// Reports something that went wrong while pen carries on, like [`log_error`].
pub(crate) fn log_warning(msg: &str) {
    log(SyslogLevel::Warning, msg);
}

/// Reports something worth knowing (e.g. the SIGUSR1 summary), like [`log_error`].
pub(crate) fn log_info(msg: &str) {
    log(SyslogLevel::Info, msg);
}

/// The `log` facade's logger: every record from pen (targets `pen`, `pen_core::...`) goes to
/// stderr or syslog like [`log_error`]'s. It lets every level through: pen-core makes its
/// debug lines only while `debug` (`-d`) is on, and the warnings it logs were always printed.
struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("pen")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => SyslogLevel::Error,
            log::Level::Warn => SyslogLevel::Warning,
            log::Level::Info => SyslogLevel::Info,
            log::Level::Debug | log::Level::Trace => SyslogLevel::Debug,
        };
        log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs the logger (once; later calls change nothing).
pub(crate) fn install_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

fn log(level: SyslogLevel, msg: &str) {
    if SYSLOG.load(Ordering::SeqCst) {
        os::syslog(level, msg);
    } else {
        eprintln!("pen: {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_takes_pen_records_only() {
        use log::Log;
        let meta = |target| log::Metadata::builder().target(target).build();
        assert!(LOGGER.enabled(&meta("pen_core::engine::route")));
        assert!(LOGGER.enabled(&meta("pen")));
        assert!(!LOGGER.enabled(&meta("rustls::server")));
    }

    #[test]
    fn log_error_without_syslog_goes_to_stderr() {
        // Not detached in tests: must not touch syslog (and must not panic on NUL).
        log_error("test message\0with nul");
        assert!(!SYSLOG.load(Ordering::SeqCst));
    }
}
