//! Dropping root privileges to `-u USER` after the sockets are bound, through
//! [`pen_core::os`]. The user is looked up before the balancer starts (so a typo fails fast,
//! before any thread exists) and the switch happens after binding.

use std::fmt;
use std::io;

use pen_core::os::{self, User};

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

/// Looks a user up in the password database.
///
/// # Errors
/// [`PrivError::NoUser`] if there is no such user, [`PrivError::Lookup`] if the lookup fails.
pub(crate) fn lookup(name: &str) -> Result<User, PrivError> {
    match os::lookup_user(name) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(PrivError::NoUser(name.to_string())),
        Err(e) => Err(PrivError::Lookup(name.to_string(), e)),
    }
}

/// Switches the whole process to `user` (see [`os::drop_privileges`]).
///
/// # Errors
/// [`PrivError::Switch`] naming the call that failed.
pub(crate) fn drop_to(user: &User) -> Result<(), PrivError> {
    os::drop_privileges(user)
        .map_err(|e| PrivError::Switch(e.call, user.name().into_owned(), e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_refuses_unknown() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid(), root.gid()), (0, 0));
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
