//! A TLS handshake load generator for the load benchmark's TLS table: every request is a new
//! TLS connection.
//!
//! ```text
//! tls_load --addr IP:PORT (--ca CERT.pem | --insecure) [--seconds N] [--threads T]
//!          [--conns-per-thread C] [--resume] [--tls12] [--suite NAME] [--group NAME]
//!          [--sni NAME] [--path P]
//! ```
//!
//! Each of the `--threads` threads (default 2) keeps `--conns-per-thread` connections (default
//! 16) in flight on non-blocking sockets and one `poll(2)` loop; when one ends, the next starts
//! in its place at once. A connection is: TCP connect, TLS handshake (rustls, ring provider),
//! `GET PATH HTTP/1.1` with `Host: SNI` and `Connection: close`, the response read to the end
//! of the stream, a close_notify (best effort), close. A response counts only if it starts
//! with `HTTP/1.1 200` and, when it has a `Content-Length`, its body is complete.
//!
//! Without `--resume` session resumption is disabled: every handshake is a full one. With
//! `--resume` the connections of one thread share a session store, so every connection after
//! the first few resumes a session (a TLS 1.3 ticket, or a TLS 1.2 session ID or ticket)
//! received on an earlier one. The store is rustls's `ClientSessionMemoryCache` but for its
//! limit: that one keeps 8 TLS 1.3 tickets per server, each used once, too few for 16
//! connections in flight, which then push each other's tickets out (about 85% resumed instead
//! of 99.5% against C pen). The output says which share of the connections really resumed.
//!
//! The server's certificate is verified against `--ca` (a PEM file, e.g. the self-signed
//! certificate itself) for the name `--sni` (default `localhost`). `--insecure` accepts any
//! certificate but still checks the handshake signature made with its key, so the client
//! does the same public-key work either way. `--tls12` allows only TLS 1.2 (default: TLS 1.3
//! or 1.2, 1.3 preferred); `--suite` offers only the named cipher suite (rustls's name, e.g.
//! `TLS13_AES_256_GCM_SHA384`), `--group` only the named key-exchange group (`X25519`,
//! `secp256r1`, `secp384r1`; by default all three with an X25519 key share, so a server
//! without X25519 answers the first flight with a HelloRetryRequest).
//!
//! Runs for `--seconds` (default 10) and prints one line:
//!
//! ```text
//! handshakes_per_sec=2345 connections=23450 resumed_fraction=0.000 retry_fraction=0.000 \
//!   errors=0 unclean_closes=0 seconds=10.00 avg_ms=13.6 protocol=TLSv1_3 \
//!   suite=TLS13_AES_256_GCM_SHA384 group=secp256r1
//! ```
//!
//! - `handshakes_per_sec`: connections completed (response verified) before the end of the
//!   run, per second; `connections` their number; connections still in flight at the end are
//!   not counted.
//! - `resumed_fraction`: the share of them that resumed a session; `retry_fraction`: the share
//!   that were full handshakes with a HelloRetryRequest.
//! - `errors`: failed connections (refused, TLS alert, bad or short response, no progress for
//!   10 s, or in flight at the end without progress for the last second).
//! - `unclean_closes`: complete responses whose stream ended without the server's
//!   close_notify (counted as completed).
//! - with `--resume`, `sessions_received` and `sessions_offered`: sessions (TLS 1.3 tickets)
//!   the servers gave, and those offered to them for resumption.
//! - `avg_ms`: mean time from connect to the end of the response.
//! - `protocol`, `suite`, `group`: what the last completed connection negotiated (`-` if none).
//!
//! The first few errors are printed on stderr.
//!
//! The code, by module: `cli` (the command line), `tls_config` (the rustls client
//! configuration and the `--insecure` verifier), `tickets` (the `--resume` session store),
//! `conn` (one connection, driven by poll(2) events, and the response check), `worker` (one
//! thread's connection slots and what it counts); `main` starts the threads and prints the
//! result line.
// A load generator, not pen: its input is what it sends itself, so the workspace's
// no-panic lints for network-facing code do not apply; its buffers are indexed by their own
// lengths.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

mod cli;
mod conn;
mod tickets;
mod tls_config;
mod worker;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::parse;
use crate::tickets::TicketStore;
use crate::tls_config::client_config;
use crate::worker::{run, Tally};

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("tls_load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut configs = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..args.threads {
        match client_config(&args) {
            Ok((c, store)) => {
                configs.push(Arc::new(c));
                stores.extend(store);
            }
            Err(e) => {
                eprintln!("tls_load: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let shown = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let handles: Vec<_> = configs
        .into_iter()
        .map(|config| {
            let (args, shown) = (args.clone(), shown.clone());
            thread::spawn(move || run(&args, config, end, &shown))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => {
                total.completed += t.completed;
                total.resumed += t.resumed;
                total.retried += t.retried;
                total.errors += t.errors;
                total.unclean += t.unclean;
                total.busy += t.busy;
                total.negotiated = t.negotiated.or(total.negotiated);
            }
            Err(_) => {
                eprintln!("tls_load: a thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = args.seconds;
    let count = |f: fn(&TicketStore) -> &AtomicU64| {
        stores
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let sessions = if args.resume {
        format!(
            " sessions_received={} sessions_offered={}",
            count(|s| &s.received),
            count(|s| &s.offered)
        )
    } else {
        String::new()
    };
    let per = |x: u64| x as f64 / total.completed.max(1) as f64;
    println!(
        "handshakes_per_sec={:.0} connections={} resumed_fraction={:.3} retry_fraction={:.3} \
         errors={} unclean_closes={}{sessions} seconds={secs:.2} avg_ms={:.1} {}",
        total.completed as f64 / secs,
        total.completed,
        per(total.resumed),
        per(total.retried),
        total.errors,
        total.unclean,
        total.busy.as_secs_f64() * 1e3 / total.completed.max(1) as f64,
        total
            .negotiated
            .unwrap_or_else(|| "protocol=- suite=- group=-".into()),
    );
    if total.completed == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
