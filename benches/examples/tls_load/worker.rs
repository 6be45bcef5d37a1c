//! One load thread ([`run`]): its connection slots on one poll(2) loop until the end of the
//! run, a new connection as soon as one ends, and what it counts ([`Tally`]).

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use crate::cli::Args;
use crate::conn::{Conn, End};

/// A connection that makes no progress for this long fails.
const STALL: Duration = Duration::from_secs(10);
/// A connection in flight at the end of the run without progress for this long is an error.
const STUCK_AT_END: Duration = Duration::from_secs(1);
/// After an error a slot waits this long before it connects again (no spinning on a refusal).
const BACKOFF: Duration = Duration::from_millis(10);
/// Errors printed on stderr, at most.
const SHOWN_ERRORS: u64 = 5;

/// What one thread counted.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) completed: u64,
    pub(crate) resumed: u64,
    /// Full handshakes that needed a HelloRetryRequest (the server wanted another key share).
    pub(crate) retried: u64,
    pub(crate) errors: u64,
    pub(crate) unclean: u64,
    pub(crate) busy: Duration,
    /// Protocol, suite and group of the last completed connection.
    pub(crate) negotiated: Option<String>,
}

/// "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519" for a finished handshake.
fn negotiated(tls: &ClientConnection) -> String {
    let show = |s: Option<String>| s.unwrap_or_else(|| "-".into());
    format!(
        "protocol={} suite={} group={}",
        show(tls.protocol_version().map(|v| format!("{v:?}"))),
        show(
            tls.negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
        ),
        show(
            tls.negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
        ),
    )
}

/// One thread: `args.conns` connection slots until `end`.
pub(crate) fn run(
    args: &Args,
    config: Arc<ClientConfig>,
    end: Instant,
    shown: &Mutex<u64>,
) -> Tally {
    let mut tally = Tally::default();
    let name = match ServerName::try_from(args.sni.clone()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tls_load: --sni: {e}");
            tally.errors += 1;
            return tally;
        }
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.path, args.sni
    );
    let mut slots: Vec<Option<Conn>> = (0..args.conns).map(|_| None).collect();
    let mut retry_at = vec![Instant::now(); args.conns];
    let mut scratch = vec![0u8; 64 * 1024];
    let report = |tally: &mut Tally, what: String| {
        tally.errors += 1;
        if let Ok(mut n) = shown.lock() {
            *n += 1;
            if *n <= SHOWN_ERRORS {
                eprintln!("tls_load: {what}");
            }
        }
    };
    // Fills an empty slot whose back-off has passed.
    let open = |slot: &mut Option<Conn>, retry_at: &mut Instant, tally: &mut Tally| {
        let now = Instant::now();
        if slot.is_none() && now >= *retry_at && now < end {
            match Conn::start(args.addr, &config, &name, request.as_bytes()) {
                Ok(c) => *slot = Some(c),
                Err(e) => {
                    report(tally, e);
                    *retry_at = now + BACKOFF;
                }
            }
        }
    };
    let mut polled: Vec<usize> = Vec::with_capacity(args.conns);
    loop {
        let now = Instant::now();
        if now >= end {
            // Connections still in flight are not counted, unless stuck: then they are errors
            // (a server that accepts connections but never answers must not look idle).
            for c in slots.iter().flatten() {
                if now.duration_since(c.last_progress) > STUCK_AT_END {
                    report(&mut tally, "connection stuck at the end of the run".into());
                }
            }
            break;
        }
        for (slot, retry) in slots.iter_mut().zip(&mut retry_at) {
            open(slot, retry, &mut tally);
        }
        polled.clear();
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(args.conns);
        for (i, slot) in slots.iter().enumerate() {
            if let Some(c) = slot {
                polled.push(i);
                fds.push(PollFd::new(&c.sock, c.interest()));
            }
        }
        // Short waits while a slot is backing off, so that it reconnects on time.
        let cap = Duration::from_millis(if fds.len() < args.conns { 5 } else { 100 });
        let wait = end.saturating_duration_since(now).min(cap);
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        });
        if let Err(e) = poll(&mut fds, Some(&timeout)) {
            if e != rustix::io::Errno::INTR {
                report(&mut tally, format!("poll: {e}"));
                thread::sleep(BACKOFF);
            }
            continue;
        }
        let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        let now = Instant::now();
        for (&i, ev) in polled.iter().zip(revents) {
            let Some(conn) = slots[i].as_mut() else {
                continue;
            };
            let outcome = match conn.drive(ev, &mut scratch) {
                None if now.duration_since(conn.last_progress) > STALL => Some(End::Failed(
                    format!("no progress for {} s", STALL.as_secs()),
                )),
                other => other,
            };
            let Some(outcome) = outcome else { continue };
            let done = Instant::now();
            match outcome {
                End::Complete { clean } if done <= end => {
                    tally.completed += 1;
                    tally.unclean += u64::from(!clean);
                    tally.busy += done.duration_since(conn.started);
                    match conn.tls.handshake_kind() {
                        Some(HandshakeKind::Resumed) => tally.resumed += 1,
                        Some(HandshakeKind::FullWithHelloRetryRequest) => tally.retried += 1,
                        _ => {}
                    }
                    tally.negotiated = Some(negotiated(&conn.tls));
                    // Say goodbye properly (best effort), as curl and browsers do.
                    conn.tls.send_close_notify();
                    let _ = conn.tls.write_tls(&mut conn.sock);
                }
                End::Complete { .. } => {}
                End::Failed(e) => {
                    report(&mut tally, e);
                    retry_at[i] = done + BACKOFF;
                }
            }
            // The next connection starts at once, so with --resume it finds the tickets the
            // one that just ended received (the store keeps only a few per server).
            slots[i] = None;
            open(&mut slots[i], &mut retry_at[i], &mut tally);
        }
    }
    tally
}
