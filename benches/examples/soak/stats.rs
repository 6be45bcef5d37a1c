//! What the clients count: per TCP traffic kind ([`Kind`]) connections, exchanges, bytes,
//! connections broken by a server stop, errors by [`ErrKind`] and corruption; the UDP
//! counters; the notes kept for the report.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Short,
    KeepAlive,
    Long,
    Bulk,
    Half,
    Idle,
}

pub(crate) const KINDS: [Kind; 6] = [
    Kind::Short,
    Kind::KeepAlive,
    Kind::Long,
    Kind::Bulk,
    Kind::Half,
    Kind::Idle,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Short => "short",
            Kind::KeepAlive => "keepalive",
            Kind::Long => "long",
            Kind::Bulk => "bulk",
            Kind::Half => "half-close",
            Kind::Idle => "idle",
        }
    }
}

/// What went wrong on a connection (other than corruption).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ErrKind {
    Connect = 0,
    Eof,
    Reset,
    Timeout,
    Other,
    IdleNotClosed,
    ClosedEarly,
}

pub(crate) const ERR_NAMES: [&str; 7] = [
    "connect to pen failed",
    "EOF before the reply was complete",
    "reset / broken pipe",
    "timeout (30 s without progress)",
    "other I/O error",
    "idle connection not closed by idle_timeout within 70 s",
    "idle connection closed before idle_timeout",
];

#[derive(Default)]
pub(crate) struct KindStats {
    pub(crate) conns: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) errs: [AtomicU64; 7],
    pub(crate) corrupt: AtomicU64,
}

#[derive(Default)]
pub(crate) struct UdpStats {
    pub(crate) sockets: AtomicU64,
    pub(crate) queries: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) lost_stop: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) late: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) other: AtomicU64,
}

/// Everything the clients count, and the notes for the report.
pub(crate) struct Stats {
    pub(crate) kinds: [KindStats; 6],
    pub(crate) udp: UdpStats,
    pub(crate) idle_closed: AtomicU64,
    pub(crate) idle_min_ms: AtomicU64,
    pub(crate) idle_max_ms: AtomicU64,
    pub(crate) server_bad_header: AtomicU64,
    pub(crate) notes: Mutex<Vec<String>>,
    pub(crate) notes_dropped: AtomicU64,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            kinds: Default::default(),
            udp: UdpStats::default(),
            idle_closed: AtomicU64::new(0),
            idle_min_ms: AtomicU64::new(u64::MAX),
            idle_max_ms: AtomicU64::new(0),
            server_bad_header: AtomicU64::new(0),
            notes: Mutex::new(Vec::new()),
            notes_dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn sum(&self, f: impl Fn(&KindStats) -> u64) -> u64 {
        self.kinds.iter().map(f).sum()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.sum(|k| k.requests.load(Relaxed))
    }

    pub(crate) fn unexplained(&self) -> u64 {
        self.sum(|k| k.errs.iter().map(|e| e.load(Relaxed)).sum())
    }

    pub(crate) fn corruption(&self) -> u64 {
        self.sum(|k| k.corrupt.load(Relaxed))
            + self.udp.corrupt.load(Relaxed)
            + self.server_bad_header.load(Relaxed)
    }
}
