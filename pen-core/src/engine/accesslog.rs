//! The access log (`-l`, `log FILE`, `no log`; PEN-SPEC 6): one line per chunk read from a
//! client, `CLIENT_IP UNIX_TIME SERVER_IP FIRST_LINE`, non-printable bytes as `.`.
//!
//! No system call per request: each worker formats lines into its own buffer and appends the
//! batch with one `write` (the file is opened `O_APPEND`, so batches from several workers never
//! interleave within a line) when it holds 64 KiB or its oldest line is half a second old. No
//! thread of its own, so nothing is lost or duplicated when a daemon forks. `host:port` sends each
//! request as a UDP datagram to a log collector in penlogd's format, `+ CLIENT SERVER FIRST_LINE`,
//! as C pen does. Reopening (SIGHUP) swaps the target; each worker notices at its next turn and
//! first writes the lines it still holds to the target they were recorded for, so after
//! `mv log log.1; kill -HUP` the requests served before the signal are in `log.1` and the later
//! ones in the new `log`, none lost.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::domain::clock::Clock;
use crate::error::ApplyError;

/// A worker flushes its lines at least this often.
pub(crate) const FLUSH_MS: u64 = 500;
/// ... or when this many bytes are waiting.
const FLUSH_BYTES: usize = 64 * 1024;
/// The logged first line is cut at this length.
pub(crate) const MAX_LINE: usize = 512;

/// Where lines go.
#[derive(Debug)]
pub(crate) enum Target {
    /// An append-only file.
    File(File),
    /// A log collector: one datagram per line.
    Udp(UdpSocket),
}

impl Target {
    /// Opens `spec`: `host:port` (a collector) or a file path, created if missing.
    pub(crate) fn open(spec: &str) -> Result<Target, ApplyError> {
        if !spec.contains('/') {
            if let Ok(addr) = spec.parse::<SocketAddr>() {
                let bind: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let io = |source| ApplyError::Io {
                    context: format!("log collector '{spec}'"),
                    source,
                };
                let s = UdpSocket::bind(bind).map_err(io)?;
                s.connect(addr).map_err(io)?;
                s.set_nonblocking(true).map_err(io)?;
                return Ok(Target::Udp(s));
            }
        }
        // Never through a link, a regular file only, mode 0640: pen may open it as root.
        crate::files::open_append(std::path::Path::new(spec))
            .map(Target::File)
            .map_err(|source| ApplyError::Io {
                context: format!("cannot open log file '{spec}'"),
                source,
            })
    }

    fn write_batch(&self, batch: &[u8]) -> io::Result<()> {
        match self {
            Target::File(f) => (&*f).write_all(batch),
            Target::Udp(s) => {
                for line in batch.split_inclusive(|&b| b == b'\n') {
                    // A collector that is down must not stall the relay: drop what does not go.
                    let _ = s.send(line);
                }
                Ok(())
            }
        }
    }
}

/// The current log target shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct AccessLog {
    target: RwLock<Option<Arc<Target>>>,
    on: AtomicBool,
    /// Bumped each time the target is replaced, so workers notice with one relaxed load.
    generation: AtomicU64,
}

impl AccessLog {
    /// Whether lines should be recorded (one relaxed load per relay turn).
    pub(crate) fn enabled(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Installs `target` (or none).
    pub(crate) fn set(&self, target: Option<Target>) {
        let mut current = self.target.write();
        self.on.store(target.is_some(), Relaxed);
        *current = target.map(Arc::new);
        self.generation.fetch_add(1, Relaxed);
    }

    fn current(&self) -> Option<Arc<Target>> {
        self.target.read().clone()
    }

    /// Reopens the log named `spec` (the `log` setting; SIGHUP), or stops logging when `None`.
    /// On failure the old target stays.
    pub(crate) fn reopen(&self, spec: Option<&str>) -> Result<(), ApplyError> {
        match spec {
            Some(s) => self.set(Some(Target::open(s)?)),
            None => self.set(None),
        }
        Ok(())
    }
}

/// One worker's pending lines, and the target they are for.
#[derive(Debug, Default)]
pub(crate) struct LogBuf {
    buf: Vec<u8>,
    /// When the oldest pending line was recorded (ms), 0 if none.
    since: u64,
    /// The target the pending lines go to (the log's when this worker last looked).
    target: Option<Arc<Target>>,
    /// The log's generation `target` was taken at.
    generation: u64,
}

impl LogBuf {
    /// Records one chunk read from `client` on its way to `server`, stamped with `clock`'s
    /// wall time.
    pub(crate) fn record(
        &mut self,
        client: IpAddr,
        server: Option<SocketAddr>,
        chunk: &[u8],
        clock: &dyn Clock,
    ) {
        use std::io::Write as _;
        if chunk.is_empty() {
            return; // e.g. HTTP mode holding a partial request head: nothing to log yet
        }
        let server = server.map_or(IpAddr::from([0, 0, 0, 0]), |s| s.ip());
        if matches!(self.target.as_deref(), Some(Target::Udp(_))) {
            // penlogd's datagram format, as C pen sends it.
            let _ = write!(self.buf, "+ {client} {server} ");
        } else {
            let unix = clock.wall_secs();
            let _ = write!(self.buf, "{client} {unix} {server} ");
        }
        let first = chunk
            .split(|&b| b == b'\n' || b == b'\r')
            .next()
            .unwrap_or(&[]);
        self.buf.extend(first.iter().take(MAX_LINE).map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'.'
            }
        }));
        self.buf.push(b'\n');
        if self.since == 0 {
            self.since = clock.now_ms();
        }
    }

    /// The lines recorded and not yet flushed (for the fuzzing harness).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// When the pending lines must be flushed (ms), if there are any.
    pub(crate) fn deadline(&self) -> Option<u64> {
        (self.since != 0).then_some(self.since.saturating_add(FLUSH_MS))
    }

    /// Whether a flush is due now.
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        self.buf.len() >= FLUSH_BYTES || self.deadline().is_some_and(|d| now_ms >= d)
    }

    /// Follows a reopened or changed log: the pending lines are first written to the target
    /// they were recorded for (the file as it was before a SIGHUP), then later lines go to
    /// `log`'s current target. One relaxed load when nothing changed; called by each worker
    /// once per turn, before it records anything.
    pub(crate) fn sync(&mut self, log: &AccessLog) {
        let generation = log.generation.load(Relaxed);
        if generation == self.generation {
            return;
        }
        self.write_out();
        self.target = log.current();
        self.generation = generation;
    }

    /// Appends the pending lines to the log with one write (to the target they were recorded
    /// for), then follows `log` if it changed.
    pub(crate) fn flush(&mut self, log: &AccessLog) {
        self.write_out();
        self.sync(log);
    }

    /// Writes the pending lines to their target with one write.
    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(t) = &self.target {
            if let Err(e) = t.write_batch(&self.buf) {
                log::warn!("access log: {e}");
            }
        }
        self.buf.clear();
        self.since = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_one_line_per_chunk_with_dots_for_control_bytes() {
        let mut b = LogBuf::default();
        let clock = crate::domain::clock::ManualClock::new(5, 1_800_000_000);
        let client = IpAddr::from([127, 0, 0, 2]);
        let server = Some(SocketAddr::from(([10, 0, 0, 1], 80)));
        b.record(
            client,
            server,
            b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
            &clock,
        );
        let line = String::from_utf8(b.buf.clone()).unwrap();
        let (ip, rest) = line.split_once(' ').unwrap();
        assert_eq!(ip, "127.0.0.2");
        let (time, rest) = rest.split_once(' ').unwrap();
        assert_eq!(time, "1800000000");
        assert_eq!(rest, "10.0.0.1 GET /a.b HTTP/1.1\n");
        assert_eq!(b.deadline(), Some(5 + FLUSH_MS));
        assert!(!b.due(6));
        assert!(b.due(5 + FLUSH_MS));
    }
}
