//! Deadlines on what the client sends: `connect_on_data` (no server is chosen or connected to
//! until the client's first bytes are in, so an idle client never holds a server connection)
//! and `request_timeout` (the first bytes, or under `-H` a request head, must come within that
//! many seconds, else the client is closed).

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Worker;
use crate::engine::lifecycle::{Head, Phase, RequestCheck, Timer};
use crate::engine::net::Stream;
use crate::engine::route;

/// Whether a client socket has bytes waiting, without taking them.
enum FirstBytes {
    /// Data is in: route and connect.
    Arrived,
    /// Nothing yet (the readiness is cleared; the poller reports more).
    NotYet,
    /// End of file or an error before any data: close.
    Gone,
}

fn first_bytes(client: &Stream) -> FirstBytes {
    match client {
        Stream::Tcp(s) => {
            let mut b = [0u8; 1];
            loop {
                return match s.peek(&mut b) {
                    Ok(0) => FirstBytes::Gone,
                    Ok(_) => FirstBytes::Arrived,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => FirstBytes::NotYet,
                    Err(_) => FirstBytes::Gone,
                };
            }
        }
        // No stable peek for Unix sockets: readable is taken as data (an end of file then
        // costs one server connection, closed as soon as the relay sees it).
        Stream::Unix(_) => FirstBytes::Arrived,
    }
}

impl Worker {
    /// Arms the request deadline of `slot`'s connection (`request_timeout` from now).
    pub(super) fn arm_request(&mut self, slot: usize, now: u64) {
        let secs = self.shared.settings.read().request_timeout_secs;
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        let heads = (conn.http.as_deref())
            .and_then(|h| h.head_progress())
            .map_or(0, |(heads, _)| heads);
        let at = conn.life.request_armed(now, secs, heads);
        self.arm(slot, Timer::Request, at);
    }

    /// `connect_on_data`: the waiting client's socket may be readable. Once bytes are in, the
    /// client is routed (ACL, tracking, policy) and connected as at accept; they stay in the
    /// socket for the relay.
    pub(super) fn first_data(&mut self, slot: usize, now: u64) {
        let shared = Arc::clone(&self.shared);
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        if !conn.c.read {
            return;
        }
        match first_bytes(&conn.client) {
            FirstBytes::NotYet => conn.c.read = false,
            // No server was chosen: nothing to release but the slot.
            FirstBytes::Gone => self.close_uncounted(slot),
            FirstBytes::Arrived => {
                conn.life.data_arrived(now);
                let (ip, port) = (conn.peer.ip, conn.peer.port);
                let who = format_args!("client {ip}:{port}");
                match route::choose(&shared, ip, port, now, &who) {
                    Some((target, first)) => {
                        conn.target = target;
                        conn.first = first;
                        self.connect(slot, now);
                    }
                    None => self.close_uncounted(slot),
                }
            }
        }
    }

    /// The request deadline of `slot`'s connection passed: close a client that is still
    /// silent (`connect_on_data`) or whose request head is unfinished (`-H`); otherwise watch
    /// the next period.
    pub(super) fn request_due(&mut self, slot: usize, now: u64) {
        let Some(conn) = self.slots.get(slot) else {
            return;
        };
        let head = match conn.http.as_deref().map(|h| h.head_progress()) {
            Some(Some((heads, pending))) => Head::Framed { heads, pending },
            _ => Head::NotFramed,
        };
        match conn.life.request_check(head) {
            RequestCheck::Close => {
                self.shared.counters.request_timeouts.fetch_add(1, Relaxed);
                if self.shared.settings.read().debug > 0 {
                    let (ip, port) = (conn.peer.ip, conn.peer.port);
                    let what = if conn.life.phase() == Phase::Waiting {
                        "its first bytes"
                    } else {
                        "a request head"
                    };
                    log::debug!("client {ip}:{port}: no {what} within request_timeout: closed");
                }
                if conn.life.phase() == Phase::Waiting {
                    self.close_uncounted(slot); // no server was chosen
                } else {
                    self.close(slot);
                }
            }
            RequestCheck::Rearm => self.arm_request(slot, now),
            RequestCheck::Done => {}
        }
    }
}
