//! Dropping root privileges to `-u USER` after the sockets are bound.
//!
//! The only module of the binary with `unsafe`: thin calls into libc's user database and
//! credential functions. The user is looked up before the balancer starts (so a typo fails fast,
//! before any thread exists) and the switch happens after binding.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;

/// A user to switch to: name (for the supplementary groups), uid and primary gid.
#[derive(Debug, Clone)]
pub(crate) struct User {
    name: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// Why the lookup or the switch failed.
#[derive(Debug)]
pub(crate) enum PrivError {
    /// No such user (or the name cannot be a user name).
    NoUser(String),
    /// The user database could not be read.
    Lookup(String, io::Error),
    /// A credential call failed.
    Switch(&'static str, String, io::Error),
}

impl fmt::Display for PrivError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivError::NoUser(u) => write!(f, "option -u: '{u}': expected an existing user name"),
            PrivError::Lookup(u, e) => write!(f, "cannot look up user '{u}': {e}"),
            PrivError::Switch(call, u, e) => write!(f, "cannot switch to user '{u}' ({call}): {e}"),
        }
    }
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Looks a user up in the password database (`getpwnam_r`, thread-safe).
///
/// # Errors
/// [`PrivError::NoUser`] if there is no such user, [`PrivError::Lookup`] if the lookup fails.
pub(crate) fn lookup(name: &str) -> Result<User, PrivError> {
    let cname = CString::new(name).map_err(|_| PrivError::NoUser(name.to_string()))?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read after
        // getpwnam_r reports success, when it has been filled in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pwd`, `buf` and `result` are valid for writes for
        // the sizes passed, and outlive the call. The strings in `pwd` point into `buf`.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
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
            return Err(PrivError::Lookup(
                name.to_string(),
                io::Error::from_raw_os_error(rc),
            ));
        }
        if result.is_null() {
            return Err(PrivError::NoUser(name.to_string()));
        }
        // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buf`, alive here.
        let pw_name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned();
        return Ok(User {
            name: pw_name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        });
    }
}

fn check(rc: libc::c_int, call: &'static str, user: &User) -> Result<(), PrivError> {
    if rc == 0 {
        Ok(())
    } else {
        let name = user.name.to_string_lossy().into_owned();
        Err(PrivError::Switch(call, name, io::Error::last_os_error()))
    }
}

/// Switches the whole process to `user`: supplementary groups, then gid, then uid (the order
/// matters: after setuid we could no longer change groups). glibc applies these to every thread.
///
/// # Errors
/// [`PrivError::Switch`] naming the call that failed.
pub(crate) fn drop_to(user: &User) -> Result<(), PrivError> {
    // Unprivileged and already that user (e.g. `-u $USER` in a test): nothing to change, and
    // initgroups would fail with EPERM.
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if euid() != 0 && uid == user.uid && gid == user.gid {
        return Ok(());
    }
    // SAFETY: `user.name` is a valid NUL-terminated string; initgroups only reads it.
    check(
        unsafe { libc::initgroups(user.name.as_ptr(), user.gid) },
        "initgroups",
        user,
    )?;
    // SAFETY: setgid takes a plain integer and has no memory-safety preconditions.
    check(unsafe { libc::setgid(user.gid) }, "setgid", user)?;
    // SAFETY: setuid takes a plain integer and has no memory-safety preconditions.
    check(unsafe { libc::setuid(user.uid) }, "setuid", user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_refuses_unknown() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(matches!(
            lookup("no-such-user-pen"),
            Err(PrivError::NoUser(_))
        ));
        assert!(matches!(lookup("a\0b"), Err(PrivError::NoUser(_))));
        assert_eq!(
            lookup("nobody-x").unwrap_err().to_string(),
            "option -u: 'nobody-x': expected an existing user name"
        );
    }
}
