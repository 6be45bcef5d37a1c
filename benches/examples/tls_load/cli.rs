//! The command line: the options, their defaults and checks, and the usage text.

use std::net::SocketAddr;

/// The parsed command line.
pub(crate) struct Args {
    pub(crate) addr: SocketAddr,
    pub(crate) seconds: f64,
    pub(crate) threads: usize,
    pub(crate) conns: usize,
    pub(crate) resume: bool,
    pub(crate) tls12: bool,
    pub(crate) ca: Option<String>,
    insecure: bool,
    pub(crate) suite: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) sni: String,
    pub(crate) path: String,
}

const USAGE: &str = "usage: tls_load --addr IP:PORT (--ca CERT.pem | --insecure) [--seconds N] \
                     [--threads T] [--conns-per-thread C] [--resume] [--tls12] [--suite NAME] \
                     [--group NAME] [--sni NAME] [--path /P]";

/// Parses the value following option `opt`.
fn value<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{opt}: missing value"))?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

/// Parses the command line (without the program name).
pub(crate) fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut addr = None;
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        seconds: 10.0,
        threads: 2,
        conns: 16,
        resume: false,
        tls12: false,
        ca: None,
        insecure: false,
        suite: None,
        group: None,
        sni: "localhost".into(),
        path: "/".into(),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--addr" => addr = Some(value::<SocketAddr>("--addr", it.next())?),
            "--seconds" => args.seconds = value("--seconds", it.next())?,
            "--threads" => args.threads = value("--threads", it.next())?,
            "--conns-per-thread" => args.conns = value("--conns-per-thread", it.next())?,
            "--resume" => args.resume = true,
            "--tls12" => args.tls12 = true,
            "--ca" => args.ca = Some(value("--ca", it.next())?),
            "--insecure" => args.insecure = true,
            "--suite" => args.suite = Some(value("--suite", it.next())?),
            "--group" => args.group = Some(value("--group", it.next())?),
            "--sni" => args.sni = value("--sni", it.next())?,
            "--path" => args.path = value("--path", it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unexpected argument '{a}'\n{USAGE}")),
        }
    }
    args.addr = addr.ok_or(USAGE)?;
    if args.ca.is_some() == args.insecure {
        return Err(format!("give exactly one of --ca and --insecure\n{USAGE}"));
    }
    if args.threads == 0 || args.conns == 0 || !args.seconds.is_finite() || args.seconds <= 0.0 {
        return Err("--threads, --conns-per-thread and --seconds must be positive".into());
    }
    if !args.path.starts_with('/') {
        return Err("--path must start with '/'".into());
    }
    Ok(args)
}
