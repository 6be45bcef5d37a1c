//! Body framing of one parsed request head: how its body is delimited (`Content-Length`,
//! chunked, or none), refusing lengths that cannot be trusted, and which forwarding headers it
//! already has.

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Body {
    /// No body.
    None,
    /// A `Content-Length` body of this many bytes.
    Length(u64),
    /// A chunked body.
    Chunked,
}

/// What the rewriter needs to know about one parsed request head.
pub(super) struct Framing<'b> {
    /// How the body is delimited.
    pub(super) body: Body,
    /// The name of the last `X-Forwarded-For` header, a slice of the head.
    pub(super) xff: Option<&'b [u8]>,
    /// It has an `X-Forwarded-Proto` header.
    pub(super) xfp: bool,
    /// `CONNECT` or `Upgrade`: the rest of the connection is a tunnel.
    pub(super) tunnel: bool,
}

impl<'b> Framing<'b> {
    /// Reads the headers that matter; `None` when the body length cannot be trusted.
    pub(super) fn of(req: &httparse::Request<'_, 'b>) -> Option<Self> {
        let (mut length, mut lengths) = (None, 0u32);
        let (mut codings, mut chunked_at, mut chunked_count) = (0u32, 0u32, 0u32);
        let mut f = Framing {
            body: Body::None,
            xff: None,
            xfp: false,
            tunnel: req.method == Some("CONNECT"),
        };
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                lengths += 1;
                length = content_length(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                for coding in h.value.split(|&b| b == b',') {
                    let coding = coding.trim_ascii();
                    if coding.is_empty() {
                        continue; // empty list elements are allowed (RFC 9110 section 5.6.1)
                    }
                    codings += 1;
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked_count += 1;
                        chunked_at = codings;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                f.xff = Some(name);
            } else if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
                f.xfp = true;
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.tunnel = true;
            }
        }
        f.body = if codings > 0 {
            // Chunked must be the last coding, once; with Content-Length as well the message
            // is a smuggling attempt; HTTP/1.0 has no chunked framing (RFC 9112 section 6.1).
            let ok = chunked_count == 1 && chunked_at == codings;
            if !ok || lengths > 0 || req.version != Some(1) {
                return None;
            }
            Body::Chunked
        } else {
            match (lengths, length) {
                (0, _) => Body::None,
                (1, Some(len)) => Body::Length(len),
                _ => return None,
            }
        };
        Some(f)
    }
}

/// A `Content-Length` value: decimal digits only (no sign, no list), within `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
