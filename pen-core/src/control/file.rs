//! Config files (`-F`, `include`): penctl commands one per line, `#` comment lines. A file is
//! applied to a [`Model`] line by line and committed only if every line succeeded, so a file is
//! applied as a whole or not at all. Errors name `FILE:LINE`.

use super::command::{Command, SslCommand};
use super::host::Host;
use super::model::{Model, Pending};
use crate::error::ApplyError;

/// Deepest `include` nesting (a file including itself must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Applies the commands of `file` to `model` (the `include` command, and whole config files).
pub(crate) fn include<H: Host>(
    host: &H,
    model: &mut Model,
    pending: &mut Pending<H>,
    file: &str,
    depth: usize,
) -> Result<String, ApplyError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ApplyError::Invalid {
            token: file.to_string(),
            reason: format!("includes nested more than {MAX_INCLUDE_DEPTH} deep"),
        });
    }
    let text = host.read_config(file)?;
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
            | Command::ReloadReset
            | Command::Write(_)
            | Command::Ssl(SslCommand::Reload, _) => {
                return Err(at(ApplyError::Invalid {
                    token: line.to_string(),
                    reason: "cannot be used in a config file".to_string(),
                }))
            }
            c if Model::is_config(&c) => {
                let reply = model.apply(host, c, pending, depth + 1).map_err(at)?;
                out.push_str(&reply);
            }
            _ => {} // queries (`servers`, `mode`, ...) have nothing to do here
        }
    }
    Ok(out)
}
