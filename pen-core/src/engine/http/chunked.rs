//! A sans-IO decoder for `Transfer-Encoding: chunked` request bodies that only counts: it walks
//! the chunk sizes, extensions, data and trailers to find where the body ends, and never
//! alters or copies a byte (the caller passes the bytes on unchanged).
//!
//! It is strict where servers are known to disagree (request smuggling through chunk lines):
//! every line of the framing ends with CRLF, a bare CR or LF is refused, and trailer lines may
//! not start with whitespace (obsolete line folding) or hold control bytes.

/// Chunk sizes longer than this many hex digits (leading zeros included) are refused: 16
/// digits already reach `u64::MAX`, and refusing early keeps the arithmetic overflow-free.
const MAX_SIZE_DIGITS: u8 = 16;

/// Where the decoder is within a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Reading the hex digits of a chunk size (`digits` so far, `value` so far).
    Size { digits: u8, value: u64 },
    /// Whitespace after the size (`BWS` before `;` or the line end); the size.
    SizeSpace(u64),
    /// Inside a chunk extension (`;name=value...`), up to the line end; the size.
    Ext(u64),
    /// A CR ended the size line: an LF must follow; the size.
    SizeLf(u64),
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// After chunk data: CRLF must follow.
    DataCr,
    /// After chunk data and its CR: LF must follow.
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer field line, up to its CRLF.
    TrailerLine,
    /// A CR inside a trailer line: LF must follow.
    TrailerLf,
    /// The final blank line's CR: LF must follow.
    EndLf,
    /// The body is complete.
    Done,
}

/// The chunked framing was broken: the caller refuses the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// How many bytes of the input were valid body bytes, before the broken one.
    pub(crate) valid: usize,
}

/// Counts its way through one chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkDecoder {
    step: Step,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        ChunkDecoder {
            step: Step::Size {
                digits: 0,
                value: 0,
            },
        }
    }
}

impl ChunkDecoder {
    /// Whether the body (last chunk and trailers) is complete.
    pub(crate) fn done(&self) -> bool {
        self.step == Step::Done
    }

    /// Walks over the body bytes at the start of `input`; returns how many belong to the body
    /// (all of them unless the body ends inside `input`, after which [`done`](Self::done)).
    ///
    /// # Errors
    /// [`Malformed`] on a byte the chunked syntax does not allow, saying how many bytes before
    /// it were valid; the decoder must not be used again.
    pub(crate) fn advance(&mut self, input: &[u8]) -> Result<usize, Malformed> {
        let mut pos = 0;
        while pos < input.len() && self.step != Step::Done {
            if let Step::Data(left) = self.step {
                // Chunk data in one step: this is where the bulk of a body goes.
                let avail = (input.len() - pos) as u64;
                let take = left.min(avail);
                pos += take as usize; // take <= avail, which came from a usize
                self.step = if take == left {
                    Step::DataCr
                } else {
                    Step::Data(left - take)
                };
                continue;
            }
            let Some(&b) = input.get(pos) else { break };
            let Some(step) = self.byte(b) else {
                return Err(Malformed { valid: pos });
            };
            pos += 1;
            self.step = step;
        }
        Ok(pos)
    }

    /// The step after one framing byte (never called for chunk data); `None` if the byte is
    /// not allowed there.
    fn byte(&self, b: u8) -> Option<Step> {
        Some(match self.step {
            Step::Size { digits, value } => match (hex(b), b) {
                (Some(d), _) => {
                    if digits >= MAX_SIZE_DIGITS {
                        return None;
                    }
                    Step::Size {
                        digits: digits + 1,
                        value: value << 4 | u64::from(d),
                    }
                }
                // A size needs at least one digit.
                _ if digits == 0 => return None,
                (None, b' ' | b'\t') => Step::SizeSpace(value),
                (None, b';') => Step::Ext(value),
                (None, b'\r') => Step::SizeLf(value),
                _ => return None,
            },
            Step::SizeSpace(size) => match b {
                b' ' | b'\t' => Step::SizeSpace(size),
                b';' => Step::Ext(size),
                b'\r' => Step::SizeLf(size),
                _ => return None,
            },
            Step::Ext(size) => match b {
                b'\r' => Step::SizeLf(size),
                // Extensions are opaque here, but control bytes have no place in them.
                0..=0x08 | 0x0a..=0x1f | 0x7f => return None,
                _ => Step::Ext(size),
            },
            Step::SizeLf(size) if b == b'\n' => after_size_line(size),
            Step::DataCr if b == b'\r' => Step::DataLf,
            Step::DataLf if b == b'\n' => Step::Size {
                digits: 0,
                value: 0,
            },
            Step::TrailerStart => match b {
                b'\r' => Step::EndLf,
                // Obsolete line folding, and control bytes, are refused as in a head.
                b' ' | b'\t' | b'\n' | 0..=0x08 | 0x0a..=0x1f | 0x7f => return None,
                _ => Step::TrailerLine,
            },
            Step::TrailerLine => match b {
                b'\r' => Step::TrailerLf,
                b'\t' => Step::TrailerLine,
                0..=0x1f | 0x7f => return None,
                _ => Step::TrailerLine,
            },
            Step::TrailerLf if b == b'\n' => Step::TrailerStart,
            Step::EndLf if b == b'\n' => Step::Done,
            // Not reached for data and done: `advance` handles data and stops when done.
            _ => return None,
        })
    }
}

/// After a chunk-size line: the data of a non-empty chunk, or the trailers after the last one.
fn after_size_line(size: u64) -> Step {
    if size == 0 {
        Step::TrailerStart
    } else {
        Step::Data(size)
    }
}

/// The value of a hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body length found, or None.
    fn body_len(input: &[u8], step: usize) -> Option<usize> {
        let mut d = ChunkDecoder::default();
        let mut total = 0;
        for piece in input.chunks(step) {
            let n = d.advance(piece).ok()?;
            total += n;
            if d.done() {
                return Some(total);
            }
        }
        None
    }

    #[test]
    fn finds_the_end_of_the_body_however_it_is_split() {
        let body: &[u8] = b"4\r\nWiki\r\n5;ext=1;q=\"x\"\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: yes\r\nOther: x\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        for step in 1..input.len() + 1 {
            assert_eq!(body_len(&input, step), Some(body.len()), "step {step}");
        }
    }

    #[test]
    fn last_chunk_without_trailers() {
        assert_eq!(body_len(b"0\r\n\r\nX", 1), Some(5));
        assert_eq!(body_len(b"000A\r\n0123456789\r\n0\r\n\r\n", 3), Some(23));
    }

    #[test]
    fn refuses_broken_framing() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"4\r\nWikiX\r\n",
            b"4\rX",
            b"0\r\n\rX",
            b"11111111111111111\r\n",
            b"4;a\x00\r\n",
            b"4 x\r\n",
            // Bare line ends, where servers disagree.
            b"3\nabc\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabcXY0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nA: b\nC: d\r\n\r\n",
            b"0\r\nA: b\rC\r\n\r\n",
            // Trailers: folding and control bytes.
            b"0\r\nA: b\r\n c\r\n\r\n",
            b"0\r\nA: \x01\r\n\r\n",
        ] {
            let mut d = ChunkDecoder::default();
            let err = d.advance(bad).expect_err("refused");
            // The valid bytes are those before the one that broke the framing.
            assert!(err.valid < bad.len(), "{bad:?}");
        }
        let mut d = ChunkDecoder::default();
        assert_eq!(d.advance(b"3\r\nabcX"), Err(Malformed { valid: 6 }));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut d = ChunkDecoder::default();
        assert_eq!(d.advance(b"ffffffffffffffff\r\nabc"), Ok(21));
        assert!(!d.done());
    }
}
