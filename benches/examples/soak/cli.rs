//! The command line: the client mix (`--mix`), the options and their defaults, durations
//! (`90`, `90s`, `10m`, `1.5h`) and the usage text.

use std::path::PathBuf;
use std::time::Duration;

/// How many client threads of each kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    pub(crate) short: usize,
    pub(crate) keepalive: usize,
    pub(crate) long: usize,
    pub(crate) bulk: usize,
    pub(crate) half: usize,
    pub(crate) idle: usize,
    pub(crate) udp: usize,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            short: 4,
            keepalive: 3,
            long: 8,
            bulk: 2,
            half: 2,
            idle: 2,
            udp: 2,
        }
    }
}

impl Mix {
    fn parse(s: &str) -> Result<Mix, String> {
        let mut m = Mix::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: expected KIND=N, got '{part}'"))?;
            let n: usize = v.parse().map_err(|_| format!("--mix: bad number '{v}'"))?;
            match k {
                "short" => m.short = n,
                "keepalive" => m.keepalive = n,
                "long" => m.long = n,
                "bulk" => m.bulk = n,
                "half" => m.half = n,
                "idle" => m.idle = n,
                "udp" => m.udp = n,
                _ => return Err(format!("--mix: unknown kind '{k}'")),
            }
        }
        Ok(m)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "short={},keepalive={},long={},bulk={},half={},idle={},udp={}",
            self.short, self.keepalive, self.long, self.bulk, self.half, self.idle, self.udp
        )
    }
}

/// The parsed command line.
pub(crate) struct Args {
    pub(crate) pen: PathBuf,
    pub(crate) penctl: Option<PathBuf>,
    pub(crate) duration: Duration,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) warmup: Option<Duration>,
    pub(crate) sample_every: Duration,
    pub(crate) toggle_every: Duration,
    pub(crate) hup_every: Duration,
    pub(crate) control_every: Duration,
    pub(crate) workers: u32,
    pub(crate) conn_max: u32,
    pub(crate) rss_tol_mib: u64,
    pub(crate) fd_tol: u64,
    pub(crate) inject: u64,
    pub(crate) mix: Mix,
}

const USAGE: &str = "usage: soak --pen PATH [--penctl PATH] [--duration 10m] [--dir DIR] \
[--mix short=4,keepalive=3,long=8,bulk=2,half=2,idle=2,udp=2] [--warmup D] [--sample-every D] \
[--toggle-every D] [--hup-every D] [--control-every D] [--workers N] [--conn-max N] \
[--rss-tolerance-mib N] [--fd-tolerance N] [--inject-corruption N]   (or: soak PEN DURATION)";

/// `90`, `90s`, `10m`, `1.5h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1.0),
        Some(b'm') => (&s[..s.len() - 1], 60.0),
        Some(b'h') => (&s[..s.len() - 1], 3600.0),
        _ => (s, 1.0),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration '{s}'"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("bad duration '{s}'"));
    }
    Ok(Duration::from_secs_f64(n * mult))
}

fn value(opt: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{opt}: missing value"))
}

fn number<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = value(opt, v)?;
    v.parse().map_err(|_| format!("{opt}: bad value '{v}'"))
}

pub(crate) fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        pen: PathBuf::new(),
        penctl: None,
        duration: Duration::from_secs(600),
        dir: None,
        warmup: None,
        sample_every: Duration::from_secs(10),
        toggle_every: Duration::from_secs(20),
        hup_every: Duration::from_secs(15),
        control_every: Duration::from_secs(3),
        workers: 2,
        conn_max: 2000,
        rss_tol_mib: 8,
        fd_tol: 4,
        inject: 0,
        mix: Mix::default(),
    };
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let dur = |v: Option<String>| parse_duration(&value(&arg, v)?);
        match arg.as_str() {
            "--pen" => a.pen = value(&arg, it.next())?.into(),
            "--penctl" => a.penctl = Some(value(&arg, it.next())?.into()),
            "--duration" => a.duration = dur(it.next())?,
            "--dir" => a.dir = Some(value(&arg, it.next())?.into()),
            "--warmup" => a.warmup = Some(dur(it.next())?),
            "--sample-every" => a.sample_every = dur(it.next())?,
            "--toggle-every" => a.toggle_every = dur(it.next())?,
            "--hup-every" => a.hup_every = dur(it.next())?,
            "--control-every" => a.control_every = dur(it.next())?,
            "--workers" => a.workers = number(&arg, it.next())?,
            "--conn-max" => a.conn_max = number(&arg, it.next())?,
            "--rss-tolerance-mib" => a.rss_tol_mib = number(&arg, it.next())?,
            "--fd-tolerance" => a.fd_tol = number(&arg, it.next())?,
            "--inject-corruption" => a.inject = number(&arg, it.next())?,
            "--mix" => a.mix = Mix::parse(&value(&arg, it.next())?)?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if !arg.starts_with('-') => positional.push(arg),
            _ => return Err(format!("unexpected argument '{arg}'\n{USAGE}")),
        }
    }
    let mut pos = positional.into_iter();
    if let Some(p) = pos.next() {
        a.pen = p.into();
    }
    if let Some(d) = pos.next() {
        a.duration = parse_duration(&d)?;
    }
    if let Some(extra) = pos.next() {
        return Err(format!("unexpected argument '{extra}'\n{USAGE}"));
    }
    if a.pen.as_os_str().is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(a)
}
