//! Parsing one penctl line into a [`Command`] (pure; fuzzed).

use super::command::Command;
use crate::error::ParseError;

/// Parses one control line (words separated by whitespace; a trailing newline is ignored).
///
/// # Errors
/// [`ParseError`] naming the bad token and what was expected.
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    let first = line.split_whitespace().next().ok_or(ParseError::Empty)?;
    Err(ParseError::UnknownCommand(first.to_string()))
}
