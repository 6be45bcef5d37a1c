//! Body framing of one parsed request head: how its body is delimited (`Content-Length`,
//! chunked, or none), refusing lengths that cannot be trusted, which forwarding header it
//! already has, and whether it asks for a tunnel.

use super::answer::Ask;

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
    /// `CONNECT` or `Upgrade`: the rest of the connection becomes a tunnel if the server agrees.
    pub(super) tunnel: Option<Ask>,
}

impl<'b> Framing<'b> {
    /// Reads the headers that matter; `None` when the body length cannot be trusted (RFC 9112
    /// section 6: the request is refused, as the server would have to refuse it).
    pub(super) fn of(req: &httparse::Request<'_, 'b>) -> Option<Self> {
        let (mut length, mut lengths) = (None, 0u32);
        let (mut codings, mut chunked_at, mut chunked_count) = (0u32, 0u32, 0u32);
        let mut te_lines = 0u32;
        let mut f = Framing {
            body: Body::None,
            xff: None,
            tunnel: (req.method == Some("CONNECT")).then_some(Ask::Connect),
        };
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                lengths += 1;
                length = content_length(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te_lines += 1;
                for coding in h.value.split(|&b| b == b',') {
                    let coding = coding.trim_ascii();
                    if coding.is_empty() {
                        continue; // empty list elements are allowed (RFC 9110 section 5.6.1)
                    }
                    // A coding is a token, perhaps with parameters (`;q=...`): anything else
                    // is read differently by different servers.
                    let name = coding.split(|&b| b == b';').next().unwrap_or_default();
                    let name = name.trim_ascii_end();
                    if name.is_empty() || !name.iter().all(|&b| super::rewrite::is_tchar(b)) {
                        return None;
                    }
                    codings += 1;
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked_count += 1;
                        chunked_at = codings;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                f.xff = Some(name);
            } else if name.eq_ignore_ascii_case(b"upgrade") && f.tunnel.is_none() {
                f.tunnel = Some(Ask::Upgrade);
            }
        }
        f.body = if te_lines > 0 {
            // Chunked must be the last coding, once; with Content-Length as well the message
            // is a smuggling attempt; HTTP/1.0 has no chunked framing (RFC 9112 section 6.1).
            // An empty Transfer-Encoding says nothing a server would agree on either.
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
