//! Passing descriptors between processes (the binary upgrade, `runtime::upgrade`): a Unix
//! `SOCK_SEQPACKET` pair (message boundaries kept, so a message and its descriptors arrive
//! together), `sendmsg`/`recvmsg` with `SCM_RIGHTS`, and the inherited end in the new process.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors one message carries (the kernel's `SCM_MAX_FD` is 253).
pub(crate) const MAX_FDS: usize = 64;
/// The longest message text.
pub(crate) const MAX_TEXT: usize = 1 << 20;

/// A connected `SOCK_SEQPACKET` Unix socket pair, both ends close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    let ty = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [a, b] = fds;
    // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(a), OwnedFd::from_raw_fd(b)) })
}

/// Sets or clears close-on-exec on `fd` (cleared on the end a new process inherits).
pub(crate) fn set_cloexec(fd: &OwnedFd, on: bool) -> io::Result<()> {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl on a descriptor we own; F_SETFD only changes its flags.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flag) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of the descriptor number `n` named by the parent (the upgrade channel):
/// refused unless it is open and a Unix socket; close-on-exec is set again so a later upgrade
/// does not leak it.
pub(crate) fn inherited_socket(n: RawFd) -> io::Result<OwnedFd> {
    if n < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an inherited descriptor",
        ));
    }
    // SAFETY: F_GETFD only reads the flags; it fails with EBADF on a closed descriptor.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are valid for getsockopt to write an int into.
    let rc = unsafe {
        libc::getsockopt(
            n,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || domain != libc::AF_UNIX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the inherited descriptor is not a Unix socket",
        ));
    }
    // SAFETY: the descriptor is open (checked above), was handed to this process by its parent
    // for this purpose alone, and nothing else in the process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(n) };
    set_cloexec(&fd, true)?;
    Ok(fd)
}

/// Room for `MAX_FDS` descriptors in a control message, aligned as `cmsghdr` needs.
#[repr(C)]
struct CmsgBuf {
    _align: [libc::cmsghdr; 0],
    buf: [u8; 512],
}

/// The control-message space for `n` descriptors.
fn cmsg_space(n: usize) -> usize {
    let bytes = (n * std::mem::size_of::<RawFd>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE(bytes) as usize }
}

/// Sends `text` with `fds` (at most [`MAX_FDS`]) as one message.
pub(crate) fn send_with_fds(sock: &impl AsRawFd, text: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS || text.is_empty() || text.len() > MAX_TEXT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors or a bad message size",
        ));
    }
    let mut cbuf = CmsgBuf {
        _align: [],
        buf: [0; 512],
    };
    let mut iov = libc::iovec {
        iov_base: text.as_ptr() as *mut libc::c_void,
        iov_len: text.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.buf.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        // SAFETY: msg_control points at a buffer of at least msg_controllen bytes (512 holds
        // MAX_FDS descriptors), aligned for cmsghdr, so CMSG_FIRSTHDR gives a valid header.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as libc::c_uint) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(c),
                std::mem::size_of_val(fds),
            );
        }
    }
    // SAFETY: msg points at valid iovec and control buffers that outlive the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != text.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "message cut short",
        ));
    }
    Ok(())
}

/// Receives one message (up to `max` bytes of text) and the descriptors that came with it,
/// each owned and close-on-exec. An empty text means the other end closed. Blocks (or waits up
/// to the socket's receive timeout).
pub(crate) fn recv_with_fds(
    sock: &impl AsRawFd,
    max: usize,
) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut text = vec![0u8; max.clamp(1, MAX_TEXT)];
    let mut cbuf = CmsgBuf {
        _align: [],
        buf: [0; 512],
    };
    let mut iov = libc::iovec {
        iov_base: text.as_mut_ptr().cast(),
        iov_len: text.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf.as_mut_ptr().cast();
    msg.msg_controllen = cmsg_space(MAX_FDS) as _;
    // SAFETY: msg points at valid buffers of the sizes given, which outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: recvmsg filled msg's control buffer; CMSG_FIRSTHDR/NXTHDR walk it within
    // msg_controllen, and each SCM_RIGHTS payload holds descriptors now owned by this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let head = data.offset_from(c.cast::<u8>()) as usize;
                let count =
                    ((*c).cmsg_len as usize).saturating_sub(head) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message or descriptors cut short",
        ));
    }
    text.truncate(n as usize);
    Ok((text, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_travel_with_their_message() {
        let (a, b) = seqpacket_pair().unwrap();
        let (mut x, y) = UnixStream::pair().unwrap();
        let y: OwnedFd = y.into();
        send_with_fds(&a, b"hello", &[y.as_raw_fd(), y.as_raw_fd()]).unwrap();
        drop(y);
        let (text, fds) = recv_with_fds(&b, 100).unwrap();
        assert_eq!(text, b"hello");
        assert_eq!(fds.len(), 2);
        let mut y = UnixStream::from(fds.into_iter().next().unwrap());
        x.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        y.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(a);
        let (text, fds) = recv_with_fds(&b, 100).unwrap();
        assert!(text.is_empty() && fds.is_empty());
    }

    #[test]
    fn only_an_open_unix_socket_is_inherited() {
        assert!(inherited_socket(0).is_err());
        assert!(inherited_socket(100_000).is_err());
        let (r, _w) = crate::sys::pipe(false).unwrap();
        let n = r.as_raw_fd();
        assert!(inherited_socket(n).is_err());
    }
}
