//! Small servers that answer one request per connection: the control socket and the metrics
//! HTTP listener. Each runs on its own thread with its own poller, non-blocking, so a slow or
//! idle client never stalls the relay; at most [`MAX_CLIENTS`] at once, each with
//! [`CLIENT_TIMEOUT_MS`] to send its request and read the reply; clients are checked against
//! the protocol's ACL list (`control_acl`, `metrics_acl`). What a request is and how it is
//! answered is the [`Protocol`]'s business.
//!
//! When the table is full, a new client takes the place of the oldest one that has not sent a
//! byte yet: idle connections cannot hold the others off (64 of them used to delay penctl by
//! the whole timeout). A deadline alone would not do: whoever holds the places can renew them
//! as fast as they time out. A real client sends its request as it connects, so it is served
//! at once; only a table full of clients that are all mid-request makes a new one wait.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::event::Worker;
use crate::domain::settings::Settings;
use crate::engine::net::{Listener, Stream};
use crate::engine::state::Shared;
use crate::poll::{Events, Poller};

/// A client gets this long to send its request and read the reply.
pub(crate) const CLIENT_TIMEOUT_MS: u64 = 10_000;
/// At most this many clients at once.
pub(crate) const MAX_CLIENTS: usize = 64;
/// After a reply, how long a lingering protocol waits for the client to close.
const LINGER_MS: u64 = 2_000;
/// Out of descriptors (or memory) when accepting: how long until accepting is tried again.
const ACCEPT_RETRY_MS: u64 = 100;
const LISTENER_KEY: usize = usize::MAX - 1;

/// What to do with the input received so far.
pub(crate) enum Answer {
    /// The request is not complete yet.
    Wait,
    /// Send this and finish.
    Reply(Vec<u8>),
    /// Close without a reply (the client connected and left).
    Leave,
}

/// A one-request protocol.
pub(crate) trait Protocol {
    /// For messages: "control socket", "metrics listener".
    const NAME: &'static str;
    /// Which thread it is, in events.
    const WORKER: Worker;
    /// Input beyond this length is not read; [`Protocol::answer`] must then reply.
    const MAX_INPUT: usize;
    /// After the reply, shut the write side and wait for the client to close (HTTP: so our
    /// close does not reset the connection before the client has read the reply).
    const LINGER: bool;
    /// Decides on the input so far; `eof` says the client has finished sending.
    fn answer(&self, shared: &Shared, input: &[u8], eof: bool) -> Answer;
    /// The ACL list that must permit a client of this endpoint.
    fn acl(&self, settings: &Settings) -> u8;
}

/// How an accept round ended.
enum Accepted {
    /// The queue is empty: the next connection raises an edge.
    Drained,
    /// The table is full: accepting resumes when a place frees.
    Full,
    /// Out of descriptors or memory: the queued clients raise no new edge, so try again
    /// after [`ACCEPT_RETRY_MS`].
    Starved,
}

#[derive(PartialEq, Eq)]
enum Phase {
    Reading,
    Writing,
    Lingering,
}

struct Client {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    phase: Phase,
    deadline: u64,
    /// Accept order: the oldest idle client is the first to give way.
    seq: u64,
}

/// Serves `listener` with `proto` until the balancer stops.
pub(crate) fn serve<P: Protocol>(shared: Arc<Shared>, listener: Listener, proto: P) {
    let poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => return disabled::<P>(&shared, &e),
    };
    if let Err(e) = poller.add(&listener, LISTENER_KEY) {
        return disabled::<P>(&shared, &e);
    }
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = Events::new();
    let mut accept_ready = true;
    // At MAX_CLIENTS: stopped accepting until a client finishes.
    let mut full = false;
    // Out of descriptors: accept again at this time (0: not waiting).
    let mut accept_retry = 0;
    let mut seq = 0u64;
    loop {
        let timeout = if accept_ready {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        let _ = poller.wait(&mut events, Some(timeout));
        // After an upgrade the new binary answers on this socket.
        let stopping = shared.stopping.load(Relaxed) || shared.handed_over.load(Relaxed);
        let mut ready: Vec<usize> = Vec::new();
        for ev in events.iter() {
            if ev.key == LISTENER_KEY {
                accept_ready = true;
            } else {
                ready.push(ev.key);
            }
        }
        let now = shared.now_ms();
        if accept_retry != 0 && now >= accept_retry {
            accept_retry = 0;
            accept_ready = true;
        }
        if accept_ready && !stopping {
            accept_ready = false;
            match accept(
                &shared,
                &proto,
                &poller,
                &listener,
                &mut clients,
                now,
                &mut seq,
            ) {
                Accepted::Drained => {}
                Accepted::Full => full = true,
                Accepted::Starved => accept_retry = now.saturating_add(ACCEPT_RETRY_MS),
            }
        }
        for k in ready {
            serve_client(&shared, &proto, &poller, &mut clients, k, now);
        }
        for c in clients.iter_mut() {
            if c.as_ref().is_some_and(|c| now > c.deadline) {
                if let Some(c) = c.take() {
                    poller.delete(&c.stream);
                }
            }
        }
        if full && clients.iter().filter(|c| c.is_some()).count() < MAX_CLIENTS {
            // A place freed: the clients still queued raise no new edge, so look now.
            full = false;
            accept_ready = true;
        }
        if stopping {
            for c in clients.iter_mut().filter_map(Option::take) {
                poller.delete(&c.stream);
            }
            poller.delete(&listener);
            return;
        }
    }
}

/// The server cannot run: logged and reported as a worker error.
fn disabled<P: Protocol>(shared: &Shared, e: &io::Error) {
    log::error!("{} disabled: {e}", P::NAME);
    shared
        .events
        .worker_error(P::WORKER, &format_args!("disabled: {e}"));
}

/// Accepts pending clients until the queue is empty, the table is full, or descriptors run out.
fn accept<P: Protocol>(
    shared: &Shared,
    proto: &P,
    poller: &Poller,
    listener: &Listener,
    clients: &mut Vec<Option<Client>>,
    now: u64,
    seq: &mut u64,
) -> Accepted {
    loop {
        let full = clients.iter().filter(|c| c.is_some()).count() >= MAX_CLIENTS;
        if full && oldest_idle(clients).is_none() {
            return Accepted::Full;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Drained,
            Err(_) => return Accepted::Starved,
        };
        let list = proto.acl(&shared.settings.read());
        if !shared.acls.read().permits(list, peer.ip) {
            continue; // dropped: closed at once
        }
        if full {
            // Only now that a client is really waiting does an idle one give way.
            if let Some(c) = oldest_idle(clients).and_then(|i| clients.get_mut(i)?.take()) {
                poller.delete(&c.stream);
            }
        }
        let idx = clients.iter().position(Option::is_none).unwrap_or_else(|| {
            clients.push(None);
            clients.len() - 1
        });
        if poller.add(&stream, idx).is_err() {
            continue;
        }
        if let Some(slot) = clients.get_mut(idx) {
            *slot = Some(Client {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                phase: Phase::Reading,
                deadline: now.saturating_add(CLIENT_TIMEOUT_MS),
                seq: *seq,
            });
            *seq = seq.wrapping_add(1);
        }
        // Data may already be there; the edge for it may have fired before registration.
        serve_client(shared, proto, poller, clients, idx, now);
    }
}

/// The place of the client accepted first among those that have sent nothing yet; `None`
/// if every client has started its request.
fn oldest_idle(clients: &[Option<Client>]) -> Option<usize> {
    clients
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
        .filter(|(_, c)| c.phase == Phase::Reading && c.input.is_empty())
        .min_by_key(|(_, c)| c.seq)
        .map(|(i, _)| i)
}

fn serve_client<P: Protocol>(
    shared: &Shared,
    proto: &P,
    poller: &Poller,
    clients: &mut [Option<Client>],
    k: usize,
    now: u64,
) {
    let Some(slot) = clients.get_mut(k) else {
        return;
    };
    let Some(c) = slot.as_mut() else { return };
    if step(shared, proto, c, now).unwrap_or(true) {
        if let Some(c) = slot.take() {
            poller.delete(&c.stream);
        }
    }
}

/// Reads the request, answers once, writes the reply (lingering if the protocol wants it).
/// Returns whether the client is finished. Every read runs to `WouldBlock` or end of file:
/// the poller is edge-triggered.
fn step<P: Protocol>(shared: &Shared, proto: &P, c: &mut Client, now: u64) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    if c.phase == Phase::Reading {
        let mut eof = false;
        while c.input.len() <= P::MAX_INPUT {
            match (&c.stream).read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => c.input.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match proto.answer(shared, &c.input, eof) {
            Answer::Wait => return Ok(false),
            Answer::Leave => return Ok(true),
            Answer::Reply(out) => {
                c.output = out;
                c.input = Vec::new();
                c.phase = Phase::Writing;
            }
        }
    }
    if c.phase == Phase::Writing {
        while c.written < c.output.len() {
            let rest = c.output.get(c.written..).unwrap_or_default();
            match (&c.stream).write(rest) {
                Ok(0) => return Ok(true),
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !P::LINGER {
            return Ok(true);
        }
        c.output = Vec::new();
        c.stream.shutdown_write()?;
        c.phase = Phase::Lingering;
        c.deadline = c.deadline.min(now.saturating_add(LINGER_MS));
    }
    // Lingering: discard what the client still sends until it closes.
    loop {
        match (&c.stream).read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
