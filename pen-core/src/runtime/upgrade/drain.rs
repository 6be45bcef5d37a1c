//! Graceful shutdown (SIGQUIT, `shutdown`): stop accepting, let the open connections finish
//! for `shutdown_timeout`, then stop. An upgrade ends the old pen the same way.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::UpgradeError;
use crate::engine::state::{ListenFds, Shared, WorkerMsg};
/// Stops accepting: the copies kept for an upgrade are closed and every worker closes its
/// listener (waiting, boundedly, until each has). New clients are refused from now on, unless
/// a new binary holds the same sockets.
pub(crate) fn stop_accepting(shared: &Shared) {
    shared.draining.store(true, Relaxed);
    *shared.handover.lock() = ListenFds::default();
    let mut acks = Vec::new();
    // A UDP worker has no TCP listener to close (it stops with the balancer, at once).
    for link in shared.workers.iter().filter(|_| !shared.udp) {
        let (tx, rx) = mpsc::channel();
        if link.send(WorkerMsg::Listen(None, Some(tx))) {
            acks.push(rx);
        }
    }
    for rx in acks {
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
}

/// Waits until the open connections are done or `timeout` has passed (the rest are then
/// closed), then stops the balancer. UDP has no connection to wait for: it stops at once.
pub(crate) fn drain(shared: &Shared, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !shared.udp && !shared.stopping.load(Relaxed) {
        let open = shared.active.load(Relaxed);
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "shutdown: {open} connection(s) still open after {} s; closing them",
                timeout.as_secs()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    shared.request_stop();
}

/// The pieces of a balancer that shutdown and upgrade need, shared with their thread.
pub(crate) fn start_drain(shared: Arc<Shared>, timeout: Duration) -> io::Result<()> {
    std::thread::Builder::new()
        .name("pen-drain".into())
        .spawn(move || {
            stop_accepting(&shared);
            drain(&shared, timeout);
        })
        .map(|_| ())
}

/// Graceful shutdown: see [`Balancer::shutdown`](crate::Balancer::shutdown).
pub(crate) fn shutdown(
    shared: &Arc<Shared>,
    timeout: Option<Duration>,
) -> Result<(), UpgradeError> {
    if shared.lifecycle_busy.swap(true, Relaxed) {
        return Err(UpgradeError::Busy);
    }
    let timeout = timeout.unwrap_or_else(|| shutdown_timeout(shared));
    start_drain(Arc::clone(shared), timeout).map_err(|source| {
        shared.lifecycle_busy.store(false, Relaxed);
        UpgradeError::Io {
            context: "cannot start the shutdown",
            source,
        }
    })
}

/// The `shutdown_timeout` setting.
pub(super) fn shutdown_timeout(shared: &Shared) -> Duration {
    Duration::from_secs(shared.settings.read().shutdown_timeout_secs)
}
