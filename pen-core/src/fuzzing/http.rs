//! How a strict server reads what the HTTP-mode rewriter sends it: request heads (parsed with
//! `httparse`, as a server would), their forwarding headers, and bodies framed by
//! `Content-Length` or a chunked encoding walked here byte by byte (independently of the
//! rewriter's own decoder). The `http_framing` fuzz target checks the rewriter's output with
//! it: every request the server sees carries pen's forwarding headers only, and the stream
//! never ends inside a request head.

/// One request as the server read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The values of its `X-Forwarded-For` lines, in order.
    pub xff: Vec<Vec<u8>>,
    /// The values of its `X-Forwarded-Proto` lines, in order.
    pub xfp: Vec<Vec<u8>>,
}

/// Where the server's reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the end of the stream, between requests.
    Boundary,
    /// At the end of the stream, inside a request's body.
    InBody,
    /// At the end of the stream, inside a request head: a request cut short.
    PartialHead,
    /// After the first request, which opened a tunnel (the caller asked to stop there).
    Tunnel,
    /// A head or body the server cannot read: what was wrong.
    Unreadable(&'static str),
}

/// Reads `out` as a server would: the requests, and where the reading ended. With
/// `tunnel_after_first`, reading stops after the first request (the server switched).
pub fn server_view(out: &[u8], tunnel_after_first: bool) -> (Vec<Seen>, End) {
    let mut seen = Vec::new();
    let mut pos = 0;
    loop {
        // Empty lines before a request line.
        while let Some(rest) = out.get(pos..) {
            match rest {
                [b'\r', b'\n', ..] => pos += 2,
                [b'\n', ..] => pos += 1,
                _ => break,
            }
        }
        let rest = out.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return (seen, End::Boundary);
        }
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return (seen, End::PartialHead),
            Err(_) => return (seen, End::Unreadable("head")),
        };
        let mut s = Seen::default();
        let (mut length, mut chunked, mut te) = (None, false, false);
        let mut codings: Vec<Vec<u8>> = Vec::new();
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                s.xff.push(h.value.to_vec());
            } else if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
                s.xfp.push(h.value.to_vec());
            } else if name.eq_ignore_ascii_case(b"content-length") {
                if length.is_some() {
                    return (seen, End::Unreadable("two Content-Length"));
                }
                let v = std::str::from_utf8(h.value).ok();
                match v.and_then(|v| v.trim().parse::<u64>().ok()) {
                    Some(l) if v.is_some_and(|v| v.trim().bytes().all(|b| b.is_ascii_digit())) => {
                        length = Some(l);
                    }
                    _ => return (seen, End::Unreadable("Content-Length")),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // Several lines make one list (RFC 9110 section 5.3).
                for coding in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if !coding.is_empty() {
                        codings.push(coding.to_vec());
                    }
                }
                te = true;
            }
        }
        if te {
            let chunks = codings
                .iter()
                .filter(|c| c.eq_ignore_ascii_case(b"chunked"));
            let last_chunked = codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            if chunks.count() != 1 || !last_chunked {
                return (seen, End::Unreadable("Transfer-Encoding"));
            }
            chunked = true;
        }
        if chunked && length.is_some() {
            return (
                seen,
                End::Unreadable("Transfer-Encoding with Content-Length"),
            );
        }
        seen.push(s);
        pos += n;
        let body = out.get(pos..).unwrap_or_default();
        let used = if chunked {
            match chunked_len(body) {
                Ok(Some(k)) => k,
                Ok(None) => return (seen, End::InBody),
                Err(why) => return (seen, End::Unreadable(why)),
            }
        } else {
            let l = usize::try_from(length.unwrap_or(0)).unwrap_or(usize::MAX);
            if l > body.len() {
                return (seen, End::InBody);
            }
            l
        };
        pos += used;
        if tunnel_after_first {
            return (seen, End::Tunnel);
        }
    }
}

/// The length of the chunked body at the start of `b` (strict: CRLF line ends); `None` if it
/// does not end within `b`.
fn chunked_len(b: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut pos = 0;
    loop {
        // Size line: hex digits, then optional whitespace and extensions, then CRLF.
        let Some(eol) = find_crlf(b, pos)? else {
            return Ok(None);
        };
        let line = b.get(pos..eol).unwrap_or_default();
        if line
            .iter()
            .any(|&c| c == b'\r' || (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err("chunk size line");
        }
        let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let hex = line.get(..digits).unwrap_or_default();
        if digits == 0 || digits > 16 {
            return Err("chunk size");
        }
        let after = line.get(digits..).unwrap_or_default();
        let after = after.trim_ascii_start();
        if !(after.is_empty() || after.first() == Some(&b';')) {
            return Err("chunk size line");
        }
        let size = hex.iter().fold(0u64, |acc, &c| {
            acc << 4 | u64::from(char::from(c).to_digit(16).unwrap_or(0))
        });
        pos = eol + 2;
        if size == 0 {
            // Trailer lines, then the blank line.
            loop {
                let Some(eol) = find_crlf(b, pos)? else {
                    return Ok(None);
                };
                let line = b.get(pos..eol).unwrap_or_default();
                if line.first().is_some_and(|&c| c == b' ' || c == b'\t')
                    || line.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
                {
                    return Err("trailer line");
                }
                let empty = eol == pos;
                pos = eol + 2;
                if empty {
                    return Ok(Some(pos));
                }
            }
        }
        let Ok(size) = usize::try_from(size) else {
            return Ok(None);
        };
        let end = pos.saturating_add(size);
        if end.saturating_add(2) > b.len() {
            return Ok(None);
        }
        if b.get(end..end + 2) != Some(b"\r\n") {
            return Err("chunk data end");
        }
        pos = end + 2;
    }
}

/// The index of the CR of the next line end at or after `from`; `Ok(None)` if no LF follows
/// yet; an error for a bare LF.
fn find_crlf(b: &[u8], from: usize) -> Result<Option<usize>, &'static str> {
    let rest = b.get(from..).unwrap_or_default();
    let Some(lf) = rest.iter().position(|&c| c == b'\n') else {
        return Ok(None);
    };
    match lf.checked_sub(1) {
        Some(cr) if rest.get(cr) == Some(&b'\r') => Ok(Some(from + cr)),
        _ => Err("bare LF"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_bodies_and_ends() {
        let out = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n\r\nGET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n\r\n";
        let (seen, end) = server_view(out, false);
        assert_eq!(end, End::Boundary);
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0].xff, vec![b"1".to_vec()]);
        assert_eq!(seen[3].xfp, vec![b"http".to_vec()]);
        assert_eq!(
            server_view(b"GET / HTTP/1.1\r\nA", false).1,
            End::PartialHead
        );
        assert_eq!(
            server_view(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", false).1,
            End::InBody
        );
        assert_eq!(
            server_view(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
                false
            )
            .1,
            End::InBody
        );
        assert!(matches!(
            server_view(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                false
            )
            .1,
            End::Unreadable(_)
        ));
        assert_eq!(
            server_view(b"GET / HTTP/1.1\r\n\r\nxyz", true).1,
            End::Tunnel
        );
    }
}
