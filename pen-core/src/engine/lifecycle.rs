//! One relayed connection's phase and named timers as plain data, with `now` passed in: when
//! its TLS handshake, its connect or a connect retry times out, when it has taken too long to
//! send its first bytes or request head, and when it has been idle too long. The worker keeps one per connection and acts on what it says; the sockets are the
//! worker's business, so this is unit-tested with plain numbers.

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The TLS handshake with the client is in progress; no server is chosen yet.
    Handshake,
    /// `connect_on_data`: waiting for the client's first bytes; no server is chosen yet.
    Waiting,
    /// Connecting to a server (or waiting to retry for want of descriptors).
    Connecting,
    /// Relaying bytes.
    Established,
}

/// A connection's named timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The TLS handshake must be done by then.
    Handshake,
    /// The connect to the current server must have succeeded by then (`-t`).
    Connect,
    /// Out of descriptors a moment ago: try the connect again then.
    Retry,
    /// The client's first bytes (`connect_on_data`) or, under `-H`, its request head must
    /// have arrived by then (`request_timeout`).
    Request,
}

/// What a timer that fired means now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The handshake took too long: close the client.
    HandshakeTimedOut,
    /// The server did not answer the connect in time: blacklist it and fail over.
    ConnectTimedOut,
    /// Try the connect again (descriptors may have freed).
    RetryConnect,
    /// The request deadline passed: see [`Lifecycle::request_check`].
    RequestDue,
}

/// Where the client's request stands when the request deadline passes (HTTP mode's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// Requests are not framed on this connection (not HTTP mode, or framing stopped: a
    /// tunnel, pass-through).
    NotFramed,
    /// `heads` request heads done so far; `pending`: one is incomplete (the first one until
    /// it is done, or a later one's bytes held back).
    Framed { heads: u64, pending: bool },
}

/// What to do when the request deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestCheck {
    /// Too slow: close the client.
    Close,
    /// Fine so far: arm the deadline again (with [`Lifecycle::request_armed`]).
    Rearm,
    /// Nothing left to watch on this connection.
    Done,
}

/// A connection's phase, its armed timers (0: not armed) and when it last moved bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifecycle {
    phase: Phase,
    handshake_at: u64,
    connect_at: u64,
    retry_at: u64,
    /// Since when the connect could not even start for want of descriptors (0: it could).
    starved_since: u64,
    /// The request deadline (0: not armed) and the request heads done when it was armed.
    request_at: u64,
    heads_at_arm: u64,
    last_active: u64,
}

impl Lifecycle {
    /// A connection about to connect to its first server.
    pub(crate) fn connecting(now: u64) -> Self {
        Lifecycle {
            phase: Phase::Connecting,
            handshake_at: 0,
            connect_at: 0,
            retry_at: 0,
            starved_since: 0,
            request_at: 0,
            heads_at_arm: 0,
            last_active: now,
        }
    }

    /// `connect_on_data`: a client whose first bytes are awaited before a server is chosen.
    pub(crate) fn waiting(now: u64) -> Self {
        let mut l = Lifecycle::connecting(now);
        l.phase = Phase::Waiting;
        l
    }

    /// Arms [`Timer::Request`] `secs` (at least 1) from now, with `heads` request heads done
    /// so far; returns the deadline.
    pub(crate) fn request_armed(&mut self, now: u64, secs: u64, heads: u64) -> u64 {
        self.request_at = now.saturating_add(secs.max(1).saturating_mul(1000));
        self.heads_at_arm = heads;
        self.request_at
    }

    /// The request deadline passed: a client still waited for (`connect_on_data`) is closed;
    /// one whose request head has been incomplete for the whole period (no head finished since
    /// the deadline was armed) is closed; otherwise the deadline is armed again while requests
    /// are framed. So the first head must be done within one period of connecting, a later one
    /// within at most two of its first byte.
    pub(crate) fn request_check(&self, head: Head) -> RequestCheck {
        match (self.phase, head) {
            (Phase::Waiting, _) => RequestCheck::Close,
            // Nothing is read from the client before its server is up: the connect (or the
            // handshake) timeout governs.
            (Phase::Handshake | Phase::Connecting, _) => RequestCheck::Rearm,
            (Phase::Established, Head::NotFramed) => RequestCheck::Done,
            (Phase::Established, Head::Framed { heads, pending }) => {
                if pending && heads == self.heads_at_arm {
                    RequestCheck::Close
                } else {
                    RequestCheck::Rearm
                }
            }
        }
    }

    /// `connect_on_data`: the client's first bytes came; its server is chosen and connected
    /// to next.
    pub(crate) fn data_arrived(&mut self, now: u64) {
        self.phase = Phase::Connecting;
        self.last_active = now;
    }

    /// A TLS client whose handshake must finish within `limit_secs` (`handshake_timeout`, at
    /// least 1); returns the deadline to arm as [`Timer::Handshake`].
    pub(crate) fn handshaking(now: u64, limit_secs: u64) -> (Self, u64) {
        let mut l = Lifecycle::connecting(now);
        l.phase = Phase::Handshake;
        l.handshake_at = now.saturating_add(limit_secs.max(1).saturating_mul(1000));
        (l, l.handshake_at)
    }

    /// The phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The handshake is done: the server is chosen and connected to next.
    pub(crate) fn handshake_done(&mut self, now: u64) {
        self.phase = Phase::Connecting;
        self.handshake_at = 0;
        self.last_active = now;
    }

    /// A connect to a server started (first or after a failover): arms [`Timer::Connect`]
    /// for `timeout_secs` (at least 1) and returns its deadline.
    pub(crate) fn connect_started(&mut self, now: u64, timeout_secs: u64) -> u64 {
        self.phase = Phase::Connecting;
        self.connect_at = now.saturating_add(timeout_secs.max(1).saturating_mul(1000));
        self.retry_at = 0;
        self.starved_since = 0;
        self.connect_at
    }

    /// The connect could not start for want of descriptors (our shortage, not the server's):
    /// returns when to retry ([`Timer::Retry`], `retry_ms` from now), or `None` once it has
    /// waited a whole connect timeout, when the client is to be dropped.
    pub(crate) fn starved(&mut self, now: u64, timeout_secs: u64, retry_ms: u64) -> Option<u64> {
        let since = if self.starved_since == 0 {
            now
        } else {
            self.starved_since
        };
        if now.saturating_sub(since) >= timeout_secs.max(1).saturating_mul(1000) {
            return None;
        }
        self.starved_since = since;
        self.retry_at = now.saturating_add(retry_ms);
        Some(self.retry_at)
    }

    /// The server accepted: relaying starts, no timer is armed.
    pub(crate) fn connected(&mut self, now: u64) {
        self.phase = Phase::Established;
        self.connect_at = 0;
        self.retry_at = 0;
        self.starved_since = 0;
        self.last_active = now;
    }

    /// Bytes moved.
    pub(crate) fn active(&mut self, now: u64) {
        self.last_active = now;
    }

    /// `timer`, armed for `at`, fired: what it means now, or `None` when it no longer applies
    /// (re-armed since, or the phase moved on).
    pub(crate) fn expire(&mut self, timer: Timer, at: u64) -> Option<Expiry> {
        match timer {
            Timer::Handshake if self.phase == Phase::Handshake && self.handshake_at == at => {
                self.handshake_at = 0;
                Some(Expiry::HandshakeTimedOut)
            }
            Timer::Connect if self.phase == Phase::Connecting && self.connect_at == at => {
                self.connect_at = 0;
                Some(Expiry::ConnectTimedOut)
            }
            Timer::Retry if self.phase == Phase::Connecting && self.retry_at == at => {
                self.retry_at = 0;
                Some(Expiry::RetryConnect)
            }
            Timer::Request if self.request_at == at => {
                self.request_at = 0;
                Some(Expiry::RequestDue)
            }
            _ => None,
        }
    }

    /// Whether the connection has been idle `idle_secs` (0: never) at `now`. A connection
    /// waiting for its server is not idle: the connect timeout governs it.
    pub(crate) fn idle(&self, now: u64, idle_secs: u64) -> bool {
        idle_secs > 0
            && self.phase != Phase::Connecting
            && now.saturating_sub(self.last_active) >= idle_secs.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_fires_at_its_deadline_only() {
        let mut l = Lifecycle::connecting(1_000);
        let at = l.connect_started(1_000, 3);
        assert_eq!(at, 4_000);
        assert_eq!(l.expire(Timer::Connect, at), Some(Expiry::ConnectTimedOut));
        // Fired once: a second report of the same timer means nothing.
        assert_eq!(l.expire(Timer::Connect, at), None);
    }

    #[test]
    fn a_failover_rearms_and_the_old_deadline_is_stale() {
        let mut l = Lifecycle::connecting(0);
        let first = l.connect_started(0, 3);
        let second = l.connect_started(3_000, 3);
        assert_eq!(second, 6_000);
        assert_eq!(l.expire(Timer::Connect, first), None);
        assert_eq!(
            l.expire(Timer::Connect, second),
            Some(Expiry::ConnectTimedOut)
        );
    }

    #[test]
    fn connected_disarms_and_idle_counts_from_the_last_bytes() {
        let mut l = Lifecycle::connecting(0);
        let at = l.connect_started(0, 3);
        l.connected(500);
        assert_eq!(l.phase(), Phase::Established);
        assert_eq!(l.expire(Timer::Connect, at), None);
        assert!(!l.idle(10_000, 0), "idle_timeout 0 never closes");
        assert!(!l.idle(10_499, 10));
        assert!(l.idle(10_500, 10));
        l.active(10_000);
        assert!(!l.idle(19_999, 10));
        assert!(l.idle(20_000, 10));
    }

    #[test]
    fn a_connecting_connection_never_idles_out() {
        let mut l = Lifecycle::connecting(0);
        l.connect_started(0, 3);
        assert!(!l.idle(1_000_000, 1));
    }

    #[test]
    fn starved_connects_retry_until_a_connect_timeout_has_passed() {
        // Clock readings are never 0 (0 means "unset").
        let mut l = Lifecycle::connecting(1_000);
        assert_eq!(l.starved(1_000, 2, 100), Some(1_100));
        assert_eq!(l.expire(Timer::Retry, 1_100), Some(Expiry::RetryConnect));
        assert_eq!(l.starved(1_100, 2, 100), Some(1_200));
        assert_eq!(l.starved(2_999, 2, 100), Some(3_099));
        assert_eq!(l.starved(3_000, 2, 100), None, "gave up after -t");
        // A connect that starts clears the starvation.
        let mut l = Lifecycle::connecting(1_000);
        l.starved(1_000, 2, 100);
        l.connect_started(1_050, 2);
        assert_eq!(l.expire(Timer::Retry, 1_100), None);
        assert_eq!(l.starved(5_000, 2, 100), Some(5_100));
    }

    #[test]
    fn handshake_times_out_unless_done() {
        let (mut l, at) = Lifecycle::handshaking(0, 10);
        assert_eq!(l.phase(), Phase::Handshake);
        assert!(
            l.idle(10_000, 5),
            "a stalled handshake idles out like C pen's connection"
        );
        assert_eq!(
            l.expire(Timer::Handshake, at),
            Some(Expiry::HandshakeTimedOut)
        );
        let (mut l, at) = Lifecycle::handshaking(0, 10);
        l.handshake_done(3_000);
        assert_eq!(l.phase(), Phase::Connecting);
        assert_eq!(l.expire(Timer::Handshake, at), None);
    }

    #[test]
    fn a_waiting_client_is_closed_at_the_request_deadline() {
        let mut l = Lifecycle::waiting(1_000);
        assert_eq!(l.phase(), Phase::Waiting);
        let at = l.request_armed(1_000, 10, 0);
        assert_eq!(at, 11_000);
        assert_eq!(l.expire(Timer::Request, at), Some(Expiry::RequestDue));
        assert_eq!(l.request_check(Head::NotFramed), RequestCheck::Close);
        // Data came in time: connecting, the deadline is stale.
        let mut l = Lifecycle::waiting(1_000);
        let at = l.request_armed(1_000, 10, 0);
        l.data_arrived(2_000);
        assert_eq!(l.phase(), Phase::Connecting);
        assert_eq!(l.request_check(Head::NotFramed), RequestCheck::Rearm);
        l.request_armed(2_000, 10, 0);
        assert_eq!(l.expire(Timer::Request, at), None, "re-armed since");
    }

    #[test]
    fn an_unfinished_request_head_is_closed_a_finished_one_rearms() {
        let mut l = Lifecycle::connecting(0);
        l.request_armed(0, 1, 0);
        l.connected(10);
        let first = Head::Framed {
            heads: 0,
            pending: true,
        };
        assert_eq!(l.request_check(first), RequestCheck::Close, "no first head");
        let done = Head::Framed {
            heads: 1,
            pending: false,
        };
        assert_eq!(l.request_check(done), RequestCheck::Rearm);
        // Armed again after one head: a second one started and finished in the period is fine,
        // one held back the whole period is not.
        l.request_armed(1_000, 1, 1);
        let later = Head::Framed {
            heads: 2,
            pending: true,
        };
        assert_eq!(l.request_check(later), RequestCheck::Rearm);
        let stuck = Head::Framed {
            heads: 1,
            pending: true,
        };
        assert_eq!(l.request_check(stuck), RequestCheck::Close);
        assert_eq!(l.request_check(Head::NotFramed), RequestCheck::Done);
    }

    #[test]
    fn deadlines_saturate() {
        let mut l = Lifecycle::connecting(u64::MAX - 5);
        assert_eq!(l.connect_started(u64::MAX - 5, u64::MAX), u64::MAX);
        let (_, at) = Lifecycle::handshaking(u64::MAX, 10);
        assert_eq!(at, u64::MAX);
        let mut l = Lifecycle::waiting(5);
        assert_eq!(l.request_armed(u64::MAX - 1, u64::MAX, 0), u64::MAX);
        assert_eq!(l.starved(5, u64::MAX, u64::MAX), Some(u64::MAX));
        assert!(!l.idle(u64::MAX, u64::MAX));
    }
}
