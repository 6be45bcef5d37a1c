//! Fuzzes the relay state machine (one direction, `Pipe::pump`, plain or through the HTTP
//! carrier) between two simulated non-blocking sockets under an edge-triggered poller
//! (`pen_core::fuzzing::relay`), driven by an arbitrary script of events: data and FIN (plain, or
//! clean as epoll reports it, which lets the relay end on a short read) arriving, room freeing
//! in the destination, spurious wake-ups, interrupted calls, read,
//! write and shutdown errors, and `pump` calls with any read budget and `other_done`.
//!
//! Checked after every step: the destination has received a prefix of the expected stream (the
//! input, or what the HTTP rewriter makes of it), the relay's byte count agrees, nothing is
//! written after the half-close, at most one buffer's worth is held, and the relay never waits
//! for an edge that cannot come (bytes held while the destination still has room and is not
//! marked writable, or nothing held while the source has unread input and is not marked
//! readable: an edge-triggered poller would never wake it). Then, unless an error ended the
//! connection, everything left arrives, the FIN, unlimited room: within a bounded number of
//! pumps (no new edges) the direction must finish with output == expected, the half-close
//! passed on (unless `other_done` made it the close's job), no buffer held and, in plain mode,
//! the access-log hook having seen exactly the input. After an error: the output is a prefix
//! and closing returns every buffer.
#![no_main]

use std::io::ErrorKind;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use pen_core::fuzzing::relay::{Relay, BUF_SIZE, READS_PER_TURN};
use pen_core::http::{Rewriter, MAX_HEAD};

/// Reads script bytes; 0 when they run out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// Cap on the bytes one input sends (bulk steps stop adding beyond it).
const MAX_INPUT: usize = 256 << 10;

const ERRORS: [ErrorKind; 4] = [
    ErrorKind::ConnectionReset,
    ErrorKind::BrokenPipe,
    ErrorKind::TimedOut,
    ErrorKind::Other,
];

fn expected(input: &[u8], http: Option<(IpAddr, bool)>) -> Vec<u8> {
    match http {
        None => input.to_vec(),
        Some((ip, https)) => {
            let mut rw = Rewriter::new(ip, https);
            let mut out = Vec::new();
            rw.push(input, &mut out);
            rw.finish(&mut out);
            out
        }
    }
}

/// The invariants that hold between any two steps; `verified` bytes of the output (and of the
/// hook's view) were checked before, so each byte is compared once.
fn check_step(r: &Relay, input: &[u8], http: bool, verified: &mut (usize, usize)) {
    let out = r.out();
    assert_eq!(r.delivered(), out.len() as u64, "byte count");
    assert!(!r.write_after_shut(), "write after the half-close");
    if !http {
        assert!(out.len() <= input.len(), "more out than in");
        assert!(
            out[verified.0..] == input[verified.0..out.len()],
            "not a prefix"
        );
        verified.0 = out.len();
        assert!(r.pending() <= BUF_SIZE, "held {}", r.pending());
        let seen = r.seen();
        assert_eq!(seen.len() as u64, r.taken(), "access-log hook");
        assert!(
            seen[verified.1..] == input[verified.1..seen.len()],
            "access-log hook"
        );
        verified.1 = seen.len();
    } else {
        // One read's worth of rewritten bytes at most: a head (bounded) plus a chunk, plus
        // the inserted headers.
        assert!(
            r.pending() <= MAX_HEAD + 2 * BUF_SIZE,
            "held {}",
            r.pending()
        );
    }
}

/// After a pump that returned Ok: the relay must be done, or waiting for an edge that will
/// come, or out of read budget.
fn check_waiting(r: &Relay, budget_left: u32) {
    if r.done() {
        return;
    }
    let (read, write) = r.ready();
    if r.pending() > 0 {
        assert!(
            !write && r.dst_space() == 0,
            "holds {} bytes, writable {write}, room {}",
            r.pending(),
            r.dst_space()
        );
    } else if !r.eof() {
        if read {
            assert_eq!(budget_left, 0, "stopped reading with budget and readiness");
        } else {
            assert!(!r.src_has_input(), "unread input but not marked readable");
        }
    } else {
        panic!("EOF read, nothing held, not finished");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script(data);
    let flags = s.byte();
    let http = (flags & 1 == 1).then(|| {
        let ip: IpAddr = if flags & 2 == 0 {
            "192.0.2.7".parse().unwrap()
        } else {
            "::ffff:192.0.2.7".parse().unwrap()
        };
        (ip, flags & 4 != 0)
    });
    let space = usize::from(s.byte()) * 256;
    let mut r = Relay::new(http, space);
    let mut input: Vec<u8> = Vec::new();
    let mut other_done_seen = false;
    let mut not_connected = false;
    let mut verified = (0, 0);
    let mut failed = false;
    let mut fin = false;
    let mut steps = 0;
    while !s.0.is_empty() && steps < 512 {
        steps += 1;
        let op = s.byte();
        let arg = s.byte();
        match op % 12 {
            0 | 1 => {
                // Data: `arg` bytes from the script.
                let bytes = s.bytes(usize::from(arg)).to_vec();
                if !fin {
                    input.extend_from_slice(&bytes);
                }
                r.arrive(&bytes);
            }
            2 => {
                // Bulk data, to cross buffer boundaries: (arg%64+1) KiB of one byte value, up
                // to MAX_INPUT in all.
                let b = s.byte();
                let n = ((usize::from(arg) % 64) + 1) * 1024;
                let bytes = vec![b; n.min(MAX_INPUT.saturating_sub(input.len()))];
                if !fin {
                    input.extend_from_slice(&bytes);
                }
                r.arrive(&bytes);
            }
            3 => {
                fin = true;
                if arg & 1 == 1 {
                    r.clean_fin();
                } else {
                    r.fin();
                }
            }
            4 => r.room(usize::from(arg) << (s.byte() % 10)),
            5 => r.spurious(arg & 1 == 1, arg & 2 == 2),
            6 => match arg % 3 {
                0 => r.interrupt_reads(u32::from(arg % 4)),
                1 => r.interrupt_writes(u32::from(arg % 4)),
                _ => {
                    // Harmless (the peer is gone already), but no half-close is recorded.
                    not_connected = true;
                    r.fail_shutdown(ErrorKind::NotConnected);
                }
            },
            7 => {
                // A hard error: the connection is finished after the next pump that hits it.
                match arg % 4 {
                    0 => r.fail_read(ERRORS[usize::from(arg / 4) % ERRORS.len()]),
                    1 => r.fail_write(ERRORS[usize::from(arg / 4) % ERRORS.len()]),
                    2 => r.zero_write(),
                    _ => r.fail_shutdown(ErrorKind::PermissionDenied),
                }
            }
            _ => {
                let other_done = arg & 0x80 != 0;
                let budget = u32::from(arg & 0x7f) % (READS_PER_TURN + 1);
                match r.pump(other_done, budget) {
                    Ok((_, left)) => {
                        if other_done && r.shut() {
                            other_done_seen = true;
                        }
                        check_waiting(&r, left);
                    }
                    Err(_) => failed = true,
                }
            }
        }
        check_step(&r, &input, http.is_some(), &mut verified);
        if failed {
            break;
        }
    }
    let want = expected(&input, http);
    if failed {
        assert!(r.out().len() <= want.len() && r.out() == &want[..r.out().len()]);
        r.release();
        assert_eq!(r.buffers_out(), 0, "buffers leak on close");
        return;
    }
    // The rest of the connection, error-free: everything arrives, then the FIN.
    if flags & 8 == 0 {
        r.fin();
    } else {
        r.clean_fin();
    }
    r.room(usize::MAX / 2);
    let mut rounds = 0;
    while !r.done() {
        rounds += 1;
        assert!(
            rounds <= 64 + input.len() / BUF_SIZE,
            "no progress: stalled"
        );
        match r.pump(false, READS_PER_TURN) {
            Ok((_, left)) => check_waiting(&r, left),
            Err(_) => {
                // A failure injected earlier (for a read or write that had not happened yet).
                assert!(r.out().len() <= want.len() && r.out() == &want[..r.out().len()]);
                r.release();
                assert_eq!(r.buffers_out(), 0, "buffers leak on close");
                return;
            }
        }
        check_step(&r, &input, http.is_some(), &mut verified);
    }
    assert_eq!(r.out(), &want[..], "bytes out != bytes in");
    assert!(
        r.dst_shut() || other_done_seen || (not_connected && r.shutdowns() > 0),
        "half-close lost"
    );
    assert_eq!(r.buffers_out(), 0, "buffer held by a finished direction");
    if http.is_none() {
        assert_eq!(r.seen(), &input[..], "access-log hook");
    } else {
        assert!(want.starts_with(r.seen()), "access-log hook");
    }
    r.release();
    assert_eq!(r.buffers_out(), 0);
});
