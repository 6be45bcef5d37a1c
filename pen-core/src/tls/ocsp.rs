//! Checking an OCSP response before it is stapled (`ssl_ocsp_response FILE`). Whatever pen
//! staples goes to every TLS client, so the file must be what it claims: a successful
//! `OCSPResponse` (RFC 6960 4.2.1) of type `id-pkix-ocsp-basic` with a `SingleResponse` for the
//! certificate pen serves: same serial number, issuer name hash over the certificate's issuer
//! name, and, when the chain holds the issuer certificate, issuer key hash over its public key
//! (SHA-1 or SHA-256, as the response's `CertID` says). Anything else, such as a private key
//! or any other DER file, is refused. The responder's signature is the client's to verify.
//!
//! The reader below is a small DER walker over borrowed bytes that never panics (every access
//! is checked), fit for any input.

use ring::digest;

/// Why a response was refused (turned into the file's error by the caller).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum OcspError {
    /// Not DER of the OCSPResponse shape.
    #[error("not a DER-encoded OCSP response ({0})")]
    Malformed(&'static str),
    /// responseStatus other than successful(0).
    #[error("the OCSP response's status is {0}, not successful (0)")]
    NotSuccessful(u8),
    /// A response type other than id-pkix-ocsp-basic.
    #[error("not a basic OCSP response (expected responseType id-pkix-ocsp-basic)")]
    NotBasic,
    /// No SingleResponse for the served certificate.
    #[error(
        "the OCSP response is not for the served certificate (no SingleResponse with its \
         serial number and issuer hashes)"
    )]
    OtherCertificate,
    /// The served certificate cannot be read.
    #[error("the served certificate cannot be parsed")]
    BadCertificate,
}

/// A DER element: tag and contents.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Splits one DER element off the front of `input`: (element, rest).
fn next(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // Multi-byte tags do not occur in these structures.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None; // indefinite or absurd lengths are not DER
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest.get(n..)?)
    };
    let body = rest.get(..len)?;
    Some((Tlv { tag, body }, rest.get(len..)?))
}

/// Reads the element with `tag` off the front of `input`.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Tlv<'a>, &'a [u8]), OcspError> {
    match next(input) {
        Some((t, rest)) if t.tag == tag => Ok((t, rest)),
        _ => Err(OcspError::Malformed(what)),
    }
}

const SEQUENCE: u8 = 0x30;
const ENUMERATED: u8 = 0x0a;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` EXPLICIT (constructed, context-specific).
const CONTEXT_0: u8 = 0xa0;

/// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1 (contents octets).
const OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
/// id-sha1, 1.3.14.3.2.26.
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
/// id-sha256, 2.16.840.1.101.3.4.2.1.
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// One `CertID` of a response.
struct CertId<'a> {
    alg: &'a [u8],
    name_hash: &'a [u8],
    key_hash: &'a [u8],
    serial: &'a [u8],
}

/// The `CertID`s of every `SingleResponse` in a successful basic response.
fn cert_ids(der: &[u8]) -> Result<Vec<CertId<'_>>, OcspError> {
    let (resp, rest) = expect(der, SEQUENCE, "expected a SEQUENCE")?;
    if !rest.is_empty() {
        return Err(OcspError::Malformed("bytes after the response"));
    }
    let (status, rest) = expect(resp.body, ENUMERATED, "expected responseStatus")?;
    match status.body {
        [0] => {}
        [s] => return Err(OcspError::NotSuccessful(*s)),
        _ => return Err(OcspError::Malformed("bad responseStatus")),
    }
    let (bytes, _) = expect(
        rest,
        CONTEXT_0,
        "a successful response without responseBytes",
    )?;
    let (rb, _) = expect(bytes.body, SEQUENCE, "bad responseBytes")?;
    let (kind, rest) = expect(rb.body, OID, "bad responseType")?;
    if kind.body != OCSP_BASIC {
        return Err(OcspError::NotBasic);
    }
    let (basic, _) = expect(rest, OCTET_STRING, "bad response")?;
    let (basic, _) = expect(basic.body, SEQUENCE, "bad BasicOCSPResponse")?;
    let (tbs, _) = expect(basic.body, SEQUENCE, "bad tbsResponseData")?;
    let mut rest = tbs.body;
    // version [0] EXPLICIT, optional.
    if let Some((t, r)) = next(rest) {
        if t.tag == CONTEXT_0 {
            rest = r;
        }
    }
    // responderID: byName [1] or byKey [2].
    match next(rest) {
        Some((t, r)) if t.tag == 0xa1 || t.tag == 0xa2 => rest = r,
        _ => return Err(OcspError::Malformed("bad responderID")),
    }
    let (_, rest) = expect(rest, GENERALIZED_TIME, "bad producedAt")?;
    let (responses, _) = expect(rest, SEQUENCE, "bad responses")?;
    let mut ids = Vec::new();
    let mut list = responses.body;
    while !list.is_empty() {
        let (single, r) = expect(list, SEQUENCE, "bad SingleResponse")?;
        list = r;
        let (id, _) = expect(single.body, SEQUENCE, "bad certID")?;
        let (alg, r) = expect(id.body, SEQUENCE, "bad hashAlgorithm")?;
        let (alg, _) = expect(alg.body, OID, "bad hashAlgorithm")?;
        let (name_hash, r) = expect(r, OCTET_STRING, "bad issuerNameHash")?;
        let (key_hash, r) = expect(r, OCTET_STRING, "bad issuerKeyHash")?;
        let (serial, _) = expect(r, INTEGER, "bad serialNumber")?;
        ids.push(CertId {
            alg: alg.body,
            name_hash: name_hash.body,
            key_hash: key_hash.body,
            serial: serial.body,
        });
    }
    if ids.is_empty() {
        return Err(OcspError::Malformed("no SingleResponse"));
    }
    Ok(ids)
}

/// `data` hashed with the algorithm whose OID contents are `alg` (SHA-1 or SHA-256).
fn hash(alg: &[u8], data: &[u8]) -> Option<digest::Digest> {
    let algorithm = if alg == SHA1 {
        &digest::SHA1_FOR_LEGACY_USE_ONLY
    } else if alg == SHA256 {
        &digest::SHA256
    } else {
        return None;
    };
    Some(digest::digest(algorithm, data))
}

/// Checks that `der` is a successful basic OCSP response for `chain`'s leaf (the issuer key
/// hash too when `chain` holds the leaf's issuer).
///
/// # Errors
/// [`OcspError`] saying what does not fit.
pub(crate) fn check(der: &[u8], chain: &[&[u8]]) -> Result<(), OcspError> {
    let ids = cert_ids(der)?;
    let leaf_der = chain.first().ok_or(OcspError::BadCertificate)?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(leaf_der).map_err(|_| OcspError::BadCertificate)?;
    let issuer_name = leaf.issuer().as_raw();
    let issuer_key = chain.iter().skip(1).find_map(|c| {
        let (_, c) = x509_parser::parse_x509_certificate(c).ok()?;
        (c.subject().as_raw() == issuer_name)
            .then(|| c.public_key().subject_public_key.data.to_vec())
    });
    let serial = leaf.raw_serial();
    let matches = |id: &CertId<'_>| {
        let name_ok = hash(id.alg, issuer_name).is_some_and(|h| h.as_ref() == id.name_hash);
        let key_ok = issuer_key
            .as_ref()
            .is_none_or(|k| hash(id.alg, k).is_some_and(|h| h.as_ref() == id.key_hash));
        id.serial == serial && name_ok && key_ok
    };
    if ids.iter().any(matches) {
        Ok(())
    } else {
        Err(OcspError::OtherCertificate)
    }
}

#[cfg(test)]
#[path = "ocsp_tests.rs"]
mod tests;
