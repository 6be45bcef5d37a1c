//! The few DNS messages pen needs (RFC 1035): an A or AAAA query for one name, and the
//! addresses in the answer to it. Pure and bounded (fuzzed: `fuzz/fuzz_targets/dns_answer.rs`);
//! names in answers are skipped, never followed, so a compression loop cannot hold it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record type A (an IPv4 address).
pub(crate) const TYPE_A: u16 = 1;
/// Record type AAAA (an IPv6 address).
pub(crate) const TYPE_AAAA: u16 = 28;
/// Class IN.
const CLASS_IN: u16 = 1;
/// The fixed header's length.
const HEADER: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4).
const NAME_MAX: usize = 255;

/// Why a name cannot be asked for, or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The name cannot be sent (empty label, label over 63 bytes, name over 255 bytes).
    #[error("'{0}': expected a host name of labels of 1-63 bytes, 255 bytes in all")]
    BadName(String),
    /// The message ends before what its header announces.
    #[error("a DNS answer cut short (expected {0})")]
    Short(&'static str),
    /// Not the answer to this query (another id, not a response, another question).
    #[error("a DNS message that does not answer the query ({0})")]
    NotOurs(&'static str),
    /// A name with a label length that is neither a length nor a pointer.
    #[error("a DNS answer with a malformed name")]
    BadLabel,
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The response code (0: no error, 3: no such name).
    pub(crate) rcode: u8,
    /// The server cut the answer to fit a datagram.
    pub(crate) truncated: bool,
    /// The addresses of the queried type, in answer order (at most `limit`), with their TTLs.
    pub(crate) addrs: Vec<(IpAddr, u32)>,
}

/// The question of a query for `name` (type `qtype`, class IN), without the header.
fn question(name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let bad = || WireError::BadName(name.to_string());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut q = Vec::with_capacity(trimmed.len().saturating_add(6));
    for label in trimmed.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l));
        q.push(len.ok_or_else(bad)?);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() > NAME_MAX {
        return Err(bad());
    }
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// A recursive query (RD set) with id `id` for the `qtype` records of `name`.
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let q = question(name, qtype)?;
    let mut msg = Vec::with_capacity(HEADER.saturating_add(q.len()));
    msg.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query, recursion desired; one question.
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&q);
    Ok(msg)
}

/// A reader over a message that never reads past its end.
struct Cursor<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Short(what))?;
        let s = self.msg.get(self.at..end).ok_or(WireError::Short(what))?;
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let hi = self.u16(what)?;
        let lo = self.u16(what)?;
        Ok(u32::from(hi) << 16 | u32::from(lo))
    }

    /// Steps over a name: labels up to a zero byte or a compression pointer (not followed).
    fn skip_name(&mut self) -> Result<(), WireError> {
        for _ in 0..=NAME_MAX {
            let len = *self.take(1, "a name")?.first().unwrap_or(&0);
            match len {
                0 => return Ok(()),
                l if l & 0xC0 == 0xC0 => {
                    self.take(1, "a name pointer")?;
                    return Ok(());
                }
                l if l <= 63 => {
                    self.take(usize::from(l), "a label")?;
                }
                _ => return Err(WireError::BadLabel),
            }
        }
        Err(WireError::BadLabel)
    }
}

/// The addresses (at most `limit`) in `msg`, the answer to the query `sent` (as [`query`]
/// made it): the id, the response bit and the question must match. Records of another type
/// (a CNAME chain) are skipped; the answer's addresses are taken whatever their owner name,
/// as a recursive resolver answers with the chain's end.
pub(crate) fn parse_answer<'a>(
    msg: &'a [u8],
    sent: &[u8],
    limit: usize,
) -> Result<Answer, WireError> {
    let mut c = Cursor { msg, at: 0 };
    let header = c.take(HEADER, "a header")?;
    let sent_q = sent
        .get(HEADER..)
        .ok_or(WireError::NotOurs("no question sent"))?;
    let byte = |i: usize| header.get(i).copied().unwrap_or(0);
    if header.get(..2) != sent.get(..2) {
        return Err(WireError::NotOurs("another id"));
    }
    if byte(2) & 0x80 == 0 {
        return Err(WireError::NotOurs("not a response"));
    }
    let truncated = byte(2) & 0x02 != 0;
    let rcode = byte(3) & 0x0F;
    let qdcount = u16::from_be_bytes([byte(4), byte(5)]);
    let ancount = u16::from_be_bytes([byte(6), byte(7)]);
    if qdcount != 1 {
        return Err(WireError::NotOurs("not one question"));
    }
    let q = c.take(sent_q.len(), "the question")?;
    if !q.eq_ignore_ascii_case(sent_q) {
        return Err(WireError::NotOurs("another question"));
    }
    let qtype = u16::from_be_bytes([
        sent_q
            .len()
            .checked_sub(4)
            .and_then(|i| sent_q.get(i))
            .copied()
            .unwrap_or(0),
        sent_q
            .len()
            .checked_sub(3)
            .and_then(|i| sent_q.get(i))
            .copied()
            .unwrap_or(0),
    ]);
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        let record = |c: &mut Cursor<'a>| -> Result<_, WireError> {
            c.skip_name()?;
            let rtype = c.u16("a record type")?;
            let class = c.u16("a record class")?;
            let ttl = c.u32("a TTL")?;
            let len = c.u16("a record length")?;
            let data = c.take(usize::from(len), "record data")?;
            Ok((rtype, class, ttl, data))
        };
        let (rtype, class, ttl, data) = match record(&mut c) {
            Ok(r) => r,
            // A truncated answer (TC): the records that fitted.
            Err(_) if truncated => break,
            Err(e) => return Err(e),
        };
        if class != CLASS_IN || rtype != qtype || addrs.len() >= limit {
            continue;
        }
        let ip = match (rtype, <[u8; 4]>::try_from(data), <[u8; 16]>::try_from(data)) {
            (TYPE_A, Ok(b), _) => IpAddr::V4(Ipv4Addr::from(b)),
            (TYPE_AAAA, _, Ok(b)) => IpAddr::V6(Ipv6Addr::from(b)),
            _ => continue, // a record of the wrong size is left out
        };
        addrs.push((ip, ttl));
    }
    Ok(Answer {
        rcode,
        truncated,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as a server builds it: the query's header and question, then records
    /// whose owner is a pointer to the question's name.
    fn answer(sent: &[u8], rcode: u8, records: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = sent.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (t, data) in records {
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn a_query_has_one_question() {
        let q = query(0x1234, "svc.test.", TYPE_A).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03svc\x04test\x00\x00\x01\x00\x01");
        assert_eq!(q, query(0x1234, "svc.test", TYPE_A).unwrap());
        for bad in ["", "a..b", &"x".repeat(64), &"abc.".repeat(64)] {
            assert!(
                matches!(query(1, bad, TYPE_A), Err(WireError::BadName(_))),
                "{bad}"
            );
        }
    }

    /// The addresses of the asked type are taken, a CNAME before them skipped, a record of
    /// the wrong size left out, at most `limit`.
    #[test]
    fn addresses_are_read_from_the_answer() {
        let sent = query(7, "svc.test", TYPE_A).unwrap();
        let msg = answer(
            &sent,
            0,
            &[
                (5, b"\x03www\xc0\x0c"),
                (TYPE_A, &[10, 0, 0, 1]),
                (TYPE_A, &[10, 0, 0]),
                (TYPE_AAAA, &[0; 16]),
                (TYPE_A, &[10, 0, 0, 2]),
                (TYPE_A, &[10, 0, 0, 3]),
            ],
        );
        let a = parse_answer(&msg, &sent, 2).unwrap();
        let ips: Vec<IpAddr> = a.addrs.iter().map(|(ip, _)| *ip).collect();
        assert_eq!(
            ips,
            [IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]
        );
        assert_eq!((a.rcode, a.truncated, a.addrs[0].1), (0, false, 60));
        let six = query(8, "svc.test", TYPE_AAAA).unwrap();
        let msg = answer(&six, 0, &[(TYPE_AAAA, &[0xfd; 16])]);
        let a = parse_answer(&msg, &six, 8).unwrap();
        assert_eq!(a.addrs[0].0, IpAddr::from([0xfd; 16]));
    }

    /// Another id, a query instead of a response, another question, a cut message, a
    /// label length out of range: refused, never a panic.
    #[test]
    fn what_is_not_our_answer_is_refused() {
        let sent = query(7, "svc.test", TYPE_A).unwrap();
        let good = answer(&sent, 3, &[]);
        assert_eq!(parse_answer(&good, &sent, 8).unwrap().rcode, 3);
        let mut other = good.clone();
        other[1] = 8;
        assert!(matches!(
            parse_answer(&other, &sent, 8),
            Err(WireError::NotOurs(_))
        ));
        assert!(matches!(
            parse_answer(&sent, &sent, 8),
            Err(WireError::NotOurs(_))
        ));
        let mut q = good.clone();
        q[13] = b'S'; // case differs only: still ours
        assert!(parse_answer(&q, &sent, 8).is_ok());
        q[14] = b'x';
        assert!(matches!(
            parse_answer(&q, &sent, 8),
            Err(WireError::NotOurs(_))
        ));
        let full = answer(&sent, 0, &[(TYPE_A, &[1, 2, 3, 4])]);
        for cut in 0..full.len() {
            assert!(parse_answer(&full[..cut], &sent, 8).is_err(), "{cut}");
        }
        let mut bad = full.clone();
        bad[sent.len()] = 0x80;
        assert_eq!(parse_answer(&bad, &sent, 8), Err(WireError::BadLabel));
    }

    /// A truncated answer (TC) gives the records that fitted.
    #[test]
    fn a_truncated_answer_gives_what_fitted() {
        let sent = query(7, "svc.test", TYPE_A).unwrap();
        let mut full = answer(
            &sent,
            0,
            &[(TYPE_A, &[1, 2, 3, 4]), (TYPE_A, &[5, 6, 7, 8])],
        );
        full[2] |= 0x02;
        let cut = &full[..full.len() - 3];
        let a = parse_answer(cut, &sent, 8).unwrap();
        assert!(a.truncated);
        assert_eq!(a.addrs, [(IpAddr::from([1, 2, 3, 4]), 60)]);
    }
}
