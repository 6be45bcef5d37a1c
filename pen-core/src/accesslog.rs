//! The access log (`-l`, `log`): one line per request chunk read from a client.

use crate::state::Shared;

/// The log target changed (`log FILE`, `no log`, reload): point the log writer at it.
pub(crate) fn retarget(shared: &Shared) {
    let _ = shared;
}
