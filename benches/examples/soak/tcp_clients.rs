//! The TCP client threads, one function per traffic kind (`short`, `keepalive`, `long`,
//! `bulk`, `half`, `idle`): each makes connections through pen until the run ends.

use std::io::{self, Read};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::config_files::IDLE_CHOICES;
use crate::context::{Ctx, Fail};
use crate::exchange::{describe, duplex_echo, exchange, small_req};
use crate::rng::Rng;
use crate::stats::{ErrKind, Kind};
use crate::wire::{Op, Req, CHUNK};

/// An idle connection not closed by pen within this time is an error.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(70);

pub(crate) fn short_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Short, &mut rng) else {
            continue;
        };
        let req = small_req(&mut rng, 16 << 10);
        let res = exchange(&mut s, req, &mut buf);
        ctx.record(Kind::Short, res, &snap, &mut None, &|| describe(&req));
    }
}

pub(crate) fn keepalive_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::KeepAlive, &mut rng) else {
            continue;
        };
        let mut server = None;
        for i in 0..rng.range(50, 500) {
            if !ctx.running() {
                break;
            }
            let req = small_req(&mut rng, 4 << 10);
            let res = exchange(&mut s, req, &mut buf);
            let what = || format!("request {i}: {}", describe(&req));
            if !ctx.record(Kind::KeepAlive, res, &snap, &mut server, &what) {
                break;
            }
        }
    }
}

pub(crate) fn long_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    // Spread the connections' start times.
    ctx.sleep(Duration::from_millis(rng.range(0, 5000)));
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Long, &mut rng) else {
            continue;
        };
        let life = Duration::from_secs(rng.range(30, 120));
        let born = Instant::now();
        let mut server = None;
        let mut i = 0;
        while born.elapsed() < life && ctx.sleep(Duration::from_millis(rng.range(200, 5000))) {
            let req = small_req(&mut rng, 64 << 10);
            let res = exchange(&mut s, req, &mut buf);
            let age = born.elapsed().as_secs();
            let what = || format!("request {i} at age {age} s: {}", describe(&req));
            if !ctx.record(Kind::Long, res, &snap, &mut server, &what) {
                break;
            }
            i += 1;
        }
    }
}

pub(crate) fn bulk_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Bulk, &mut rng) else {
            continue;
        };
        let mut server = None;
        for _ in 0..rng.range(1, 3) {
            if !ctx.running() {
                break;
            }
            let mib = |rng: &mut Rng| rng.range(1 << 20, 8 << 20);
            let seed = rng.next();
            let (req, res) = match rng.below(4) {
                0 => {
                    let up = mib(&mut rng);
                    let req = Req {
                        op: Op::Echo,
                        seed,
                        up,
                        down: up,
                    };
                    (req, duplex_echo(&mut s, req, &mut buf))
                }
                n => {
                    // Both ways, download only, upload only.
                    let up = if n == 2 { 0 } else { mib(&mut rng) };
                    let down = if n == 3 { 0 } else { mib(&mut rng) };
                    let req = Req {
                        op: Op::Gen,
                        seed,
                        up,
                        down,
                    };
                    (req, exchange(&mut s, req, &mut buf))
                }
            };
            if !ctx.record(Kind::Bulk, res, &snap, &mut server, &|| describe(&req)) {
                break;
            }
        }
    }
}

pub(crate) fn half_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Half, &mut rng) else {
            continue;
        };
        let req = Req {
            op: Op::Half,
            seed: rng.next(),
            up: rng.size(256 << 10),
            down: rng.size(256 << 10),
        };
        let res = exchange(&mut s, req, &mut buf);
        ctx.record(Kind::Half, res, &snap, &mut None, &|| describe(&req));
    }
}

pub(crate) fn idle_worker(ctx: &Ctx, seed: u64) {
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; CHUNK];
    ctx.sleep(Duration::from_millis(rng.range(0, 10_000)));
    while ctx.running() {
        let snap = ctx.snap();
        let Some(mut s) = ctx.connect(Kind::Idle, &mut rng) else {
            continue;
        };
        let req = small_req(&mut rng, 1 << 10);
        let mut server = None;
        let res = exchange(&mut s, req, &mut buf);
        if !ctx.record(Kind::Idle, res, &snap, &mut server, &|| describe(&req)) {
            continue;
        }
        // Now wait for pen to close it.
        let t0 = Instant::now();
        if s.set_read_timeout(Some(Duration::from_secs(1))).is_err() {
            continue;
        }
        while ctx.running() {
            let waited = t0.elapsed();
            let what = || format!("idle for {:.1} s", waited.as_secs_f64());
            match s.read(&mut buf[..1]) {
                Ok(0) => {
                    if ctx.stopped_since(&snap, server) {
                        ctx.stats.kinds[Kind::Idle as usize]
                            .broken
                            .fetch_add(1, Relaxed);
                    } else if waited.as_millis() as u64 + 1500 < IDLE_CHOICES[0] * 1000 {
                        let f = Fail::Io(ErrKind::ClosedEarly, "EOF".into());
                        ctx.fail(Kind::Idle, f, &snap, server, &what);
                    } else {
                        let ms = waited.as_millis() as u64;
                        ctx.stats.idle_closed.fetch_add(1, Relaxed);
                        ctx.stats.idle_min_ms.fetch_min(ms, Relaxed);
                        ctx.stats.idle_max_ms.fetch_max(ms, Relaxed);
                    }
                    break;
                }
                Ok(_) => {
                    let f = Fail::Corrupt("data on an idle connection".into());
                    ctx.fail(Kind::Idle, f, &snap, server, &what);
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if waited > IDLE_WAIT_MAX {
                        let f = Fail::Io(ErrKind::IdleNotClosed, "still open".into());
                        ctx.fail(Kind::Idle, f, &snap, server, &what);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ctx.fail(Kind::Idle, e.into(), &snap, server, &what);
                    break;
                }
            }
        }
    }
}
