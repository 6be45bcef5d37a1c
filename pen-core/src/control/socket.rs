//! The control socket: non-blocking, on its own thread with its own poller, so a slow or idle
//! control client never stalls the relay. One command per connection; clients time out.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::poll::{Events, Poller};

use crate::clock::now_ms;
use crate::net::{Listener, Stream};
use crate::state::Shared;

/// A control client gets this long to send its line and read the reply.
const CLIENT_TIMEOUT_MS: u64 = 10_000;
/// Longest accepted command line.
const MAX_LINE: usize = 16 * 1024;
/// At most this many control clients at once; more wait in the accept queue.
const MAX_CLIENTS: usize = 64;
const LISTENER_KEY: usize = usize::MAX - 1;

struct Client {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    replied: bool,
    deadline: u64,
}

/// Serves the control socket until the balancer stops.
pub(crate) fn serve(shared: Arc<Shared>, listener: Listener) {
    let poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pen: control socket disabled: {e}");
            return;
        }
    };
    if let Err(e) = poller.add(&listener, LISTENER_KEY) {
        eprintln!("pen: control socket disabled: {e}");
        return;
    }
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = Events::new();
    let mut accept_ready = true;
    // At MAX_CLIENTS: stopped accepting until a client finishes.
    let mut full = false;
    loop {
        let timeout = if accept_ready {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        let _ = poller.wait(&mut events, Some(timeout));
        let stopping = shared.stopping.load(Relaxed);
        let mut ready: Vec<usize> = Vec::new();
        for ev in events.iter() {
            if ev.key == LISTENER_KEY {
                accept_ready = true;
            } else {
                ready.push(ev.key);
            }
        }
        let now = now_ms();
        if accept_ready && !stopping {
            accept_ready = false;
            full = accept(&shared, &poller, &listener, &mut clients, now);
        }
        for k in ready {
            serve_client(&shared, &poller, &mut clients, k);
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

/// Accepts pending control clients until the queue is empty (returns false) or the client
/// table is full (returns true: accepting resumes when a place frees).
fn accept(
    shared: &Shared,
    poller: &Poller,
    listener: &Listener,
    clients: &mut Vec<Option<Client>>,
    now: u64,
) -> bool {
    loop {
        let live = clients.iter().filter(|c| c.is_some()).count();
        if live >= MAX_CLIENTS {
            return true;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return false,
        };
        let list = shared.settings.read().control_acl;
        if !shared.acls.read().permits(list, peer.ip) {
            continue; // dropped: closed at once
        }
        let idx = clients.iter().position(Option::is_none).unwrap_or_else(|| {
            clients.push(None);
            clients.len() - 1
        });
        if poller.add(&stream, idx).is_err() {
            continue;
        }
        clients[idx] = Some(Client {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            replied: false,
            deadline: now + CLIENT_TIMEOUT_MS,
        });
        // Data may already be there; the edge for it may have fired before registration.
        serve_client(shared, poller, clients, idx);
    }
}

fn serve_client(shared: &Shared, poller: &Poller, clients: &mut [Option<Client>], k: usize) {
    let Some(slot) = clients.get_mut(k) else {
        return;
    };
    let Some(c) = slot.as_mut() else { return };
    let finished = step(shared, c).unwrap_or(true);
    if finished {
        if let Some(c) = slot.take() {
            poller.delete(&c.stream);
        }
    }
}

/// Reads the line, applies it once, writes the reply. Returns whether the client is finished.
fn step(shared: &Shared, c: &mut Client) -> io::Result<bool> {
    if !c.replied {
        let mut buf = [0u8; 4096];
        let mut eof = false;
        loop {
            match (&c.stream).read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    if c.input.contains(&b'\n') || c.input.len() > MAX_LINE {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let line_end = c.input.iter().position(|&b| b == b'\n');
        let reply = if c.input.len() > MAX_LINE && line_end.is_none() {
            format!("error: command line longer than {MAX_LINE} bytes\n")
        } else if let Some(end) = line_end.or(if eof { Some(c.input.len()) } else { None }) {
            if eof && c.input.is_empty() {
                return Ok(true); // connected and left without a command
            }
            let line = String::from_utf8_lossy(&c.input[..end]);
            shared.counters.control_commands.fetch_add(1, Relaxed);
            match crate::control::apply::apply_line(shared, &line) {
                Ok(r) => r,
                Err(e) => {
                    shared.counters.control_errors.fetch_add(1, Relaxed);
                    format!("error: {e}\n")
                }
            }
        } else {
            return Ok(false); // wait for the rest of the line
        };
        c.output = reply.into_bytes();
        c.replied = true;
    }
    while c.written < c.output.len() {
        match (&c.stream).write(&c.output[c.written..]) {
            Ok(0) => return Ok(true),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
