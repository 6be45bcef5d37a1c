//! For the `control_level` fuzz target: the configuration model's own view of which commands
//! change the configuration, an oracle independent of [`crate::control::level`].

use crate::control::model::Model;
use crate::control::Command;

/// Whether `cmd` changes the configuration (goes through the configuration model).
pub fn changes_configuration(cmd: &Command) -> bool {
    Model::is_config(cmd)
}
