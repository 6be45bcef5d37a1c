//! Process-wide calls of start-up: the user database and credentials (`-u`), fork and a new
//! session (daemon mode), chroot (`-j`) and syslog. Each is a safe function over one libc call;
//! the public face, which composes them, is [`crate::os`].

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The effective user id of this process.
pub(crate) fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real user and group ids of this process.
pub(crate) fn real_ids() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// An entry of the password database.
#[derive(Debug)]
pub(crate) struct Passwd {
    pub(crate) name: CString,
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
}

/// Looks `name` up in the password database (`getpwnam_r`, thread-safe): `Ok(None)` when there
/// is no such user.
pub(crate) fn getpwnam(name: &CStr) -> io::Result<Option<Passwd>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read after
        // getpwnam_r reports success, when it has been filled in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pwd`, `buf` and `result` are valid for writes for
        // the sizes passed, and outlive the call. The strings in `pwd` point into `buf`.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buf`, alive
        // here; it is copied out before `buf` goes.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned();
        return Ok(Some(Passwd {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

/// Looks `name` up in the group database (`getgrnam_r`, thread-safe): its gid, `Ok(None)` when
/// there is no such group.
pub(crate) fn getgrnam(name: &CStr) -> io::Result<Option<libc::gid_t>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero is a valid `group` (null pointers, zero id); it is only read after
        // getgrnam_r reports success, when it has been filled in.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `grp`, `buf` and `result` are valid for writes for
        // the sizes passed, and outlive the call.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// Sets the supplementary groups to those of user `name`, plus `gid`.
pub(crate) fn initgroups(name: &CStr, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string; initgroups only reads it.
    cvt(unsafe { libc::initgroups(name.as_ptr(), gid) }).map(drop)
}

/// Sets the real, effective and saved group id (glibc applies it to every thread).
pub(crate) fn setgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setgid takes a plain integer and has no memory-safety preconditions.
    cvt(unsafe { libc::setgid(gid) }).map(drop)
}

/// Sets the real, effective and saved user id (glibc applies it to every thread).
pub(crate) fn setuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setuid takes a plain integer and has no memory-safety preconditions.
    cvt(unsafe { libc::setuid(uid) }).map(drop)
}

/// The number of threads of this process (Linux `/proc`), if known.
pub(crate) fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Forks: `Some(pid of the child)` in the parent, `None` in the child.
///
/// Refuses (before forking) when more than one thread runs: only the calling thread would
/// survive in the child, possibly leaving locks held for ever. The count comes from `/proc`;
/// where it cannot be read, the caller must make sure no other thread was started.
pub(crate) fn fork() -> io::Result<Option<libc::pid_t>> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(io::Error::other(format!(
            "{n} threads already running, cannot fork safely"
        )));
    }
    // SAFETY: the process has a single thread (checked above where /proc tells, documented for
    // the caller elsewhere), so the child is a complete copy: no lock is held by a thread that
    // does not exist there, and it may run any code, not only async-signal-safe functions.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok((pid > 0).then_some(pid))
}

/// Starts a new session with this process as its leader (no controlling terminal).
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and touches no memory of ours; it fails (EPERM) if we
    // already lead a process group, which a freshly forked child never does.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// Makes descriptors 0, 1 and 2 (standard input, output and error) copies of `to`.
pub(crate) fn replace_std_streams(to: &impl AsRawFd) -> io::Result<()> {
    for target in 0..=2 {
        // SAFETY: `to` is open (borrowed for the call); dup2 atomically replaces `target`,
        // which Rust's std only uses as the standard streams (now going to `to`).
        cvt(unsafe { libc::dup2(to.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Changes the root directory to `dir` (not the working directory).
pub(crate) fn chroot(dir: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a valid NUL-terminated path that outlives the call.
    cvt(unsafe { libc::chroot(dir.as_ptr()) }).map(drop)
}

/// Opens the connection to syslog with the given ident, options and facility.
pub(crate) fn openlog(ident: &'static CStr, option: libc::c_int, facility: libc::c_int) {
    // SAFETY: the ident is a NUL-terminated string that lives for ever, as openlog requires (it
    // keeps the pointer); the option and facility are plain integers.
    unsafe { libc::openlog(ident.as_ptr(), option, facility) };
}

/// Sends `msg` to syslog at `priority`.
pub(crate) fn syslog(priority: libc::c_int, msg: &CStr) {
    // SAFETY: the format is a static "%s" and its one argument a valid NUL-terminated string,
    // so syslog reads nothing else.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
}

/// The local time zone's offset from UTC at `secs` (seconds since the Unix epoch), in seconds
/// east of UTC, as `localtime_r` gives it (`TZ`, else /etc/localtime); 0 if unknown.
pub(crate) fn utc_offset_secs(secs: u64) -> i64 {
    let Ok(t) = libc::time_t::try_from(secs) else {
        return 0;
    };
    // SAFETY: `libc::tm` is plain integers and a pointer, for which all-zero bytes are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r writes only `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return 0;
    }
    // `c_long` is `i64` here but `i32` on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    i64::from(tm.tm_gmtoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offset_is_within_a_day() {
        assert!(utc_offset_secs(1_700_000_000).abs() <= 86_400);
    }

    #[test]
    fn counts_threads() {
        // Other tests run in parallel threads: only a lower bound is stable here.
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(thread_count().expect("Threads: in /proc/self/status") >= 1);
        }
    }

    #[test]
    fn looks_up_root_and_misses_unknown() {
        let root = getpwnam(c"root").unwrap().unwrap();
        assert_eq!((root.name.as_c_str(), root.uid, root.gid), (c"root", 0, 0));
        assert!(getpwnam(c"no-such-user-pen").unwrap().is_none());
        assert_eq!(getgrnam(c"root").unwrap(), Some(0));
        assert!(getgrnam(c"no-such-group-pen").unwrap().is_none());
    }
}
