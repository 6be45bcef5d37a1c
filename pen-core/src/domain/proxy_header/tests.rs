use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn line(src: Option<SocketAddr>, dst: Option<SocketAddr>) -> Vec<u8> {
    let mut out = [0u8; V1_MAX];
    let n = encode_v1(src, dst, &mut out).unwrap();
    out[..n].to_vec()
}

#[test]
fn v1_examples_from_the_specification() {
    let h = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /").unwrap();
    let h = h.unwrap();
    assert_eq!(h.len, 47);
    assert_eq!(
        h.announced,
        Announced::Proxy {
            src: v4([192, 168, 0, 1], 56324),
            dst: v4([192, 168, 0, 11], 443)
        }
    );
    let h = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
    assert_eq!((h.announced, h.len), (Announced::Local, 15));
    // The rest of an UNKNOWN line is ignored.
    let h = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.announced, Announced::Local);
    let h = parse(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        h.announced,
        Announced::Proxy {
            src: "[2001:db8::1]:1".parse().unwrap(),
            dst: "[::1]:65535".parse().unwrap()
        }
    );
}

#[test]
fn v1_malformed_lines_name_what_is_wrong() {
    let bad: &[(&[u8], &str)] = &[
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "TCP5"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "1.2.3"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "::1"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "1.2.3.4"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "65536"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "01"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "+1"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", ""),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "3"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ""),
    ];
    for (input, token) in bad {
        match parse(input) {
            Err(ProxyHeaderError::V1Field { token: t, .. }) => assert_eq!(&t, token, "{input:?}"),
            other => panic!("{input:?}: {other:?}"),
        }
    }
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3.4\n"),
        Err(ProxyHeaderError::V1Field { .. })
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3.4\rX"),
        Err(ProxyHeaderError::V1Field { .. })
    ));
    let long = [b"PROXY ".as_slice(), &[b'A'; 120]].concat();
    assert_eq!(parse(&long), Err(ProxyHeaderError::V1TooLong));
    assert_eq!(parse(b"GET / HTTP/1.0\r\n"), Err(ProxyHeaderError::Missing));
    assert_eq!(parse(b"PROXX"), Err(ProxyHeaderError::Missing));
}

#[test]
fn v1_beginnings_ask_for_more() {
    let full = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    for n in 0..full.len() {
        assert_eq!(parse(&full[..n]), Ok(None), "{n} bytes");
    }
    // 105 bytes then CR: the LF would be the 107th byte, still allowed.
    let mut at_limit = b"PROXY UNKNOWN ".to_vec();
    at_limit.resize(105, b'x');
    at_limit.push(b'\r');
    assert_eq!(parse(&at_limit), Ok(None));
    at_limit.push(b'\n');
    assert_eq!(parse(&at_limit).unwrap().unwrap().len, 107);
    // One byte more: the CR is the 107th byte, the LF would be the 108th (a fuzz find: this
    // was taken as a 108-byte header).
    let mut over = b"PROXY UNKNOWN ".to_vec();
    over.resize(106, b'x');
    assert_eq!(parse(&over), Ok(None));
    over.push(b'\r');
    assert_eq!(parse(&over), Err(ProxyHeaderError::V1TooLong));
    over.push(b'\n');
    assert_eq!(parse(&over), Err(ProxyHeaderError::V1TooLong));
}

#[test]
fn v2_local_unspec_and_unix_use_the_real_endpoints() {
    let mut local = V2_SIGNATURE.to_vec();
    local.extend([0x20, 0x00, 0, 0]);
    let h = parse(&local).unwrap().unwrap();
    assert_eq!((h.announced, h.len), (Announced::Local, 16));
    let mut unix = V2_SIGNATURE.to_vec();
    unix.extend([0x21, 0x31, 0, 216]);
    unix.extend([0u8; 216]);
    assert_eq!(parse(&unix).unwrap().unwrap().announced, Announced::Local);
}

#[test]
fn v2_malformed_headers_name_what_is_wrong() {
    let hdr = |b12: u8, b13: u8, len: u16| {
        let mut v = V2_SIGNATURE.to_vec();
        v.extend([b12, b13]);
        v.extend(len.to_be_bytes());
        v
    };
    assert_eq!(
        parse(&hdr(0x11, 0x11, 12)),
        Err(ProxyHeaderError::V2Version(1))
    );
    assert_eq!(
        parse(&hdr(0x22, 0x11, 12)),
        Err(ProxyHeaderError::V2Command(2))
    );
    assert_eq!(
        parse(&hdr(0x21, 0x41, 12)),
        Err(ProxyHeaderError::V2Family(0x41))
    );
    assert_eq!(
        parse(&hdr(0x21, 0x13, 12)),
        Err(ProxyHeaderError::V2Family(0x13))
    );
    assert_eq!(
        parse(&hdr(0x21, 0x11, 65535)),
        Err(ProxyHeaderError::V2TooLong(65551))
    );
    let mut short = hdr(0x21, 0x21, 12);
    short.extend([0u8; 12]);
    assert_eq!(
        parse(&short),
        Err(ProxyHeaderError::V2Short { got: 12, need: 36 })
    );
    let mut bad_tlv = hdr(0x21, 0x11, 12 + 4);
    bad_tlv.extend([0u8; 12]);
    bad_tlv.extend([0x02, 0x00, 0x05, b'a']);
    assert_eq!(parse(&bad_tlv), Err(ProxyHeaderError::V2Tlv { kind: 2 }));
    // A v2 beginning asks for more until its length is in.
    let mut ok = hdr(0x21, 0x11, 12);
    ok.extend([1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    for n in 0..ok.len() {
        assert_eq!(parse(&ok[..n]), Ok(None), "{n} bytes");
    }
    assert_eq!(
        parse(&ok).unwrap().unwrap().announced,
        Announced::Proxy {
            src: v4([1, 2, 3, 4], 1),
            dst: v4([5, 6, 7, 8], 2)
        }
    );
}

#[test]
fn mixed_families_are_written_as_ipv6_and_unix_clients_as_unknown() {
    let src = v4([10, 0, 0, 1], 5);
    let dst: SocketAddr = "[::1]:80".parse().unwrap();
    assert_eq!(
        line(Some(src), Some(dst)),
        b"PROXY TCP6 ::ffff:10.0.0.1 ::1 5 80\r\n"
    );
    assert_eq!(line(None, Some(dst)), b"PROXY UNKNOWN\r\n");
    let mut out = [0u8; V2_MAX];
    let n = encode_v2(None, None, Transport::Stream, None, &mut out).unwrap();
    let h = parse(&out[..n]).unwrap().unwrap();
    assert_eq!((h.announced, h.len), (Announced::Local, 16));
}

#[test]
fn tls_tlvs_round_trip() {
    let tls = TlsInfo {
        version: "TLSv1.3",
        cipher: "TLS13_AES_256_GCM_SHA384",
        sni: Some("www.example.com"),
        client_cert: false,
    };
    let mut out = [0u8; V2_MAX];
    let (s, d) = (v4([127, 0, 0, 1], 4000), v4([127, 0, 0, 2], 443));
    let n = encode_v2(Some(s), Some(d), Transport::Stream, Some(&tls), &mut out).unwrap();
    let h = parse(&out[..n]).unwrap().unwrap();
    assert_eq!(h.len, n);
    let tlvs: Vec<Tlv<'_>> = parse_tlvs(&out[h.tlv_start..h.len]).collect();
    assert_eq!(tlvs.len(), 2);
    assert_eq!(
        (tlvs[0].kind, tlvs[0].value),
        (tlv::AUTHORITY, b"www.example.com".as_slice())
    );
    assert_eq!(tlvs[1].kind, tlv::SSL);
    assert_eq!(tlvs[1].value[0], tlv::CLIENT_SSL);
    assert_eq!(
        &tlvs[1].value[1..5],
        &1u32.to_be_bytes(),
        "no client certificate"
    );
    let subs: Vec<Tlv<'_>> = parse_tlvs(&tlvs[1].value[5..]).collect();
    assert_eq!(
        (subs[0].kind, subs[0].value),
        (tlv::SSL_VERSION, b"TLSv1.3".as_slice())
    );
    assert_eq!(subs[1].kind, tlv::SSL_CIPHER);
    assert_eq!(subs[1].value, b"TLS13_AES_256_GCM_SHA384");
}

#[test]
fn a_header_that_does_not_fit_is_an_error_not_a_panic() {
    let long = "x".repeat(300);
    let tls = TlsInfo {
        version: &long,
        cipher: &long,
        sni: Some(&long),
        client_cert: true,
    };
    let mut small = [0u8; 64];
    let s = Some(v4([1, 1, 1, 1], 1));
    assert!(matches!(
        encode_v2(s, s, Transport::Stream, Some(&tls), &mut small),
        Err(ProxyHeaderError::NoRoom(_))
    ));
}

#[test]
fn versions_have_words() {
    for v in [ProxyVersion::Off, ProxyVersion::V1, ProxyVersion::V2] {
        assert_eq!(ProxyVersion::from_word(v.word()), Some(v));
    }
    assert_eq!(ProxyVersion::from_word("v3"), None);
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| v4(a, p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(a, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), p)),
    ]
}

/// What an address becomes when written next to `other` (IPv6 when either is).
fn as_written(a: SocketAddr, other: SocketAddr) -> SocketAddr {
    match (a.ip(), other.is_ipv6()) {
        (IpAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        _ => a,
    }
}

proptest! {
    #[test]
    fn v1_encode_then_parse_round_trips(s in any_addr(), d in any_addr(), tail in any::<Vec<u8>>()) {
        let mut bytes = line(Some(s), Some(d));
        let n = bytes.len();
        prop_assert!(n <= V1_MAX);
        bytes.extend(tail);
        let h = parse(&bytes).unwrap().unwrap();
        prop_assert_eq!(h.len, n);
        prop_assert_eq!(h.announced, Announced::Proxy { src: as_written(s, d), dst: as_written(d, s) });
    }

    #[test]
    fn v2_encode_then_parse_round_trips(
        s in any_addr(),
        d in any_addr(),
        dgram in any::<bool>(),
        sni in proptest::option::of("[a-z0-9.-]{1,253}"),
        tls in any::<bool>(),
    ) {
        let info = TlsInfo { version: "TLSv1.2", cipher: "TLS_ECDHE_RSA", sni: sni.as_deref(), client_cert: false };
        let transport = if dgram { Transport::Dgram } else { Transport::Stream };
        let mut out = [0u8; V2_MAX];
        let n = encode_v2(Some(s), Some(d), transport, tls.then_some(&info), &mut out).unwrap();
        let h = parse(&out[..n]).unwrap().unwrap();
        prop_assert_eq!(h.len, n);
        prop_assert_eq!(h.transport, transport);
        prop_assert_eq!(h.announced, Announced::Proxy { src: as_written(s, d), dst: as_written(d, s) });
        if !tls {
            prop_assert_eq!(h.tlv_start, n);
        }
    }

    #[test]
    fn any_bytes_never_panic_and_a_header_lies_within_them(bytes in any::<Vec<u8>>()) {
        if let Ok(Some(h)) = parse(&bytes) {
            prop_assert!(h.len <= bytes.len() && h.tlv_start <= h.len);
            prop_assert!(h.len <= V2_MAX);
        }
    }

    #[test]
    fn headers_split_anywhere_give_the_same_answer(s in any_addr(), d in any_addr(), cut in any::<usize>()) {
        let mut out = [0u8; V2_MAX];
        let n = encode_v2(Some(s), Some(d), Transport::Stream, None, &mut out).unwrap();
        let cut = cut % n;
        prop_assert_eq!(parse(&out[..cut]), Ok(None));
        let v1 = line(Some(s), Some(d));
        prop_assert_eq!(parse(&v1[..cut % v1.len()]), Ok(None));
    }
}

#[test]
fn signatures_are_recognised_from_their_first_bytes() {
    assert_eq!(starts_with_signature(b""), None);
    assert_eq!(starts_with_signature(b"PRO"), None);
    assert_eq!(starts_with_signature(b"\r\n\r\n"), None);
    assert_eq!(starts_with_signature(b"PROXY "), Some(true));
    assert_eq!(starts_with_signature(&V2_SIGNATURE), Some(true));
    assert_eq!(starts_with_signature(b"POST / HTTP/1.1"), Some(false));
    assert_eq!(starts_with_signature(b"PROXY\r\n"), Some(false));
    assert_eq!(starts_with_signature(b"\x16\x03\x01"), Some(false));
}
