//! The running balancer: start it from a [`Config`], apply control commands, stop it.

use crate::config::Config;
use crate::error::{ApplyError, StartError};

/// A running balancer. Dropping it does not stop it; call [`Balancer::stop`].
pub struct Balancer {
    _config: Config,
}

impl Balancer {
    /// Binds the listener (and control socket), starts the workers and runs `-O` commands.
    ///
    /// # Errors
    /// [`StartError`] if a socket cannot be bound or a start-up command fails.
    pub fn start(config: Config) -> Result<Balancer, StartError> {
        Ok(Balancer { _config: config })
    }

    /// Applies one control line and returns the reply text (ending with a newline, or empty).
    ///
    /// # Errors
    /// [`ApplyError`] naming the bad token; nothing changes.
    pub fn apply(&self, line: &str) -> Result<String, ApplyError> {
        crate::control::parse_line(line)?;
        Ok(String::new())
    }

    /// Blocks until the balancer stops (the `exit` command, or [`Balancer::stop`]).
    pub fn wait(&self) {}

    /// Stops accepting, closes every connection and joins the workers.
    pub fn stop(&self) {}
}
