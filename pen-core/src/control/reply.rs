//! The reply to a control command: the text C pen sends back on the control socket.

use std::fmt;

/// What a command answers: empty (most changes), or lines each ending with a newline (queries
/// such as `servers`, `mode`, `status`), exactly as C pen sends them to penctl.
///
/// ```
/// use pen_core::Reply;
///
/// let reply = Reply::new("1\n");
/// assert_eq!(reply.text(), "1\n");
/// assert_eq!(reply.lines().collect::<Vec<_>>(), ["1"]);
/// assert!(Reply::default().is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Reply {
    text: String,
}

impl Reply {
    /// A reply with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Reply { text: text.into() }
    }

    /// The text, as penctl would print it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.text
    }

    /// Whether the command answered nothing (a change that succeeded, mostly).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The reply's lines, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for Reply {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<Reply> for String {
    fn from(r: Reply) -> String {
        r.text
    }
}
