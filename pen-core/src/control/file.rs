//! Config files (`-F`, `include`): penctl commands one per line, `#` comment lines. A file is
//! applied to a [`Model`] line by line and committed only if every line succeeded, so a file is
//! applied as a whole or not at all. Errors name `FILE:LINE`.

use std::path::Path;

use super::command::{Command, SslCommand};
use super::model::{Model, Pending};
use crate::engine::state::Shared;
use crate::error::ApplyError;

/// Deepest `include` nesting (a file including itself must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Applies the commands of `file` to `model` (the `include` command, and whole config files).
pub(crate) fn include(
    shared: &Shared,
    model: &mut Model,
    pending: &mut Pending,
    file: &str,
    depth: usize,
) -> Result<String, ApplyError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ApplyError::Invalid {
            token: file.to_string(),
            reason: format!("includes nested more than {MAX_INCLUDE_DEPTH} deep"),
        });
    }
    let text = std::fs::read_to_string(file).map_err(|source| ApplyError::Io {
        context: format!("cannot read config file '{file}'"),
        source,
    })?;
    let mut out = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: ApplyError| ApplyError::At {
            file: file.to_string(),
            line: i + 1,
            source: Box::new(e),
        };
        let cmd = super::parse_line(line).map_err(|e| at(e.into()))?;
        match cmd {
            // Actions make no sense while loading a configuration.
            Command::Close(_)
            | Command::Exit
            | Command::Write(_)
            | Command::Ssl(SslCommand::Reload, _) => {
                return Err(at(ApplyError::Invalid {
                    token: line.to_string(),
                    reason: "cannot be used in a config file".to_string(),
                }))
            }
            c if Model::is_config(&c) => {
                let reply = model.apply(shared, c, pending, depth + 1).map_err(at)?;
                out.push_str(&reply);
            }
            _ => {} // queries (`servers`, `mode`, ...) have nothing to do here
        }
    }
    Ok(out)
}

/// Applies `file` at start, after the command line and `-O`; the configuration before it is
/// kept as the base that reloads start from.
pub(crate) fn apply_file(shared: &Shared, file: &Path) -> Result<(), ApplyError> {
    let _guard = shared.config_lock.lock();
    let base = Model::snapshot(shared);
    let mut model = base.clone();
    let mut pending = Pending::default();
    include(shared, &mut model, &mut pending, &file.to_string_lossy(), 0)?;
    model.prepare(shared, &mut pending)?;
    model.commit(shared, pending);
    *shared.base.lock() = Some(base);
    Ok(())
}

/// Re-reads the `-F` file: the running configuration becomes the command line plus the new
/// file, applied as a diff, or, on any error, stays exactly as it was.
pub(crate) fn reload(shared: &Shared) -> Result<(), ApplyError> {
    let Some(file) = shared.config_file.clone() else {
        return Err(ApplyError::Invalid {
            token: "reload".to_string(),
            reason: "no config file (-F) to reload".to_string(),
        });
    };
    let _guard = shared.config_lock.lock();
    let mut model = match shared.base.lock().clone() {
        Some(m) => m,
        None => Model::snapshot(shared),
    };
    let mut pending = Pending::default();
    include(shared, &mut model, &mut pending, &file.to_string_lossy(), 0)?;
    model.prepare(shared, &mut pending)?;
    model.commit(shared, pending);
    Ok(())
}
