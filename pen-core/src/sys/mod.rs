//! OS specifics: socket creation and options (through socket2), splice pipes, the two poller
//! backends of [`crate::poll`] (Linux's own `epoll`, the `polling` crate's `portable`) and the
//! process-wide calls of start-up ([`process`]: credentials, fork, chroot, syslog). The only
//! module allowed to hold `unsafe` (`lib.rs` allows `unsafe_code` here alone), each block with a
//! `// SAFETY:` line.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub(crate) mod fdpass;
pub(crate) mod process;
mod unix_socket;
pub(crate) use unix_socket::{unix_listener, SocketAccess};
#[cfg(test)]
mod unsafe_audit;
#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
pub(crate) mod uring;

/// A new pipe, both ends close-on-exec (and non-blocking if asked): `(read end, write end)`.
pub(crate) fn pipe(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(read), OwnedFd::from_raw_fd(write)) })
}

/// Binds a non-blocking TCP listener; `reuse_port` lets every worker bind its own socket to the
/// same address so the kernel spreads connections over them.
pub(crate) fn tcp_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    let sock = bound_socket(addr, Type::STREAM, Protocol::TCP, reuse_port)?;
    sock.listen(backlog)?;
    Ok(sock.into())
}

/// Binds a non-blocking UDP socket for the `-U` listener; `reuse_port` lets every worker bind
/// its own socket to the same address (Linux spreads datagrams over them by the sender's
/// address, so one client's datagrams always reach the same worker).
pub(crate) fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    Ok(bound_socket(addr, Type::DGRAM, Protocol::UDP, reuse_port)?.into())
}

/// A non-blocking socket bound to `addr`, with the options every pen listener shares:
/// address reuse (restarts despite TIME_WAIT), `SO_REUSEPORT` when asked (one socket per
/// worker), and the dual-stack rule for IPv6.
fn bound_socket(
    addr: SocketAddr,
    ty: Type,
    proto: Protocol,
    reuse_port: bool,
) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if ty == Type::STREAM {
        sock.set_reuse_address(true)?;
    }
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
    Ok(sock)
}

/// A non-blocking UDP socket connected to `server` (bound to `source` first when it is of the
/// same family): a UDP flow's upstream socket. Being connected, it only receives the server's
/// datagrams, and an ICMP "port unreachable" from the server shows as `ECONNREFUSED`.
pub(crate) fn udp_connect(server: SocketAddr, source: Option<IpAddr>) -> io::Result<UdpSocket> {
    let sock = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    sock.set_nonblocking(true)?;
    let local = match source {
        Some(ip) if ip.is_ipv4() == server.is_ipv4() => ip,
        _ if server.is_ipv4() => IpAddr::from([0u8; 4]),
        _ => IpAddr::from([0u16; 8]),
    };
    sock.bind(&SocketAddr::new(local, 0).into())?;
    sock.connect(&server.into())?;
    Ok(sock.into())
}

/// Accepts a connection as a non-blocking socket: `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`
/// where available, else accept and set the flag.
pub(crate) fn accept_nonblocking(
    listener: &impl std::os::fd::AsFd,
) -> io::Result<(Socket, SockAddr)> {
    let l = socket2::SockRef::from(listener);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        l.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let (s, a) = l.accept()?;
        s.set_nonblocking(true)?;
        Ok((s, a))
    }
}

/// Starts a non-blocking connect to `addr` from `source` (if given). The result is known when
/// the socket becomes writable: see [`connect_result`]. With `transparent` (the client's
/// address, under `transparent`) the socket is bound to that foreign address with
/// `IP_TRANSPARENT` (Linux, needs `CAP_NET_ADMIN`), so the server sees the client as the peer;
/// it takes the place of `source`.
pub(crate) fn connect_start(
    addr: SocketAddr,
    source: Option<IpAddr>,
    transparent: Option<IpAddr>,
    nodelay: bool,
) -> io::Result<TcpStream> {
    // Created non-blocking: no fcntl pair per connection.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let sock = {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s
    };
    if nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if let Some(client) = transparent {
        bind_transparent(&sock, client, addr)?;
    } else if let Some(ip) = source {
        if ip.is_ipv4() == addr.is_ipv4() {
            // The port is left to the connect, which picks one free for this 4-tuple: a bind
            // to port 0 would reserve one for any destination, searching the whole range
            // under a lock, and run out after ~28,000 connections per source address.
            bind_address_no_port(&sock);
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

/// `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2; for IPv6 sockets too): a bind to port 0 then
/// fixes only the address, and the connect chooses the port. Best effort: where the kernel
/// refuses, the bind picks a port as it always did.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_address_no_port(sock: &Socket) {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the duration of the call and its size is passed; the
    // descriptor is open (borrowed from `sock`).
    let _ = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Elsewhere the bind picks the port.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_address_no_port(_sock: &Socket) {}

/// Binds `sock` (about to connect to `server`) to the client's address `client` with
/// `IP_TRANSPARENT`, as C pen's `transparent` does; a client of the other family than the
/// server leaves the socket unbound. As in C pen, a refusal (no `CAP_NET_ADMIN`, e.g. after
/// `-u`) is logged and the connect goes ahead from pen's own address: it is not the server's
/// fault, so it must not fail the connect (and blacklist the server).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_transparent(sock: &Socket, client: IpAddr, server: SocketAddr) -> io::Result<()> {
    if client.is_ipv4() != server.is_ipv4() {
        return Ok(());
    }
    let set = if client.is_ipv4() {
        sock.set_ip_transparent_v4(true)
    } else {
        sock.set_ip_transparent_v6(true)
    };
    let bound = set.and_then(|()| sock.bind(&SocketAddr::new(client, 0).into()));
    if let Err(e) = bound {
        log::warn!("transparent: cannot use client address {client} towards {server}: {e}");
    }
    Ok(())
}

/// Without `IP_TRANSPARENT` (not Linux) `transparent` has no effect.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_transparent(_sock: &Socket, _client: IpAddr, _server: SocketAddr) -> io::Result<()> {
    Ok(())
}

/// The outcome of a non-blocking connect once its socket reported readiness: `Ok(true)` when
/// connected, `Ok(false)` when still in progress, `Err` when it failed (refused, unreachable).
/// `writable` is the event's write readiness: with edge-triggered registration a connecting
/// socket reports writable only once the handshake is done, so no `getpeername` is needed.
pub(crate) fn connect_result(stream: &TcpStream, writable: bool) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(writable)
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

/// Requested kernel pipe capacity for `splice`.
#[cfg(target_os = "linux")]
pub(crate) const PIPE_SIZE: usize = 256 * 1024;

/// A kernel pipe used to move bytes between two sockets with `splice` (zero-copy on Linux):
/// socket -> pipe -> socket, the bytes never entering user space.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

#[cfg(target_os = "linux")]
impl KernelPipe {
    /// A new non-blocking pipe.
    pub(crate) fn new() -> io::Result<KernelPipe> {
        let (read, write) = pipe(true)?;
        // A bigger pipe moves more per splice call (fewer system calls per byte). The kernel
        // may refuse (pipe-max-size, per-user limits): then the capacity stays as it is.
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int argument.
        let _ = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE as libc::c_int,
            )
        };
        // SAFETY: fcntl on a descriptor we own; F_GETPIPE_SZ takes no argument.
        let cap = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity = usize::try_from(cap).ok().filter(|&c| c > 0).unwrap_or(4096);
        Ok(KernelPipe {
            read,
            write,
            capacity,
        })
    }

    /// How many bytes the pipe holds (what one `fill` asks for).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
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

crate::poll::event::by_backend! {
    epoll {
        /// The Linux epoll backend of [`crate::poll`].
        pub(crate) mod epoll;
    }
    portable {
        /// The `polling` crate behind [`crate::poll`]: every other platform's backend, and
        /// Linux's with the `portable-poller` feature.
        pub(crate) mod portable;
    }
}
