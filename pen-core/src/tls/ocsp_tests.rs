//! Fixtures in `testdata/`: a throwaway CA and leaf (serial 0x1234abcd), the leaf's PKCS#8 key,
//! and a response `openssl ocsp` produced for the leaf (SHA-1 CertID).

use proptest::prelude::*;

use super::*;

const CA: &[u8] = include_bytes!("testdata/ca.der");
const LEAF: &[u8] = include_bytes!("testdata/leaf.der");
const KEY: &[u8] = include_bytes!("testdata/key.der");
const OPENSSL_SHA1: &[u8] = include_bytes!("testdata/ocsp-sha1.der");

/// A DER element.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A successful basic response with one SingleResponse for (alg, name hash, key hash, serial).
fn response(status: u8, alg: &[u8], name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    let cert_id = tlv(
        SEQUENCE,
        &cat(&[
            tlv(SEQUENCE, &cat(&[tlv(OID, alg), vec![0x05, 0x00]])),
            tlv(OCTET_STRING, name_hash),
            tlv(OCTET_STRING, key_hash),
            tlv(INTEGER, serial),
        ]),
    );
    let time = tlv(GENERALIZED_TIME, b"20260101000000Z");
    let single = tlv(SEQUENCE, &cat(&[cert_id, vec![0x80, 0x00], time.clone()]));
    let tbs = tlv(
        SEQUENCE,
        &cat(&[
            tlv(0xa2, &tlv(OCTET_STRING, &[0u8; 20])),
            time,
            tlv(SEQUENCE, &single),
        ]),
    );
    let basic = tlv(
        SEQUENCE,
        &cat(&[
            tbs,
            tlv(
                SEQUENCE,
                &tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
            ),
            tlv(0x03, &[0, 1, 2, 3]),
        ]),
    );
    let bytes = tlv(
        CONTEXT_0,
        &tlv(
            SEQUENCE,
            &cat(&[tlv(OID, OCSP_BASIC), tlv(OCTET_STRING, &basic)]),
        ),
    );
    tlv(SEQUENCE, &cat(&[tlv(ENUMERATED, &[status]), bytes]))
}

/// The leaf's issuer name, serial and the CA's key bits.
fn leaf_parts() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (_, leaf) = x509_parser::parse_x509_certificate(LEAF).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(CA).unwrap();
    (
        leaf.issuer().as_raw().to_vec(),
        leaf.raw_serial().to_vec(),
        ca.public_key().subject_public_key.data.to_vec(),
    )
}

fn sha256(d: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, d).as_ref().to_vec()
}

#[test]
fn a_response_from_openssl_for_the_leaf_is_accepted() {
    check(OPENSSL_SHA1, &[LEAF]).unwrap();
    check(OPENSSL_SHA1, &[LEAF, CA]).unwrap();
}

#[test]
fn a_sha256_response_is_checked_against_name_key_and_serial() {
    let (name, serial, key) = leaf_parts();
    let good = response(0, SHA256, &sha256(&name), &sha256(&key), &serial);
    check(&good, &[LEAF, CA]).unwrap();
    let other_serial = response(0, SHA256, &sha256(&name), &sha256(&key), &[0x01]);
    assert_eq!(
        check(&other_serial, &[LEAF]),
        Err(OcspError::OtherCertificate)
    );
    let other_name = response(0, SHA256, &sha256(b"x"), &sha256(&key), &serial);
    assert_eq!(
        check(&other_name, &[LEAF]),
        Err(OcspError::OtherCertificate)
    );
    // The key hash is checked only when the chain holds the issuer.
    let other_key = response(0, SHA256, &sha256(&name), &sha256(b"x"), &serial);
    check(&other_key, &[LEAF]).unwrap();
    assert_eq!(
        check(&other_key, &[LEAF, CA]),
        Err(OcspError::OtherCertificate)
    );
    // An unknown hash algorithm matches nothing.
    let md5 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];
    let odd = response(0, &md5, &sha256(&name), &sha256(&key), &serial);
    assert_eq!(check(&odd, &[LEAF]), Err(OcspError::OtherCertificate));
}

#[test]
fn keys_statuses_and_other_der_are_refused() {
    assert!(matches!(check(KEY, &[LEAF]), Err(OcspError::Malformed(_))));
    assert!(matches!(check(CA, &[LEAF]), Err(OcspError::Malformed(_))));
    // tryLater (3) and unauthorized (6), as bare statuses.
    assert_eq!(
        check(&[0x30, 0x03, 0x0a, 0x01, 0x03], &[LEAF]),
        Err(OcspError::NotSuccessful(3))
    );
    let (name, serial, key) = leaf_parts();
    let bad = response(6, SHA256, &sha256(&name), &sha256(&key), &serial);
    assert_eq!(check(&bad, &[LEAF]), Err(OcspError::NotSuccessful(6)));
    assert!(matches!(check(&[], &[LEAF]), Err(OcspError::Malformed(_))));
    let mut trailing = OPENSSL_SHA1.to_vec();
    trailing.push(0);
    assert!(matches!(
        check(&trailing, &[LEAF]),
        Err(OcspError::Malformed(_))
    ));
    assert_eq!(check(OPENSSL_SHA1, &[]), Err(OcspError::BadCertificate));
}

proptest! {
    /// No input makes the checker panic; cut or corrupted real responses are refused.
    #[test]
    fn any_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = check(&bytes, &[LEAF, CA]);
    }

    #[test]
    fn truncated_responses_are_refused(cut in 0..OPENSSL_SHA1.len()) {
        prop_assert!(check(OPENSSL_SHA1.get(..cut).unwrap(), &[LEAF]).is_err());
    }

    #[test]
    fn corrupted_responses_never_panic(at in 0..OPENSSL_SHA1.len(), byte in any::<u8>()) {
        let mut der = OPENSSL_SHA1.to_vec();
        der[at] = byte;
        let _ = check(&der, &[LEAF, CA]);
    }
}
