//! A sans-IO reader of the server's first response status, for a connection whose first
//! request asked for a tunnel (`Upgrade`, `CONNECT`): it decides whether the server switched
//! (`101 Switching Protocols` to an upgrade, any `2xx` to a `CONNECT`) or declined.
//!
//! It only counts and never copies: interim `1xx` responses (`100 Continue`, `103 Early
//! Hints`) are stepped over to their blank line, and the first final status decides. Anything
//! that is not an HTTP/1.x status line declines: the connection stays in HTTP mode, which is
//! the safe side.

/// What the request asked the server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// An `Upgrade` request: `101` switches.
    Upgrade,
    /// A `CONNECT` request: any `2xx` switches.
    Connect,
}

/// Where the reader is in the response stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Matching `HTTP/1.` (this many bytes matched).
    Prefix(u8),
    /// The minor version digit.
    Minor,
    /// The space after the version.
    Space,
    /// The status code's digits (how many so far, the value so far).
    Code(u8, u16),
    /// Inside an interim response's head; `lf` is set right after a line end (so a second one
    /// ends the head), `cr` after a CR that may start the blank line's CRLF.
    Interim { lf: bool, cr: bool },
}

/// Reads the server's first bytes until the status of its first final response is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnswerReader {
    ask: Ask,
    step: Step,
}

impl AnswerReader {
    /// A reader for the answer to `ask`.
    pub(crate) fn new(ask: Ask) -> Self {
        AnswerReader {
            ask,
            step: Step::Prefix(0),
        }
    }

    /// Reads the next response bytes: `Some(true)` when the server switched protocols,
    /// `Some(false)` when it declined, `None` while it cannot tell yet.
    pub(crate) fn read(&mut self, bytes: &[u8]) -> Option<bool> {
        bytes.iter().find_map(|&b| self.byte(b))
    }

    /// One byte of the response; the decision, if this byte makes it.
    fn byte(&mut self, b: u8) -> Option<bool> {
        const PREFIX: &[u8] = b"HTTP/1.";
        self.step = match self.step {
            Step::Prefix(n) => match PREFIX.get(usize::from(n)) {
                Some(&want) if want == b => {
                    if usize::from(n) + 1 == PREFIX.len() {
                        Step::Minor
                    } else {
                        Step::Prefix(n + 1)
                    }
                }
                _ => return Some(false),
            },
            Step::Minor if b.is_ascii_digit() => Step::Space,
            Step::Space if b == b' ' => Step::Code(0, 0),
            Step::Code(n, v) if b.is_ascii_digit() => {
                let v = v * 10 + u16::from(b - b'0');
                if n < 2 {
                    Step::Code(n + 1, v)
                } else if (100..200).contains(&v) && v != 101 {
                    Step::Interim {
                        lf: false,
                        cr: false,
                    }
                } else {
                    return Some(match self.ask {
                        Ask::Upgrade => v == 101,
                        Ask::Connect => (200..300).contains(&v),
                    });
                }
            }
            Step::Interim { lf, cr } => match b {
                b'\n' if lf || cr => Step::Prefix(0),
                b'\n' => Step::Interim {
                    lf: true,
                    cr: false,
                },
                b'\r' if lf => Step::Interim {
                    lf: false,
                    cr: true,
                },
                _ => Step::Interim {
                    lf: false,
                    cr: false,
                },
            },
            Step::Minor | Step::Space | Step::Code(..) => return Some(false),
        };
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision for `response` fed `step` bytes at a time.
    fn decide(ask: Ask, response: &[u8], step: usize) -> Option<bool> {
        let mut r = AnswerReader::new(ask);
        response.chunks(step).find_map(|c| r.read(c))
    }

    #[test]
    fn the_first_final_status_decides_however_it_is_split() {
        let cases: &[(Ask, &[u8], Option<bool>)] = &[
            (Ask::Upgrade, b"HTTP/1.1 101 Switching Protocols\r\n\r\n", Some(true)),
            (Ask::Upgrade, b"HTTP/1.1 200 OK\r\n\r\n", Some(false)),
            (Ask::Upgrade, b"HTTP/1.1 426 Upgrade Required\r\n", Some(false)),
            (Ask::Upgrade, b"HTTP/1.0 101 x\r\n", Some(true)),
            (
                Ask::Upgrade,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 101 S\r\n",
                Some(true),
            ),
            (Ask::Upgrade, b"HTTP/1.1 100 Continue\n\nHTTP/1.1 400 B\n", Some(false)),
            (Ask::Upgrade, b"HTTP/1.1 10", None),
            (Ask::Upgrade, b"HTTP/2 101\r\n", Some(false)),
            (Ask::Upgrade, b"SSH-2.0\r\n", Some(false)),
            (Ask::Upgrade, b"HTTP/1.1  101\r\n", Some(false)),
            (Ask::Connect, b"HTTP/1.1 200 Connection established\r\n\r\n", Some(true)),
            (Ask::Connect, b"HTTP/1.1 204 x\r\n\r\n", Some(true)),
            (Ask::Connect, b"HTTP/1.1 101 x\r\n\r\n", Some(false)),
            (Ask::Connect, b"HTTP/1.1 407 Auth\r\n\r\n", Some(false)),
        ];
        for &(ask, resp, want) in cases {
            for step in 1..=resp.len() {
                assert_eq!(decide(ask, resp, step), want, "{resp:?} step {step}");
            }
        }
    }

    #[test]
    fn a_header_line_inside_an_interim_response_does_not_end_it() {
        // "\r\n" then "X: 1\r\n" is not a blank line: the 101 inside a header value is no status.
        let resp = b"HTTP/1.1 100 Continue\r\nX: HTTP/1.1 101 y\r\n\r\nHTTP/1.1 403 No\r\n";
        assert_eq!(decide(Ask::Upgrade, resp, 1), Some(false));
    }
}
