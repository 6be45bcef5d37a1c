//! One direction of a relayed connection: bytes from a source to a destination, in order, with
//! back-pressure and half-close. A plain type over `Read`/`Write`, driven by cached readiness,
//! so it is tested without sockets (short reads and writes, EOFs, errors).
//!
//! A buffer is checked out of the worker's [`BufPool`] only while bytes are in flight and goes
//! back as soon as they are written, so idle connections hold no buffer; its size follows the
//! connection (32 KiB, up to 256 KiB for a stream whose reads fill it: see `pool`).

use std::io::{self, Read, Write};

mod pool;

use pool::SizeClass;
#[cfg(feature = "fuzzing")]
pub(crate) use pool::MAX_BUF;
pub(crate) use pool::{BufPool, BUF_SIZE};

/// How many reads one connection may do per turn before yielding to others (fairness).
pub(crate) const READS_PER_TURN: u32 = 16;

/// Passing a half-close on: shut down the write side of the destination.
pub(crate) trait HalfClose {
    /// `shutdown(SHUT_WR)`.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl HalfClose for &crate::engine::net::Stream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        crate::engine::net::Stream::shutdown_write(self)
    }
}

/// Cached readiness of one socket, as reported by the edge-triggered poller and cleared when
/// the socket says (or shows) it has nothing more for now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// A read may return data, EOF or an error.
    pub(crate) read: bool,
    /// A write may make progress.
    pub(crate) write: bool,
    /// The peer's FIN (or a hang-up/error) has been seen: reads must continue to EOF even
    /// after a short read.
    pub(crate) hup: bool,
    /// The peer's FIN has been seen with no error and no urgent data (see
    /// [`crate::poll::Event`]'s `fin`): a short read reached the end of file.
    pub(crate) fin: bool,
}

impl Readiness {
    /// Adds what an event reported.
    pub(crate) fn update(&mut self, ev: &crate::poll::Event) {
        self.read |= ev.readable;
        self.write |= ev.writable;
        self.hup |= ev.hup;
        self.fin |= ev.fin;
    }

    /// A read returned `got` of `asked` bytes. A short read from a stream socket means it is
    /// drained, unless the FIN is already in: then only a read returning 0 says so. Trusting
    /// this saves a read that would fail with `WouldBlock` on most events.
    pub(crate) fn after_read(&mut self, got: usize, asked: usize) {
        if crate::poll::REPORTS_HUP && got < asked && !self.hup {
            self.read = false;
        }
    }

    /// A write took `put` of `offered` bytes: a short write means the send buffer is full, and
    /// the poller reports when space frees.
    fn after_write(&mut self, put: usize, offered: usize) {
        if put < offered {
            self.write = false;
        }
    }
}

/// Where one direction's bytes wait between the read and the write: a user-space buffer, or
/// (Linux, zero-copy) a kernel pipe. The relay loop ([`Pipe::run`]) is written once over this.
pub(crate) trait Carrier<S, D> {
    /// Bytes held (read, not yet written).
    fn held(&self) -> usize;
    /// Reads from `src` into the empty carrier; returns (got, asked).
    fn fill(&mut self, src: &mut S, pool: &mut BufPool) -> io::Result<(usize, usize)>;
    /// Writes held bytes to `dst`; returns (put, offered).
    fn drain(&mut self, dst: &mut D) -> io::Result<(usize, usize)>;
    /// Gives the storage back to the pool if nothing is held.
    fn release_if_empty(&mut self, pool: &mut BufPool);
    /// Whether a short `fill` from a source whose FIN is in ([`Readiness::fin`]) may stand
    /// for the end of file (one read saved per direction): only for a carrier that needs to
    /// see no read returning 0 (the HTTP rewriter does: it finishes its request there).
    fn short_fill_at_fin_is_eof(&self) -> bool {
        false
    }
    /// The bytes held, when they are visible (user-space buffers; empty for kernel pipes).
    fn visible(&self) -> &[u8];
}

/// Called with each chunk read (the access log); `None` on the relay's fast path.
pub(crate) type OnRead<'a> = Option<&'a mut dyn FnMut(&[u8])>;

/// A user-space buffer, checked out of the pool on the first read, of the size `class` says.
#[derive(Debug, Default)]
struct UserBuf {
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// The size the next read wants (grows while reads fill the buffer).
    class: SizeClass,
}

impl<S: Read, D: Write> Carrier<S, D> for UserBuf {
    fn held(&self) -> usize {
        self.end - self.start
    }

    fn fill(&mut self, src: &mut S, pool: &mut BufPool) -> io::Result<(usize, usize)> {
        // Empty here (the relay fills only an empty carrier): swap it if the size changed.
        let want = self.class.bytes();
        if let Some(b) = self.buf.take_if(|b| b.len() != want) {
            pool.put(b);
        }
        let class = self.class;
        let buf = self.buf.get_or_insert_with(|| pool.get_sized(class));
        let n = src.read(buf)?;
        (self.start, self.end) = (0, n);
        self.class.after_read(n, buf.len());
        Ok((n, buf.len()))
    }

    fn drain(&mut self, dst: &mut D) -> io::Result<(usize, usize)> {
        let Some(buf) = self.buf.as_ref() else {
            return Ok((0, 0));
        };
        let Some(held) = buf.get(self.start..self.end) else {
            return Ok((0, 0));
        };
        let offered = held.len();
        let n = dst.write(held)?;
        self.start += n;
        if n < offered {
            self.class.after_short_write();
        }
        Ok((n, offered))
    }

    fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if let Some(b) = self.buf.take() {
                pool.put(b);
            }
        }
    }

    fn short_fill_at_fin_is_eof(&self) -> bool {
        true
    }

    fn visible(&self) -> &[u8] {
        self.buf
            .as_ref()
            .and_then(|b| b.get(self.start..self.end))
            .unwrap_or_default()
    }
}

/// A kernel pipe for `splice` (socket -> pipe -> socket, no copy through user space).
#[cfg(target_os = "linux")]
#[derive(Debug, Default)]
struct KernelBuf {
    pipe: Option<crate::sys::KernelPipe>,
    held: usize,
}

#[cfg(target_os = "linux")]
impl Carrier<&crate::engine::net::Stream, &crate::engine::net::Stream> for KernelBuf {
    fn held(&self) -> usize {
        self.held
    }

    fn fill(
        &mut self,
        src: &mut &crate::engine::net::Stream,
        _: &mut BufPool,
    ) -> io::Result<(usize, usize)> {
        // `Pipe::pump_splice` checks a pipe out before running, so there is one here.
        let Some(p) = self.pipe.as_ref() else {
            return Err(io::ErrorKind::Other.into());
        };
        let n = p.fill(*src, p.capacity())?;
        self.held = n;
        // A short splice does not mean the socket is drained: a pipe also fills up by its
        // slots (one per page fragment), before its byte capacity, with the rest still in the
        // socket and no new edge to come. Only `WouldBlock` says drained here.
        Ok((n, n))
    }

    fn drain(&mut self, dst: &mut &crate::engine::net::Stream) -> io::Result<(usize, usize)> {
        let Some(p) = self.pipe.as_ref() else {
            return Ok((0, 0));
        };
        let offered = self.held;
        let n = p.drain(*dst, offered)?;
        self.held -= n;
        // Nor does a short splice into the socket mean its buffer is full (only `WouldBlock`
        // does): ask again.
        Ok((n, n))
    }

    fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.held == 0 {
            if let Some(p) = self.pipe.take() {
                pool.put_pipe(p);
            }
        }
    }

    fn visible(&self) -> &[u8] {
        &[]
    }
}

/// One direction of a connection handed to a new process by a binary upgrade.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PipeState {
    /// Bytes read from the source and not yet written to the destination.
    pub(crate) pending: Vec<u8>,
    /// The source has reached end of file.
    pub(crate) eof: bool,
    /// The end of file has been passed on.
    pub(crate) shut: bool,
    /// Bytes delivered so far.
    pub(crate) bytes: u64,
}

/// One direction's state.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    user: UserBuf,
    #[cfg(target_os = "linux")]
    kernel: KernelBuf,
    /// Set when no kernel pipe could be had (out of descriptors): copy through user space.
    pub(crate) no_splice: bool,
    /// The source has reached end of file.
    pub(crate) eof: bool,
    /// The end of file has been passed on to the destination.
    pub(crate) shut: bool,
    /// Bytes delivered to the destination so far.
    pub(crate) bytes: u64,
}

impl Pipe {
    /// Bytes read but not yet written.
    pub(crate) fn pending(&self) -> usize {
        #[cfg(target_os = "linux")]
        let k = self.kernel.held;
        #[cfg(not(target_os = "linux"))]
        let k = 0;
        self.user.end - self.user.start + k
    }

    /// Whether this direction is finished: EOF seen, everything written, half-close passed on.
    pub(crate) fn done(&self) -> bool {
        self.shut && self.pending() == 0
    }

    /// Moves bytes until the source or the destination would block, the read budget is spent,
    /// or the EOF has been passed on, copying through a pooled buffer. `ready` is the cached
    /// readiness of (source, destination), cleared when they would block; `other_done` says
    /// the opposite direction has finished. Returns the bytes written by this call.
    ///
    /// # Errors
    /// The first I/O error other than `WouldBlock`/`Interrupted` (the caller closes both sides).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pump<S: Read, D: Write + HalfClose>(
        &mut self,
        mut src: S,
        mut dst: D,
        ready: (&mut Readiness, &mut Readiness),
        other_done: bool,
        pool: &mut BufPool,
        budget: &mut u32,
        on_read: OnRead<'_>,
    ) -> io::Result<u64> {
        let mut user = std::mem::take(&mut self.user);
        let (d, p) = (other_done, pool);
        let r = self.run(&mut user, &mut src, &mut dst, ready, d, p, budget, on_read);
        self.user = user;
        r
    }

    /// [`Pipe::pump`] through another carrier (e.g. the HTTP header rewriter, which holds its
    /// own buffers): same contract, `on_read` sees each chunk as the carrier shows it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pump_with<S, D: HalfClose, C: Carrier<S, D>>(
        &mut self,
        carrier: &mut C,
        mut src: S,
        mut dst: D,
        ready: (&mut Readiness, &mut Readiness),
        other_done: bool,
        pool: &mut BufPool,
        budget: &mut u32,
        on_read: OnRead<'_>,
    ) -> io::Result<u64> {
        let d = other_done;
        self.run(carrier, &mut src, &mut dst, ready, d, pool, budget, on_read)
    }

    /// Zero-copy variant of [`Pipe::pump`] for two TCP sockets (Linux `splice`): the same
    /// contract, with a kernel pipe checked out of the pool while bytes are in flight. If no
    /// pipe can be had, `no_splice` is set and nothing moves: the caller copies instead.
    ///
    /// # Errors
    /// As for [`Pipe::pump`].
    #[cfg(target_os = "linux")]
    pub(crate) fn pump_splice(
        &mut self,
        mut src: &crate::engine::net::Stream,
        mut dst: &crate::engine::net::Stream,
        ready: (&mut Readiness, &mut Readiness),
        other_done: bool,
        pool: &mut BufPool,
        budget: &mut u32,
    ) -> io::Result<u64> {
        let mut kernel = std::mem::take(&mut self.kernel);
        if kernel.pipe.is_none() && ready.0.read && !self.eof {
            match pool.get_pipe() {
                Ok(p) => kernel.pipe = Some(p),
                Err(_) => {
                    self.no_splice = true;
                    return Ok(0);
                }
            }
        }
        let (d, p) = (other_done, pool);
        let r = self.run(&mut kernel, &mut src, &mut dst, ready, d, p, budget, None);
        self.kernel = kernel;
        r
    }

    /// The relay loop, once for both carriers: write what is held; pass an EOF on; read more.
    #[allow(clippy::too_many_arguments)]
    fn run<S, D: HalfClose, C: Carrier<S, D>>(
        &mut self,
        carrier: &mut C,
        src: &mut S,
        dst: &mut D,
        (src_ready, dst_ready): (&mut Readiness, &mut Readiness),
        other_done: bool,
        pool: &mut BufPool,
        budget: &mut u32,
        mut on_read: OnRead<'_>,
    ) -> io::Result<u64> {
        let mut moved = 0u64;
        let result = loop {
            if carrier.held() > 0 {
                if !dst_ready.write {
                    break Ok(());
                }
                match carrier.drain(dst) {
                    Ok((0, _)) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                    Ok((n, offered)) => {
                        dst_ready.after_write(n, offered);
                        moved += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        dst_ready.write = false;
                        break Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
                continue;
            }
            if self.eof {
                break self.pass_eof(dst, other_done);
            }
            if !src_ready.read || *budget == 0 {
                break Ok(());
            }
            *budget -= 1;
            match carrier.fill(src, pool) {
                Ok((0, _)) => self.eof = true,
                Ok((n, asked)) => {
                    src_ready.after_read(n, asked);
                    if let Some(f) = on_read.as_mut() {
                        f(carrier.visible());
                    }
                    // Everything before the FIN was queued when it came: this short read took
                    // the last of it, and the read that would return 0 is saved.
                    if n < asked && src_ready.fin && carrier.short_fill_at_fin_is_eof() {
                        self.eof = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    src_ready.read = false;
                    break Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        carrier.release_if_empty(pool);
        self.bytes += moved;
        result.map(|()| moved)
    }

    /// Passes the EOF on: `shutdown(SHUT_WR)` on the destination, unless the other direction is
    /// already finished (`other_done`), in which case the connection closes next and the close
    /// sends the FIN: one system call saved per connection.
    fn pass_eof<D: HalfClose>(&mut self, dst: &mut D, other_done: bool) -> io::Result<()> {
        if self.shut {
            return Ok(());
        }
        self.shut = true;
        if other_done {
            return Ok(());
        }
        match dst.shutdown_write() {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether [`Pipe::take_state`] can take this direction now (no bytes in a kernel pipe).
    pub(crate) fn movable(&self) -> bool {
        let user_fits = self.user.end - self.user.start <= BUF_SIZE;
        #[cfg(target_os = "linux")]
        return user_fits && self.kernel.held == 0;
        #[cfg(not(target_os = "linux"))]
        return user_fits;
    }

    /// A binary upgrade moves this direction to the new process: the bytes held (read, not
    /// yet written), the half-close state and the byte count, the buffer going back to the
    /// pool. `None` (and nothing taken) while a kernel pipe holds bytes (`splice`): they cannot
    /// be read back, so such a connection stays and drains; likewise while more than
    /// [`BUF_SIZE`] bytes are held (a grown buffer), the most an upgrade's record carries.
    pub(crate) fn take_state(&mut self, pool: &mut BufPool) -> Option<PipeState> {
        #[cfg(target_os = "linux")]
        if self.kernel.held > 0 {
            return None;
        }
        if self.user.end - self.user.start > BUF_SIZE {
            return None;
        }
        let pending = (self.user.buf.as_ref())
            .and_then(|b| b.get(self.user.start..self.user.end))
            .unwrap_or_default()
            .to_vec();
        self.release(pool);
        Some(PipeState {
            pending,
            eof: self.eof,
            shut: self.shut,
            bytes: self.bytes,
        })
    }

    /// This direction as the old process left it ([`Pipe::take_state`]); the held bytes go
    /// into a pooled buffer. `None` if they are more than one buffer holds.
    pub(crate) fn restore(state: PipeState, pool: &mut BufPool) -> Option<Pipe> {
        let mut pipe = Pipe {
            eof: state.eof,
            shut: state.shut,
            bytes: state.bytes,
            ..Pipe::default()
        };
        let n = state.pending.len();
        if n > BUF_SIZE {
            return None;
        }
        if n > 0 {
            let mut buf = pool.get();
            if let Some(dst) = buf.get_mut(..n) {
                dst.copy_from_slice(&state.pending);
            }
            pipe.user = UserBuf {
                buf: Some(buf),
                start: 0,
                end: n,
                class: SizeClass::default(),
            };
        }
        Some(pipe)
    }

    /// Returns buffers and pipes to the pool when the connection closes. A kernel pipe still
    /// holding bytes is closed rather than reused: its contents belong to nobody now.
    pub(crate) fn release(&mut self, pool: &mut BufPool) {
        if let Some(b) = self.user.buf.take() {
            pool.put(b);
        }
        self.user = UserBuf::default();
        #[cfg(target_os = "linux")]
        {
            if let Some(p) = self.kernel.pipe.take() {
                if self.kernel.held == 0 {
                    pool.put_pipe(p);
                } else {
                    pool.out = pool.out.saturating_sub(1);
                }
            }
            self.kernel.held = 0;
        }
    }
}

/// Test doubles for the relay's `Read`/`Write` sides: short reads and writes, `WouldBlock`.
#[cfg(test)]
pub(crate) mod mock;

#[cfg(test)]
mod tests;
