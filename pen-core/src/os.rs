//! Process-wide services of the operating system for a program running the balancer: dropping
//! root privileges to another user, detaching as a daemon, changing the root directory and
//! logging to syslog. Safe functions; the `unsafe` calls under them live in the crate's private
//! `sys` module, the only one allowed to hold any.
//!
//! The order matters, and is the `pen` binary's: look the user up before anything starts (so a
//! typo fails fast); bind the sockets; [`fork_with_pipe`] and [`new_session`] while the process
//! has a single thread; [`open_syslog`]; [`chroot`]; [`drop_privileges`]; start the workers.
//!
//! ```no_run
//! use pen_core::os;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let user = os::lookup_user("nobody")?.ok_or("no user 'nobody'")?;
//!     // ... bind the listening sockets as root ...
//!     os::chroot(std::path::Path::new("/var/empty"))?;
//!     os::drop_privileges(&user)?;
//!     Ok(())
//! }
//! ```

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys;
use crate::sys::process;

/// The effective user id of this process (0 for root).
pub fn euid() -> u32 {
    process::euid()
}

/// A user to switch to, as found in the password database: name (for the supplementary
/// groups), uid and primary gid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    name: CString,
    uid: u32,
    gid: u32,
}

impl User {
    /// The user's name, as the database spells it.
    pub fn name(&self) -> Cow<'_, str> {
        self.name.to_string_lossy()
    }

    /// The user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The primary group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

/// Looks `name` up in the password database (`getpwnam_r`, safe to call from any thread):
/// `Ok(None)` when there is no such user, or `name` cannot be one (it holds a NUL).
///
/// # Errors
/// The OS error when the database cannot be read.
pub fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    Ok(process::getpwnam(&cname)?.map(|p| User {
        name: p.name,
        uid: p.uid,
        gid: p.gid,
    }))
}

/// Looks a group up by name (`getgrnam_r`) or, failing that, takes a number as its gid:
/// `Ok(None)` when there is no such group.
///
/// # Errors
/// The OS error when the database cannot be read.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    if let Ok(cname) = CString::new(name) {
        if let Some(gid) = process::getgrnam(&cname)? {
            return Ok(Some(gid));
        }
    }
    Ok(name.parse().ok())
}

/// A credential call of [`drop_privileges`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct CredentialError {
    /// The call that failed: `initgroups`, `setgid` or `setuid`.
    pub call: &'static str,
    /// Its OS error.
    pub source: io::Error,
}

/// Switches the whole process to `user`: supplementary groups, then gid, then uid (the order
/// matters: after setuid the groups could no longer change). glibc applies these to every
/// thread. Nothing is done when the process is not root and already runs as `user` (e.g.
/// `-u $USER` in a test), where `initgroups` would fail.
///
/// # Errors
/// [`CredentialError`] naming the call that failed (the ones before it took effect).
pub fn drop_privileges(user: &User) -> Result<(), CredentialError> {
    let (uid, gid) = process::real_ids();
    if process::euid() != 0 && uid == user.uid && gid == user.gid {
        return Ok(());
    }
    let named = |call| move |source| CredentialError { call, source };
    process::initgroups(&user.name, user.gid).map_err(named("initgroups"))?;
    process::setgid(user.gid).map_err(named("setgid"))?;
    process::setuid(user.uid).map_err(named("setuid"))
}

/// Which side of [`fork_with_pipe`] a process is on.
#[derive(Debug)]
pub enum Forked {
    /// The original process, with the read end of the pipe.
    Parent(File),
    /// The new process, with the write end of the pipe.
    Child(File),
}

/// Forks this process, with a pipe (close-on-exec) from the child to the parent, e.g. for the
/// child to report how its start-up went.
///
/// Call it while the process has a single thread (before the balancer's workers or any signal
/// thread start): only the calling thread goes on in the child. On Linux this is checked.
///
/// # Errors
/// More than one thread is running, or the pipe or the fork failed: then nothing was forked.
pub fn fork_with_pipe() -> io::Result<Forked> {
    let (read, write) = sys::pipe(false)?;
    Ok(match process::fork()? {
        Some(_child) => {
            drop(write);
            Forked::Parent(File::from(read))
        }
        None => {
            drop(read);
            Forked::Child(File::from(write))
        }
    })
}

/// Detaches this process from its terminal: a new session (so no controlling terminal), `/` as
/// working directory, and standard input, output and error on `/dev/null`. The umask is kept.
/// Meant for the child of [`fork_with_pipe`]: a process group leader cannot start a session.
///
/// # Errors
/// The OS error of the step that failed.
pub fn new_session() -> io::Result<()> {
    process::setsid()?;
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    process::replace_std_streams(&null)
}

/// Changes the root directory to `dir` (`-j`), then the working directory to the new `/`.
///
/// # Errors
/// The OS error of chroot (which needs root) or chdir; `InvalidInput` for a path with a NUL.
pub fn chroot(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    process::chroot(&c)?;
    std::env::set_current_dir("/")
}

/// How serious a [`syslog`] message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogLevel {
    /// `LOG_ERR`: something failed.
    Error,
    /// `LOG_WARNING`: something went wrong and pen carries on.
    Warning,
    /// `LOG_INFO`: worth knowing.
    Info,
    /// `LOG_DEBUG`: the `-d` lines.
    Debug,
}

/// Opens syslog with `ident` (facility daemon, with the pid). The socket is opened at once, so
/// it keeps working after a [`chroot`].
pub fn open_syslog(ident: &'static CStr) {
    process::openlog(ident, libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_DAEMON);
}

/// Sends `msg` to syslog (NULs become spaces). Without [`open_syslog`] first, the C library
/// picks the ident and facility.
pub fn syslog(level: SyslogLevel, msg: &str) {
    let priority = match level {
        SyslogLevel::Error => libc::LOG_ERR,
        SyslogLevel::Warning => libc::LOG_WARNING,
        SyslogLevel::Info => libc::LOG_INFO,
        SyslogLevel::Debug => libc::LOG_DEBUG,
    };
    if let Ok(text) = CString::new(msg.replace('\0', " ")) {
        process::syslog(priority, &text);
    }
}

/// Replaces `path` with `bytes` (the pid file): written to a new temporary file in the same
/// directory (mode 0640 before the umask, never through a symbolic link), then renamed over
/// it; a target that is a symbolic link or not a regular file is refused and left alone.
/// Returns the new file, still open.
///
/// # Errors
/// The refusal or the I/O error (nothing is left behind).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<File> {
    crate::files::replace_keeping(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_users() {
        let root = lookup_user("root").unwrap().unwrap();
        assert_eq!(
            (root.name().as_ref(), root.uid(), root.gid()),
            ("root", 0, 0)
        );
        assert_eq!(lookup_user("no-such-user-pen").unwrap(), None);
        assert_eq!(lookup_user("a\0b").unwrap(), None);
    }

    #[test]
    fn dropping_to_oneself_is_a_no_op_unless_root() {
        if euid() == 0 {
            return; // as root it would really switch this test process
        }
        let (uid, gid) = process::real_ids();
        let me = User {
            name: CString::from(c"whoever"),
            uid,
            gid,
        };
        drop_privileges(&me).unwrap();
    }

    #[test]
    fn chroot_refuses_a_nul() {
        let e = chroot(Path::new("/tmp/a\0b")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
