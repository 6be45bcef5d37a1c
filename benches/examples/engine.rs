//! A stand-in for the `pen` binary, for benchmarking the pen-core relay engine before (or
//! independently of) the real command-line front end.
//!
//! Accepts the subset of pen's command line that the load benchmark uses, with numeric
//! addresses only:
//!
//! ```text
//! engine [-f] [-x N] [-c N] [-q N] [--workers N] LISTEN_IP:PORT SERVER_IP:PORT [SERVER_IP:PORT ...]
//! ```
//!
//! `-f` is accepted and ignored (the driver always stays in the foreground). The load benchmark
//! measures it as the `engine` row: `ONLY="cpen pen engine" benches/load/run.sh`, and
//! `TARGET=engine benches/load/profile.sh` profiles it.

use std::net::SocketAddr;
use std::process::ExitCode;

use pen_core::addr::{ListenAddr, ServerSpec};
use pen_core::{Balancer, Config};

/// The parsed command line.
struct Args {
    listen: SocketAddr,
    servers: Vec<SocketAddr>,
    conn_max: usize,
    clients_max: usize,
    backlog: i32,
    workers: usize,
}

/// Parses the value following option `opt`.
fn value<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{opt}: missing value"))?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

/// Parses the command line (without the program name).
fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([0; 4], 0)),
        servers: Vec::new(),
        conn_max: 500,
        clients_max: 2048,
        backlog: 500,
        workers: 0,
    };
    let mut positional = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" => {}
            "-x" => args.conn_max = value("-x", it.next())?,
            "-c" => args.clients_max = value("-c", it.next())?,
            "-q" => args.backlog = value("-q", it.next())?,
            "--workers" => args.workers = value("--workers", it.next())?,
            _ if a.starts_with('-') => return Err(format!("unknown option '{a}'")),
            _ => positional.push(a),
        }
    }
    let mut addrs = positional.into_iter().map(|p| {
        p.parse::<SocketAddr>()
            .map_err(|_| format!("'{p}': expected IP:PORT"))
    });
    args.listen = addrs.next().ok_or("missing listen address")??;
    args.servers = addrs.collect::<Result<_, _>>()?;
    if args.servers.is_empty() {
        return Err("missing server address".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("engine: {e}");
            return ExitCode::from(2);
        }
    };
    let servers = args
        .servers
        .iter()
        .map(|&addr| ServerSpec {
            addr,
            max: 0,
            hard: 0,
            weight: 0,
            prio: 0,
        })
        .collect();
    let mut config = Config::new(ListenAddr::Inet(args.listen), servers);
    config.conn_max = args.conn_max;
    config.clients_max = args.clients_max;
    config.backlog = args.backlog;
    config.workers = args.workers;
    match Balancer::start(config) {
        Ok(b) => {
            b.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("engine: {e}");
            ExitCode::FAILURE
        }
    }
}
