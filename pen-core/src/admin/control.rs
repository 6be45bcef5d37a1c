//! The control socket: one command line per connection (only the first line counts), answered
//! as soon as bytes arrive, newline or not: C pen does one read and executes what came, so a
//! client that sends `mode` without a newline and waits gets its reply at once. The reply is
//! given by the runtime's controller (the same path as `-O` and config files), which this layer knows
//! only as an [`Execute`] callback. Served by [`crate::admin::oneshot`]: its own thread and
//! poller, so an idle or slow control client never stalls the relay.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::admin::oneshot::{Answer, Protocol};
use crate::domain::event::Worker;
use crate::engine::net::Listener;
use crate::engine::state::Shared;
use crate::error::ApplyError;

/// Longest accepted command line.
const MAX_LINE: usize = 16 * 1024;

/// Carries out one command line and returns its reply.
pub(crate) type Execute = Box<dyn Fn(&str) -> Result<String, ApplyError> + Send>;

/// The penctl protocol: a line in, the reply out, then close.
struct Control(Execute);

impl Protocol for Control {
    const NAME: &'static str = "control socket";
    const WORKER: Worker = Worker::ControlSocket;
    const MAX_INPUT: usize = MAX_LINE;
    const LINGER: bool = false;

    fn answer(&self, shared: &Shared, input: &[u8], eof: bool) -> Answer {
        let end = match input.iter().position(|&b| b == b'\n') {
            Some(end) => end,
            None if input.len() > MAX_LINE => {
                return Answer::Reply(
                    format!("error: command line longer than {MAX_LINE} bytes\n").into_bytes(),
                )
            }
            // Nothing yet (a wake-up without data): wait for the command.
            None if input.is_empty() && !eof => return Answer::Wait,
            None if input.is_empty() => return Answer::Leave, // connected and left
            // What came in the read, as C pen: the rest of a line sent later is not waited for.
            None => input.len(),
        };
        let line = String::from_utf8_lossy(input.get(..end).unwrap_or_default());
        shared.counters.control_commands.fetch_add(1, Relaxed);
        let reply = match (self.0)(&line) {
            Ok(r) => r,
            Err(e) => {
                shared.counters.control_errors.fetch_add(1, Relaxed);
                format!("error: {e}\n")
            }
        };
        Answer::Reply(reply.into_bytes())
    }
}

/// Serves the control socket until the balancer stops.
pub(crate) fn serve(shared: Arc<Shared>, listener: Listener, execute: Execute) {
    crate::admin::oneshot::serve(shared, listener, Control(execute));
}
