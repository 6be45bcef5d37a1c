//! The Linux epoll backend of [`crate::poll`]: each socket registered once, edge-triggered, for
//! read, write, peer half-close and urgent data; a non-blocking eventfd (also edge-triggered, never re-armed)
//! to wake a waiting worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::poll::event::Event;

/// Whether this backend reports `hup` (so short reads may be trusted): yes, `EPOLLRDHUP` is
/// registered with every socket.
pub(crate) const REPORTS_HUP: bool = true;

/// Key reserved for the waker.
const WAKER_KEY: u64 = u64::MAX;
/// Events fetched per wait.
const CAPACITY: usize = 256;

/// An epoll instance and its waker.
#[derive(Debug)]
pub(crate) struct Poller {
    epfd: OwnedFd,
    waker: OwnedFd,
}

/// Reported events (a reusable buffer: nothing allocates per wait).
pub(crate) struct Events {
    raw: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    /// An empty buffer with room for a batch of events.
    pub(crate) fn new() -> Self {
        Events {
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; CAPACITY],
            len: 0,
        }
    }

    /// The raw events the last wait filled in (`len` never exceeds the buffer).
    fn ready(&self) -> &[libc::epoll_event] {
        self.raw.get(..self.len).unwrap_or_default()
    }

    /// The events of the last wait (the waker's are filtered out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.ready().iter().filter_map(|e| {
            let (bits, key) = (e.events, e.u64);
            (key != WAKER_KEY).then(|| {
                let has = |f: libc::c_int| bits & (f as u32) != 0;
                Event {
                    key: key as usize,
                    readable: has(libc::EPOLLIN
                        | libc::EPOLLRDHUP
                        | libc::EPOLLHUP
                        | libc::EPOLLERR),
                    writable: has(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR),
                    hup: has(libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR),
                    // Urgent data (EPOLLPRI) makes a read stop short at its mark: not drained.
                    fin: has(libc::EPOLLRDHUP) && !has(libc::EPOLLERR | libc::EPOLLPRI),
                }
            })
        })
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Poller {
    /// A new epoll instance with its waker registered.
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: plain system calls; on success the descriptors are fresh and ours alone.
        let epfd = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let waker = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
            ))?)
        };
        let p = Poller { epfd, waker };
        p.ctl(
            libc::EPOLL_CTL_ADD,
            p.waker.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            WAKER_KEY,
        )?;
        Ok(p)
    }

    fn ctl(&self, op: libc::c_int, fd: libc::c_int, events: u32, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; both descriptors
        // are open (borrowed from their owners).
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Registers `fd` once for everything, edge-triggered. `EPOLLPRI` is asked for only so
    /// that urgent data shows in the events (it keeps a short read from meaning drained).
    pub(crate) fn add(&self, fd: &impl AsRawFd, key: usize) -> io::Result<()> {
        let bits =
            libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET;
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), bits as u32, key as u64)
    }

    /// Removes `fd` (errors ignored: it is about to be closed, which removes it anyway).
    pub(crate) fn delete(&self, fd: &impl AsFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd.as_fd().as_raw_fd(), 0, 0);
    }

    /// `fd` is about to be closed by its only owner: nothing to do, because closing the last
    /// descriptor of a socket takes it out of every epoll set, and an `EPOLL_CTL_DEL` first would
    /// be a system call per socket for nothing (two per relayed connection). Should a copy of
    /// the descriptor live on (a child between `fork` and `exec` during a binary upgrade), its
    /// events carry the old slot generation and are ignored. Sockets that live on elsewhere
    /// (handed over to another process) are [`Poller::delete`]d instead.
    pub(crate) fn closing(&self, _fd: &impl AsFd) {}

    /// Waits for events (at most `timeout`, rounded up to whole milliseconds).
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.len = 0;
        let ms = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let cap = libc::c_int::try_from(events.raw.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `raw` has room for `cap` events; the kernel writes at most that many.
        let n = cvt(unsafe {
            libc::epoll_wait(self.epfd.as_raw_fd(), events.raw.as_mut_ptr(), cap, ms)
        })?;
        events.len = usize::try_from(n).unwrap_or(0);
        if events.ready().iter().any(|e| e.u64 == WAKER_KEY) {
            // Reset the counter (it would only block writers after 2^64 wakes, but keep
            // it small); the edge registration needs no re-arming.
            let mut buf = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from our own eventfd.
            let _ = unsafe { libc::read(self.waker.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        }
        Ok(events.len)
    }

    /// The epoll instance's descriptor: the io_uring engine polls it to be woken.
    pub(crate) fn as_raw_fd(&self) -> libc::c_int {
        self.epfd.as_raw_fd()
    }

    /// Wakes the thread waiting on this poller (or its next wait).
    pub(crate) fn notify(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes from an 8-byte buffer to our own eventfd.
        let rc = unsafe { libc::write(self.waker.as_raw_fd(), one.as_ptr().cast(), 8) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // Counter saturated: a wake-up is pending anyway.
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }
}
