//! The event hub: where the engine, the admin servers and the runtime report
//! [`Event`]s, and where subscribers get them.
//!
//! Cheap when nobody listens: [`EventHub::emit`] takes a closure that builds the event, called
//! only when there is a subscriber (one atomic load otherwise, no allocation). Never blocks:
//! each subscriber has a bounded queue, filled with `try_send`; an event that does not fit is
//! dropped for that subscriber and counted ([`EventHub::dropped`]); a subscriber that has gone
//! away is forgotten.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use parking_lot::Mutex;

use crate::domain::event::{Event, Worker};

/// Events a subscriber's queue holds before further ones are dropped for it.
pub(crate) const QUEUE: usize = 1024;

/// The subscribers and the drop count.
#[derive(Default)]
pub(crate) struct EventHub {
    /// Whether there is at least one subscriber (read on every emit, without the lock).
    wanted: AtomicBool,
    subscribers: Mutex<Subscribers>,
    /// Events not delivered because a subscriber's queue was full.
    dropped: AtomicU64,
}

#[derive(Default)]
struct Subscribers {
    senders: Vec<SyncSender<Event>>,
    /// Whether the runtime's blacklist watcher runs (see [`EventHub::claim_watcher`]).
    watching: bool,
}

impl fmt::Debug for EventHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.subscribers.lock().senders.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl EventHub {
    /// A new subscriber: its receiving end, with a queue of [`QUEUE`] events.
    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        self.subscribers.lock().senders.push(tx);
        self.wanted.store(true, Relaxed);
        rx
    }

    /// Whether anyone listens: build an event only then.
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.load(Relaxed)
    }

    /// Sends the event `make` builds to every subscriber, if there is one. Never blocks.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if !self.wanted() {
            return;
        }
        let event = make();
        let mut subs = self.subscribers.lock();
        subs.senders.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        if subs.senders.is_empty() {
            self.wanted.store(false, Relaxed);
        }
    }

    /// Reports an error of a balancer thread.
    pub(crate) fn worker_error(&self, worker: Worker, error: &dyn fmt::Display) {
        self.emit(|| Event::WorkerError {
            worker,
            error: error.to_string(),
        });
    }

    /// Events dropped so far because a subscriber's queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Whether the caller should start the blacklist watcher: true once, when there are
    /// subscribers and no watcher yet.
    pub(crate) fn claim_watcher(&self) -> bool {
        let mut subs = self.subscribers.lock();
        if subs.senders.is_empty() || subs.watching {
            return false;
        }
        subs.watching = true;
        true
    }

    /// The watcher could not start after all (or has stopped): the next subscription may try.
    pub(crate) fn release_watcher(&self) {
        self.subscribers.lock().watching = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::ConfigSource;

    fn applied(n: usize) -> Event {
        Event::ConfigApplied {
            source: ConfigSource::Api,
            what: n.to_string(),
        }
    }

    #[test]
    fn nothing_is_built_without_a_subscriber() {
        let hub = EventHub::default();
        hub.emit(|| panic!("built with nobody listening"));
        assert!(!hub.claim_watcher());
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_gone_subscriber_is_forgotten() {
        let hub = EventHub::default();
        let slow = hub.subscribe();
        let fast = hub.subscribe();
        for n in 0..QUEUE + 5 {
            hub.emit(|| applied(n));
            assert_eq!(fast.try_recv().ok(), Some(applied(n)));
        }
        assert_eq!(hub.dropped(), 5);
        assert_eq!(slow.try_iter().count(), QUEUE);
        drop(slow);
        drop(fast);
        hub.emit(|| applied(0));
        assert!(!hub.wanted(), "every subscriber gone");
        hub.emit(|| panic!("built with nobody listening"));
    }

    #[test]
    fn one_watcher_while_subscribed() {
        let hub = EventHub::default();
        assert!(!hub.claim_watcher(), "no subscriber yet");
        let _rx = hub.subscribe();
        assert!(hub.claim_watcher());
        assert!(!hub.claim_watcher());
        hub.release_watcher();
        assert!(hub.claim_watcher());
    }
}
