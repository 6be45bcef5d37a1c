//! pen-core embedded in a program, through its typed API: a balancer over in-process toy
//! backends, a custom selection policy, a server added with a typed command, the state as a
//! table, the events and the log lines printed by a tiny logger. Runs by itself and stops:
//!
//! ```text
//! cargo run -p pen-core --example embed
//! ```
//!
//! `cargo test` runs it too (the `runs_to_completion` test at the end).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pen_core::addr::{ListenAddr, ServerSpec};
use pen_core::control::command::ServerField;
use pen_core::policy::{Policy, SelectionContext};
use pen_core::server::ServerId;
use pen_core::{Balancer, Command, Config, Event, Settings, Status};

type Error = Box<dyn std::error::Error>;

/// The policy: the available server that has been sent the fewest bytes so far (ties: the
/// lower number). Failover keeps the built-in order.
#[derive(Debug)]
struct FewestBytesSent;

impl Policy for FewestBytesSent {
    fn first_choice(&self, ctx: &SelectionContext<'_>) -> Option<ServerId> {
        ctx.table()
            .iter()
            .filter(|&(id, _)| ctx.available(id))
            .min_by_key(|&(id, s)| (s.sent(), id))
            .map(|(id, _)| id)
    }
}

/// A logger printing every record to stdout: pen-core logs through the `log` facade and the
/// program chooses where the lines go.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        println!("  [{:<5}] {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

static LOGGER: StdoutLogger = StdoutLogger;

/// Starts a backend answering every HTTP request with its own name; returns its address.
fn toy_backend(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(buf.get(..n).unwrap_or_default());
                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let body = format!("hello from {name}\n");
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(addr)
}

/// One HTTP request through the balancer; returns the response body. Waits until the
/// connection is closed on the balancer's side too, so its bytes are counted.
fn request(balancer: &Balancer, path: &str) -> Result<String, Error> {
    let ListenAddr::Inet(addr) = balancer.listen_addr() else {
        return Err("not listening on TCP".into());
    };
    let mut s = TcpStream::connect(addr)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: example\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(2);
    while balancer.active_connections() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(body.trim_end().to_string())
}

/// Logs the events that have arrived.
fn log_events(events: &Receiver<Event>) {
    for event in events.try_iter() {
        log::info!("event: {event}");
    }
}

/// Waits (at most `within`) for an event `want` accepts, logging every event on the way.
fn wait_for_event(
    events: &Receiver<Event>,
    within: Duration,
    want: impl Fn(&Event) -> bool,
) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    while let Ok(event) = events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        log::info!("event: {event}");
        if want(&event) {
            return Ok(());
        }
    }
    Err("the awaited event did not come".into())
}

/// The servers as a table.
fn print_table(status: &Status) {
    println!(
        "  {:>2}  {:<17} {:<22} {:>5} {:>5} {:>6} {:>6}",
        "#", "address", "state", "conns", "total", "sent", "recvd"
    );
    for (id, s) in status.servers.iter().enumerate() {
        let addr = s.addr.map(|a| a.to_string()).unwrap_or_default();
        let state = match s.blacklist_left {
            Some(left) => format!("blacklisted, {left} s left"),
            None => "up".to_string(),
        };
        println!(
            "  {id:>2}  {addr:<17} {state:<22} {:>5} {:>5} {:>6} {:>6}",
            s.conns, s.total, s.sent, s.received
        );
    }
    println!(
        "  {} accepted, {} open (limit {}), {} client(s) tracked, up {} ms",
        status.counters.accepted,
        status.active,
        status.conn_max,
        status.clients_tracked,
        status.uptime_ms
    );
}

fn main() -> Result<(), Error> {
    log::set_logger(&LOGGER).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Trace);

    let spec = |addr| ServerSpec {
        addr,
        max: 0,
        hard: 0,
        weight: 0,
        prio: 0,
    };
    let servers = vec![spec(toy_backend("alpha")?), spec(toy_backend("beta")?)];
    let third = toy_backend("gamma")?;
    let config = Config::new(
        ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 0))),
        servers,
    )
    .with_workers(1)
    // debug 2: pen-core logs each client's server (at `trace`).
    .with_settings(Settings::default().with_debug(2))
    .with_policy(Arc::new(FewestBytesSent));
    let events = config.subscribe();
    let balancer = Balancer::start(config)?;
    println!("balancer on {}", balancer.listen_addr());

    println!("\n== two requests (policy: fewest bytes sent)");
    for path in ["/a", "/bb"] {
        println!("GET {path} -> {}", request(&balancer, path)?);
    }

    println!("\n== add server 2 with a typed command");
    let reply = balancer.execute(Command::Server {
        id: 2,
        fields: vec![
            ServerField::Address(third.ip().to_string()),
            ServerField::Port(third.port()),
        ],
    })?;
    println!("reply: {reply:?}");
    log_events(&events);
    for path in ["/ccc", "/dddd", "/eeeee"] {
        println!("GET {path} -> {}", request(&balancer, path)?);
    }
    print_table(&balancer.snapshot());

    println!("\n== blacklist server 0 for 1 s by command");
    let reply = balancer.execute(Command::Server {
        id: 0,
        fields: vec![ServerField::Blacklist(1)],
    })?;
    println!("reply: {reply:?}");
    log_events(&events);
    println!("GET /f -> {}", request(&balancer, "/f")?);
    print_table(&balancer.snapshot());
    println!("(waiting for the blacklisting to run out)");
    wait_for_event(&events, Duration::from_secs(3), |e| {
        matches!(e, Event::ServerRestored { .. })
    })?;
    println!("GET /g -> {}", request(&balancer, "/g")?);
    print_table(&balancer.snapshot());

    println!("\n== a refused command");
    if let Err(e) = balancer.apply("server 1 weight heavy") {
        println!("error: {e}");
    }
    log_events(&events);

    balancer.stop();
    println!("\nstopped");
    Ok(())
}

// `cargo test` runs the example to completion (it is built as a test: see Cargo.toml).
#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() -> Result<(), super::Error> {
        super::main()
    }
}
