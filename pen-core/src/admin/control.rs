//! The control socket: one command line per connection (only the first line counts), answered
//! as soon as bytes arrive, newline or not: C pen does one read and executes what came, so a
//! client that sends `mode` without a newline and waits gets its reply at once. The reply is
//! given by the runtime's controller (the same path as `-O` and config files), which this layer knows
//! only as an [`Execute`] callback. Served by [`crate::admin::oneshot`]: its own thread and
//! poller, so an idle or slow control client never stalls the relay.
//!
//! Each endpoint has an access [`Level`], set at start: a command that needs a higher one is
//! not executed and gets the one-line reply of [`crate::control::level::refusal`], e.g.
//! `Command 'write' needs level admin; this control socket is at level operate`. A line that
//! does not parse goes on to the controller, which replies with the parse error as before.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::admin::oneshot::{Answer, Protocol};
use crate::control::level::{refusal, required_level, Level};
use crate::domain::event::Worker;
use crate::domain::settings::Settings;
use crate::engine::net::Listener;
use crate::engine::state::Shared;
use crate::error::ApplyError;

/// Longest accepted command line.
const MAX_LINE: usize = 16 * 1024;

/// Carries out one command line and returns its reply.
pub(crate) type Execute = Box<dyn Fn(&str) -> Result<String, ApplyError> + Send>;

/// The penctl protocol: a line in, the reply out, then close; at most `level`'s commands.
struct Control {
    execute: Execute,
    level: Level,
}

impl Control {
    /// The reply to `line`: the refusal when it needs a higher level than this endpoint's.
    fn run(&self, line: &str) -> Result<String, String> {
        if let Ok(cmd) = crate::control::parse_line(line) {
            let needed = required_level(&cmd);
            if needed > self.level {
                return Err(refusal(&command_name(line), needed, self.level));
            }
        }
        (self.execute)(line).map_err(|e| format!("error: {e}\n"))
    }
}

/// The command's name for a refusal: its first word, with the second after `no`.
fn command_name(line: &str) -> String {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next()) {
        (Some("no"), Some(what)) => format!("no {what}"),
        (Some(name), _) => name.to_string(),
        (None, _) => String::new(),
    }
}

impl Protocol for Control {
    const NAME: &'static str = "control socket";
    const WORKER: Worker = Worker::ControlSocket;
    const MAX_INPUT: usize = MAX_LINE;
    const LINGER: bool = false;

    fn acl(&self, settings: &Settings) -> u8 {
        settings.control_acl
    }

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
        let reply = match self.run(&line) {
            Ok(r) => r,
            Err(e) => {
                shared.counters.control_errors.fetch_add(1, Relaxed);
                e
            }
        };
        Answer::Reply(reply.into_bytes())
    }
}

/// Serves the control socket at `level` until the balancer stops.
pub(crate) fn serve(shared: Arc<Shared>, listener: Listener, execute: Execute, level: Level) {
    crate::admin::oneshot::serve(shared, listener, Control { execute, level });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(level: Level) -> Control {
        Control {
            execute: Box::new(|line| Ok(format!("ran {line}\n"))),
            level,
        }
    }

    #[test]
    fn refuses_above_its_level_and_runs_the_rest() {
        let op = endpoint(Level::Operate);
        assert_eq!(
            op.run("write /tmp/x"),
            Err(
                "Command 'write' needs level admin; this control socket is at level operate\n"
                    .into()
            )
        );
        assert_eq!(op.run("server 0 max 3"), Ok("ran server 0 max 3\n".into()));
        let read = endpoint(Level::Read);
        assert_eq!(
            read.run("no hash"),
            Err(
                "Command 'no hash' needs level operate; this control socket is at level read\n"
                    .into()
            )
        );
        assert_eq!(read.run("servers"), Ok("ran servers\n".into()));
        // Not a command: the controller gives the parse error.
        assert_eq!(read.run("bogus"), Ok("ran bogus\n".into()));
        assert_eq!(endpoint(Level::Admin).run("exit"), Ok("ran exit\n".into()));
    }
}
