//! A balancer and two toy HTTP backends in one process, for trying pen out:
//!
//! ```text
//! cargo run -p pen-core --example demo [LISTEN_PORT]    # default 8080
//! curl http://127.0.0.1:8080/                            # "hello from backend 0" or "... 1"
//! ```
//!
//! The control socket listens on the next port (8081 by default): `penctl 127.0.0.1:8081 servers`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use pen_core::addr::{ListenAddr, ServerSpec};
use pen_core::{Balancer, Config};

/// Starts a backend answering every request with its own name; returns its address.
fn toy_backend(name: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                // Read the request head (until a blank line), then answer and close.
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = format!("hello from backend {name}\n");
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    Ok(addr)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(8080);
    let servers = (0..2)
        .map(|i| {
            toy_backend(i).map(|addr| ServerSpec {
                addr,
                max: 0,
                hard: 0,
                weight: 0,
                prio: 0,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = Config::new(
        ListenAddr::Inet(SocketAddr::from(([127, 0, 0, 1], port))),
        servers,
    );
    config.control = Some(ListenAddr::Inet(SocketAddr::from((
        [127, 0, 0, 1],
        port.wrapping_add(1),
    ))));
    // Round robin, so consecutive requests from one client visibly alternate between backends.
    config.settings.roundrobin = true;
    let balancer = Balancer::start(config)?;
    println!(
        "pen demo: balancing http://{} over two toy backends",
        balancer.listen_addr()
    );
    println!(
        "  try:     curl http://{}/   (run it twice: the backends alternate)",
        balancer.listen_addr()
    );
    if let Some(c) = balancer.control_addr() {
        println!("  control: penctl {c} servers");
    }
    println!("  stop:    Ctrl-C");
    balancer.wait();
    Ok(())
}
