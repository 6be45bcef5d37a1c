//! Unix stream listeners that never take a path over from someone else (anything already at
//! the path is refused: a live socket, a stale one, a file that is not a socket), with the
//! mode and owner of a private control socket set before anyone can connect. pen removes the
//! sockets it created when it stops, so a restart finds the path free.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

/// Who may use a Unix socket: set between `bind` and `listen`, so no client can connect
/// before the mode is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketAccess {
    /// Permission bits of the socket file (0600, or 0660 with a group).
    pub(crate) mode: u32,
    /// Owner to give it (the user pen runs as after dropping privileges), if not ours.
    pub(crate) uid: Option<u32>,
    /// Group to give it, if not ours.
    pub(crate) gid: Option<u32>,
}

/// Binds a non-blocking Unix stream listener at `path`, with `access` if given (else the
/// umask's mode). An existing file at `path` is never taken over or removed: pen cannot know
/// who created it (a stale socket may be another program's), so the operator removes it.
pub(crate) fn unix_listener(
    path: &Path,
    backlog: i32,
    access: Option<SocketAccess>,
) -> io::Result<UnixListener> {
    refuse_existing(path)?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::unix(path)?)?;
    if let Some(a) = access {
        if let Err(e) = restrict(path, a) {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    }
    sock.listen(backlog)?;
    Ok(UnixListener::from(std::os::fd::OwnedFd::from(sock)))
}

/// Gives the socket file just bound its owner, group and mode (owner first: the mode is set
/// on a file that already belongs to them). `lchown` does not follow a link put in its place.
fn restrict(path: &Path, a: SocketAccess) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if a.uid.is_some() || a.gid.is_some() {
        std::os::unix::fs::lchown(path, a.uid, a.gid)?;
    }
    // `chmod` follows links: check that the path is still the socket we bound.
    if !std::fs::symlink_metadata(path)?.file_type().is_socket() {
        return Err(io::Error::other("replaced while being bound; not changed"));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(a.mode))
}

/// Checks that nothing is at `path`, saying what is there otherwise.
///
/// # Errors
/// `AddrInUse` when a process accepts connections on it, `AlreadyExists` when it is a stale
/// socket or not a socket, or the error of probing it (e.g. permission denied).
fn refuse_existing(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; not replaced",
        ));
    }
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a socket nobody listens on is there (left by a program that has gone?); \
             not removed: remove it if it is no other program's, then start again",
        )),
        Ok(()) => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use()),
        Err(e) => Err(e),
    }
}

fn in_use() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "a process accepts connections on this socket; not replaced",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pen-sys-unix-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_a_live_socket_a_stale_socket_and_a_file() {
        let d = scratch("rules");
        let live = d.join("live.sock");
        let _theirs = UnixListener::bind(&live).unwrap();
        let e = unix_listener(&live, 4, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(std::os::unix::net::UnixStream::connect(&live).is_ok());

        let file = d.join("file");
        std::fs::write(&file, "keep").unwrap();
        let e = unix_listener(&file, 4, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");

        let stale = d.join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = unix_listener(&stale, 4, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(stale.exists(), "a stale socket must not be removed");
        let fresh = d.join("fresh.sock");
        let ours = unix_listener(&fresh, 4, None).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&fresh).is_ok());
        drop(ours);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn access_sets_the_mode_before_listening() {
        let d = scratch("mode");
        let p = d.join("ctl.sock");
        let access = SocketAccess {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        let _l = unix_listener(&p, 4, Some(access)).unwrap();
        let mode = std::fs::symlink_metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }
}
