//! OS specifics: socket creation and options (through socket2), poller registration. The only
//! module allowed to hold `unsafe`, each block with a `// SAFETY:` line.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use polling::{Event, PollMode, Poller};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Registers `fd` with `poller` once, for both read and write readiness, in edge mode where the
/// poller supports it (level otherwise). Sockets are never re-armed per event.
///
/// Callers must call [`deregister`] before closing the socket.
pub(crate) fn register(poller: &Poller, fd: &impl AsRawFd, key: usize) -> io::Result<()> {
    let mode = if poller.supports_edge() {
        PollMode::Edge
    } else {
        PollMode::Level
    };
    // SAFETY: every socket registered here is owned by a worker that calls `deregister` (through
    // `Poller::delete`) before dropping it; see `reactor::Worker::close`.
    unsafe { poller.add_with_mode(fd.as_raw_fd(), Event::all(key), mode) }
}

/// Removes `fd` from `poller` (errors are ignored: the socket is about to be closed anyway).
pub(crate) fn deregister(poller: &Poller, fd: &impl std::os::fd::AsFd) {
    let _ = poller.delete(fd.as_fd());
}

/// Binds a non-blocking TCP listener; `reuse_port` lets every worker bind its own socket to the
/// same address so the kernel spreads connections over them.
pub(crate) fn tcp_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let _ = reuse_port;
    if addr.is_ipv6() {
        // `:::port` takes IPv4 clients too (as C pen's socket does: `ss` shows `*:port`); their
        // mapped addresses are turned back into IPv4 for tracking and ACLs (`net::canonical_ip`).
        sock.set_only_v6(!addr.ip().is_unspecified())?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock.into())
}

/// Binds a non-blocking Unix-domain listener, replacing a stale socket file.
pub(crate) fn unix_listener(path: &Path, backlog: i32) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::unix(path)?)?;
    sock.listen(backlog)?;
    Ok(UnixListener::from(std::os::fd::OwnedFd::from(sock)))
}

/// Starts a non-blocking connect to `addr` from `source` (if given). The result is known when
/// the socket becomes writable: see [`connect_result`].
pub(crate) fn connect_start(
    addr: SocketAddr,
    source: Option<IpAddr>,
    nodelay: bool,
) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    if nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if let Some(ip) = source {
        if ip.is_ipv4() == addr.is_ipv4() {
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

/// The outcome of a non-blocking connect once its socket reported readiness: `Ok(true)` when
/// connected, `Ok(false)` when still in progress, `Err` when it failed (refused, unreachable).
pub(crate) fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `e` means this process or host ran out of something (descriptors, buffers,
/// memory, local ports) rather than that the peer failed.
pub(crate) fn is_local_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// The number of CPUs available to this process (at least 1).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A kernel pipe used to move bytes between two sockets with `splice` (zero-copy on Linux):
/// socket -> pipe -> socket, the bytes never entering user space.
/// Requested kernel pipe capacity for `splice`.
#[cfg(target_os = "linux")]
pub(crate) const PIPE_SIZE: usize = 256 * 1024;

#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct KernelPipe {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl KernelPipe {
    /// A new non-blocking pipe.
    pub(crate) fn new() -> io::Result<KernelPipe> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe moves more per splice call (fewer system calls per byte). The kernel
        // may refuse (pipe-max-size, per-user limits): then the default 64 KiB stays.
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int argument.
        let _ = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE as libc::c_int,
            )
        };
        Ok(KernelPipe { read, write })
    }

    /// Moves up to `len` bytes from socket `from` into the pipe.
    pub(crate) fn fill(&self, from: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(from.as_raw_fd(), self.write.as_raw_fd(), len)
    }

    /// Moves up to `len` bytes from the pipe into socket `to`.
    pub(crate) fn drain(&self, to: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_raw_fd(), to.as_raw_fd(), len)
    }
}

#[cfg(target_os = "linux")]
fn splice(from: std::os::fd::RawFd, to: std::os::fd::RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the duration of the call (borrowed from owners
    // that outlive it); null offsets are allowed for sockets and pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
