//! What a check does ([`CheckSpec`], the argument of `server N check ...`): its grammar
//! ([`parse_spec`]), the TEXT escapes and how it is written back.

use std::fmt;

/// Longest TEXT of `send`/`expect` and longest HTTP path or regular expression, in bytes.
pub const CHECK_TEXT_MAX: usize = 1024;
/// Longest `host NAME` of an HTTP check, in bytes (a DNS name is at most 253).
pub const CHECK_HOST_MAX: usize = 255;

/// What a server's check expects to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Nothing: a completed send (or connect) passes.
    Nothing,
    /// These bytes somewhere in the answer.
    Text(Vec<u8>),
    /// A regular expression (`regex` crate syntax, one word as written) found in the answer.
    Regex(String),
}

/// One server's active check (`server N check KIND ...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    /// `connect`: the TCP connect succeeds.
    Connect,
    /// `send TEXT expect TEXT`, `send TEXT expect_re RE`, `expect TEXT` (a banner), `send TEXT`.
    Send {
        /// Bytes written after the connect (may be empty: a banner check).
        send: Vec<u8>,
        /// What the answer must contain.
        expect: Expect,
    },
    /// `http PATH [LO[-HI]] [host NAME]`: `GET PATH` with `Host:` NAME (by default the
    /// server's address); the status line's code must be within `lo..=hi` (default 200-399).
    Http {
        /// Request path (no whitespace).
        path: String,
        /// Lowest accepted status.
        lo: u16,
        /// Highest accepted status.
        hi: u16,
        /// The `Host:` header's value; `None`: the server's `address:port`.
        host: Option<String>,
    },
    /// `tls`: a TLS handshake completes (the certificate is not verified).
    Tls,
    /// `agent PORT`: connect to PORT on the server's address and read one line (see
    /// [`parse_agent_reply`](super::parse_agent_reply)).
    Agent {
        /// The agent's port.
        port: u16,
    },
}

/// Why a check specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    /// A word that is not what the grammar expects here.
    #[error("unexpected `{token}`: expected {expected}")]
    Unexpected {
        /// The word.
        token: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The specification stopped early.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A TEXT with a bad escape or over [`CHECK_TEXT_MAX`] bytes.
    #[error("bad text `{token}`: {reason}")]
    Text {
        /// The word.
        token: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Decodes a TEXT word: `\r \n \t \s (space) \\ \xHH`, other bytes as they are.
///
/// # Errors
/// [`CheckSpecError::Text`] for an unknown or short escape, or a text over [`CHECK_TEXT_MAX`].
pub fn unescape(word: &str) -> Result<Vec<u8>, CheckSpecError> {
    let bad = |reason| CheckSpecError::Text {
        token: word.to_string(),
        reason,
    };
    let mut out = Vec::with_capacity(word.len());
    let mut bytes = word.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b's') => b' ',
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
                match (hex(bytes.next()), hex(bytes.next())) {
                    (Some(h), Some(l)) => u8::try_from(h * 16 + l).map_err(|_| bad("bad \\x"))?,
                    _ => return Err(bad("expected two hex digits after \\x")),
                }
            }
            _ => return Err(bad("expected one of \\r \\n \\t \\s \\\\ \\xHH")),
        });
    }
    if out.len() > CHECK_TEXT_MAX {
        return Err(bad("longer than 1024 bytes"));
    }
    Ok(out)
}

/// Encodes bytes as one TEXT word that [`unescape`] reads back.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b' ' => out.push_str("\\s"),
            b'\\' => out.push_str("\\\\"),
            // `#` would start a comment at the front of a word.
            0x21..=0x7e if b != b'#' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Parses `connect`, `send TEXT [expect TEXT | expect_re RE]`, `expect TEXT`,
/// `http PATH [LO[-HI]] [host NAME]`, `tls`, `agent PORT` from the words after `check`, taking only the
/// words it needs from `words`. `off` (no check) is the caller's.
///
/// # Errors
/// [`CheckSpecError`] naming the word and what was expected.
pub fn parse_spec<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<CheckSpec, CheckSpecError> {
    const KIND: &str = "connect, send, expect, http, tls, agent or off";
    let kind = words.next().ok_or(CheckSpecError::Missing(KIND))?;
    Ok(match kind {
        "connect" => CheckSpec::Connect,
        "tls" => CheckSpec::Tls,
        "agent" => {
            let p = words
                .next()
                .ok_or(CheckSpecError::Missing("an agent port"))?;
            match p.parse::<u16>() {
                Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                    CheckSpec::Agent { port }
                }
                _ => {
                    return Err(CheckSpecError::Unexpected {
                        token: p.to_string(),
                        expected: "an agent port 1-65535",
                    })
                }
            }
        }
        "http" => {
            let path = words
                .next()
                .ok_or(CheckSpecError::Missing("an HTTP path"))?;
            if !path.starts_with('/') || path.len() > CHECK_TEXT_MAX {
                return Err(CheckSpecError::Unexpected {
                    token: path.to_string(),
                    expected: "an HTTP path starting with / (up to 1024 bytes)",
                });
            }
            let (mut lo, mut hi) = (200, 399);
            if let Some(range) = words.peek().copied().and_then(status_range) {
                words.next();
                (lo, hi) = range;
            }
            let mut host = None;
            if words.peek() == Some(&"host") {
                words.next();
                let name = words.next().ok_or(CheckSpecError::Missing("a host NAME"))?;
                host = Some(host_name(name)?);
            }
            CheckSpec::Http {
                path: path.to_string(),
                lo,
                hi,
                host,
            }
        }
        "send" => {
            let send = unescape(
                words
                    .next()
                    .ok_or(CheckSpecError::Missing("a TEXT to send"))?,
            )?;
            let expect = match words.peek().copied() {
                Some("expect" | "expect_re") => parse_expect(words)?,
                _ => Expect::Nothing,
            };
            CheckSpec::Send { send, expect }
        }
        "expect" | "expect_re" => CheckSpec::Send {
            send: Vec::new(),
            expect: {
                let text = words
                    .next()
                    .ok_or(CheckSpecError::Missing("a TEXT to expect"))?;
                expectation(kind, text)?
            },
        },
        other => {
            return Err(CheckSpecError::Unexpected {
                token: other.to_string(),
                expected: KIND,
            })
        }
    })
}

fn parse_expect<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<Expect, CheckSpecError> {
    let key = words.next().unwrap_or_default();
    let text = words
        .next()
        .ok_or(CheckSpecError::Missing("a TEXT to expect"))?;
    expectation(key, text)
}

fn expectation(key: &str, text: &str) -> Result<Expect, CheckSpecError> {
    if key == "expect_re" {
        if text.starts_with('#') {
            // It would read back as a comment: `\#` means the same to the regex.
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "a regular expression starting with # (write \\#)",
            });
        }
        if text.len() > CHECK_TEXT_MAX {
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "longer than 1024 bytes",
            });
        }
        // Taken as it is: the regex syntax has its own escapes (`\r`, `\x20`, `\s`).
        let re = text.to_string();
        if regex::bytes::RegexBuilder::new(&re)
            .size_limit(1 << 20)
            .build()
            .is_err()
        {
            return Err(CheckSpecError::Text {
                token: text.to_string(),
                reason: "not a regular expression (regex crate syntax, up to 1 MiB compiled)",
            });
        }
        Ok(Expect::Regex(re))
    } else {
        Ok(Expect::Text(unescape(text)?))
    }
}

/// A `host NAME` for the `Host:` header: a DNS name or address, optionally with `:PORT`
/// (letters, digits, `-._:[]`, up to [`CHECK_HOST_MAX`] bytes), so that it can neither end
/// the header nor read back as a comment.
fn host_name(name: &str) -> Result<String, CheckSpecError> {
    let ok = !name.is_empty()
        && name.len() <= CHECK_HOST_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(CheckSpecError::Text {
            token: name.to_string(),
            reason: "a host name (letters, digits, - . _ : [ ], up to 255 bytes)",
        })
    }
}

/// `LO` or `LO-HI` with 100 <= LO <= HI <= 599; `None` for any other word.
pub fn status_range(word: &str) -> Option<(u16, u16)> {
    let code = |s: &str| {
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .filter(|c| (100..=599).contains(c))
    };
    let (lo, hi) = match word.split_once('-') {
        Some((l, h)) => (code(l)?, code(h)?),
        None => (code(word)?, code(word)?),
    };
    (lo <= hi).then_some((lo, hi))
}

impl fmt::Display for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSpec::Connect => f.write_str("connect"),
            CheckSpec::Tls => f.write_str("tls"),
            CheckSpec::Agent { port } => write!(f, "agent {port}"),
            CheckSpec::Http { path, lo, hi, host } => {
                if lo == hi {
                    write!(f, "http {path} {lo}")?;
                } else {
                    write!(f, "http {path} {lo}-{hi}")?;
                }
                match host {
                    Some(h) => write!(f, " host {h}"),
                    None => Ok(()),
                }
            }
            CheckSpec::Send { send, expect } => {
                let exp = match expect {
                    Expect::Nothing => String::new(),
                    Expect::Text(t) => format!("expect {}", escape(t)),
                    Expect::Regex(r) => format!("expect_re {r}"),
                };
                match (send.is_empty(), exp.is_empty()) {
                    (true, false) => f.write_str(&exp),
                    // Not made by the parser (a word is never empty): a connect check in effect.
                    (true, true) => f.write_str("connect"),
                    (false, true) => write!(f, "send {}", escape(send)),
                    (false, false) => write!(f, "send {} {exp}", escape(send)),
                }
            }
        }
    }
}
