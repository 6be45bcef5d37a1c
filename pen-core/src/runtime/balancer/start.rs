//! Starting a bound balancer: the worker threads (TCP, io_uring or UDP), the control and
//! metrics threads, then the checker, the resolver and the watcher.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{io_err, Balancer, Bound};
use crate::domain::event::{ConfigSource, Worker};
use crate::engine::events::EventHub;
use crate::engine::reactor::Worker as Relay;
use crate::engine::state::Shared;
use crate::error::StartError;

impl Bound {
    /// Opens the access log unless [`Bound::open_log`] did, then starts the worker threads, the
    /// control thread and the metrics listener.
    ///
    /// # Errors
    /// [`StartError`] if the log cannot be opened or a thread cannot be started.
    pub fn start(mut self) -> Result<Balancer, StartError> {
        if !self.log_open {
            self.open_log()?;
        }
        let Bound {
            shared,
            ctl,
            pid_file,
            ends,
            listeners,
            udp,
            control,
            metrics,
            log_open: _,
            engine,
        } = self;
        // (Logs why not when the epoll engine runs instead; always so in builds without it.)
        #[cfg_attr(
            not(all(target_os = "linux", not(feature = "portable-poller"))),
            allow(unused_variables)
        )]
        let uring = use_uring(engine, &shared);
        let mut threads = Vec::with_capacity(ends.len() + 2);
        let mut udp = udp.into_iter();
        for (i, ((poller, rx), l)) in ends.into_iter().zip(listeners).enumerate() {
            if let Some(sock) = udp.next() {
                let sh = Arc::clone(&shared);
                let worker = crate::engine::udp::UdpWorker::new(i, sh, poller, rx, sock)
                    .map_err(io_err("cannot start UDP worker"))?;
                let events = Arc::clone(&shared.events);
                let t = std::thread::Builder::new()
                    .name(format!("pen-udp-{i}"))
                    .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                    .map_err(io_err("cannot start worker thread"))?;
                threads.push(t);
                continue;
            }
            #[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
            if uring {
                let sh = Arc::clone(&shared);
                let worker = crate::engine::uring::UringWorker::new(i, sh, poller, rx, l)
                    .map_err(io_err("cannot start io_uring worker"))?;
                let events = Arc::clone(&shared.events);
                let t = std::thread::Builder::new()
                    .name(format!("pen-uring-{i}"))
                    .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                    .map_err(io_err("cannot start worker thread"))?;
                threads.push(t);
                continue;
            }
            // TCP, or a UDP worker's place where the platform gave it no socket of its own
            // (it idles, like the workers without a listener behind a Unix socket).
            let worker = Relay::new(i, Arc::clone(&shared), poller, rx, l)
                .map_err(io_err("cannot start worker"))?;
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name(format!("pen-worker-{i}"))
                .spawn(move || guarded(&events, Worker::Relay(i), || worker.run()))
                .map_err(io_err("cannot start worker thread"))?;
            threads.push(t);
        }
        if let Some((l, level)) = control {
            let sh = Arc::clone(&shared);
            let c = Arc::clone(&ctl);
            let exec: crate::admin::control::Execute =
                Box::new(move |line| c.apply_line(line, ConfigSource::ControlSocket));
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name("pen-control".into())
                .spawn(move || {
                    guarded(&events, Worker::ControlSocket, || {
                        crate::admin::control::serve(sh, l, exec, level);
                    });
                })
                .map_err(io_err("cannot start control thread"))?;
            threads.push(t);
        }
        if let Some(l) = metrics {
            let sh = Arc::clone(&shared);
            let events = Arc::clone(&shared.events);
            let t = std::thread::Builder::new()
                .name("pen-metrics".into())
                .spawn(move || {
                    guarded(&events, Worker::Metrics, || {
                        crate::admin::metrics_http::serve_http(sh, l);
                    });
                })
                .map_err(io_err("cannot start metrics thread"))?;
            threads.push(t);
        }
        // From now on the workers answer messages: `listen` may wait for them.
        shared.running.store(true, Relaxed);
        // The active health checker (runtime/checker.rs): a thread only while a check exists.
        ctl.checker.ensure(&shared);
        // The resolver thread (runtime/dns): only while a server has a host name.
        ctl.resolver.ensure(&shared);
        // Subscribed through the Config: blacklistings running out are watched from now on.
        crate::runtime::watch::start(&shared);
        Ok(Balancer {
            shared,
            ctl,
            pid_file,
            threads: Mutex::new(threads),
        })
    }
}

/// Whether the TCP workers run the io_uring engine: when it is asked for, the kernel has it,
/// and nothing it does not do is on (else the epoll engine runs, and a log line says why).
fn use_uring(engine: crate::runtime::config::EngineKind, shared: &Shared) -> bool {
    if engine != crate::runtime::config::EngineKind::Uring {
        return false;
    }
    let why: Option<String> = if shared.udp {
        Some("UDP (-U)".into())
    } else if shared.tls.is_some() {
        Some("TLS (-E)".into())
    } else {
        uring_unsupported(shared)
    };
    match why {
        Some(why) => {
            log::warn!(
                "--engine uring: {why} is on, which the io_uring engine does not do: using epoll"
            );
            false
        }
        None => true,
    }
}

#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
fn uring_unsupported(shared: &Shared) -> Option<String> {
    // One lock at a time (never the settings' while taking the servers').
    let proxy = shared.servers.read().sends_proxy();
    let settings = shared.settings.read();
    if let Some(why) = crate::engine::uring::unsupported(&settings, shared.log.enabled(), proxy) {
        return Some(why.to_string());
    }
    crate::sys::uring::probe()
        .err()
        .map(|e| format!("io_uring ({e})"))
}

#[cfg(not(all(target_os = "linux", not(feature = "portable-poller"))))]
fn uring_unsupported(_: &Shared) -> Option<String> {
    Some("this build (io_uring needs Linux and the epoll poller)".into())
}

/// Runs the body of a balancer thread. Should it panic (a bug), the panic hook has printed the
/// message; the thread's end is reported as a worker error and the others carry on.
fn guarded(events: &EventHub, worker: Worker, body: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        events.worker_error(worker, &format_args!("thread stopped by a panic: {msg}"));
    }
}
