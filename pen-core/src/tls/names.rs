//! C pen's and OpenSSL's TLS names mapped onto what rustls offers: `-L` protocols,
//! `ssl_option` values and `ssl_ciphers` lists. Anything that cannot be honoured is an error
//! naming the token and saying why; names of things rustls deliberately does not do (SSLv3,
//! CBC suites, renegotiation) say so.

use rustls::CipherSuite;

use super::{TlsError, Versions};

fn name_error(token: &str, reason: impl Into<String>) -> TlsError {
    TlsError::Name {
        token: token.to_string(),
        reason: reason.into(),
    }
}

/// `-L PROTOCOL`: C pen's names (`ssl23` = whatever both sides support) and `tls1.2`/`tls1.3`.
///
/// # Errors
/// [`TlsError::Name`] for SSLv2, SSLv3, TLS 1.0 and 1.1 (rustls does not speak them: they are
/// broken or deprecated, RFC 6176, 7568, 8996) and for unknown names.
pub fn parse_protocol(name: &str) -> Result<Versions, TlsError> {
    let v = |tls12, tls13| Ok(Versions { tls12, tls13 });
    match name.to_ascii_lowercase().as_str() {
        "ssl23" | "tls" | "any" => v(true, true),
        "tls1.2" | "tlsv1.2" | "tls12" => v(true, false),
        "tls1.3" | "tlsv1.3" | "tls13" => v(false, true),
        "ssl2" | "sslv2" | "ssl3" | "sslv3" | "tls1" | "tlsv1" | "tls1.0" | "tls1.1"
        | "tlsv1.1" => Err(name_error(
            name,
            "rustls does not speak SSLv2, SSLv3, TLS 1.0 or TLS 1.1 (insecure, RFC 6176, 7568, \
             8996); expected ssl23 (TLS 1.2 and 1.3), tls1.2 or tls1.3",
        )),
        _ => Err(name_error(name, "expected ssl23, tls1.2 or tls1.3")),
    }
}

/// What one `ssl_option` value does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslOption {
    /// `no_tlsv1.2`.
    NoTls12,
    /// `no_tlsv1.3`.
    NoTls13,
    /// `cipher_server_preference`.
    ServerPreference,
    /// An option for something rustls never does; the text says why it changes nothing.
    Moot(&'static str),
}

/// `ssl_option NAME`.
///
/// # Errors
/// [`TlsError::Name`] for an unknown option, listing the known ones.
pub(crate) fn parse_ssl_option(name: &str) -> Result<SslOption, TlsError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "no_tlsv1.2" => SslOption::NoTls12,
        "no_tlsv1.3" => SslOption::NoTls13,
        "cipher_server_preference" => SslOption::ServerPreference,
        "no_sslv2" | "no_sslv3" | "no_tlsv1" | "no_tlsv1.1" => {
            SslOption::Moot("rustls never speaks SSLv2, SSLv3, TLS 1.0 or TLS 1.1")
        }
        "no_compression" => SslOption::Moot("rustls never compresses"),
        "no_renegotiation" | "no_session_resumption_on_renegotiation" => {
            SslOption::Moot("rustls never renegotiates")
        }
        _ => {
            return Err(name_error(
                name,
                "expected no_tlsv1.2, no_tlsv1.3 or cipher_server_preference",
            ))
        }
    })
}

/// Key exchange and authentication of a TLS 1.2 suite (TLS 1.3 suites have neither).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Ecdsa,
    Rsa,
    /// TLS 1.3: authentication is not part of the suite.
    Any,
}

/// One suite rustls (ring) offers, with the names operators know it by.
struct Suite {
    id: CipherSuite,
    openssl: &'static str,
    iana: &'static str,
    auth: Auth,
    /// Bulk cipher tag: "AES128", "AES256" or "CHACHA20".
    cipher: &'static str,
    hash: &'static str,
}

const SUITES: &[Suite] = &[
    Suite {
        id: CipherSuite::TLS13_AES_256_GCM_SHA384,
        openssl: "TLS_AES_256_GCM_SHA384",
        iana: "TLS_AES_256_GCM_SHA384",
        auth: Auth::Any,
        cipher: "AES256",
        hash: "SHA384",
    },
    Suite {
        id: CipherSuite::TLS13_AES_128_GCM_SHA256,
        openssl: "TLS_AES_128_GCM_SHA256",
        iana: "TLS_AES_128_GCM_SHA256",
        auth: Auth::Any,
        cipher: "AES128",
        hash: "SHA256",
    },
    Suite {
        id: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
        iana: "TLS_CHACHA20_POLY1305_SHA256",
        auth: Auth::Any,
        cipher: "CHACHA20",
        hash: "SHA256",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        auth: Auth::Ecdsa,
        cipher: "AES256",
        hash: "SHA384",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        auth: Auth::Ecdsa,
        cipher: "AES128",
        hash: "SHA256",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        auth: Auth::Ecdsa,
        cipher: "CHACHA20",
        hash: "SHA256",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        auth: Auth::Rsa,
        cipher: "AES256",
        hash: "SHA384",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        auth: Auth::Rsa,
        cipher: "AES128",
        hash: "SHA256",
    },
    Suite {
        id: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        auth: Auth::Rsa,
        cipher: "CHACHA20",
        hash: "SHA256",
    },
];

impl Suite {
    fn tls13(&self) -> bool {
        self.auth == Auth::Any
    }

    /// Whether the OpenSSL keyword `kw` (upper case) selects this suite; `None`: not a keyword.
    fn matches_keyword(&self, kw: &str) -> Option<bool> {
        let tls12 = !self.tls13();
        Some(match kw {
            // Groups: OpenSSL's cipher lists govern TLS 1.2 only; TLS 1.3 suites are chosen
            // by naming them.
            "DEFAULT" | "ALL" | "HIGH" | "COMPLEMENTOFDEFAULT" | "SECURE" | "TLSV1.2" => tls12,
            "ECDHE" | "EECDH" | "KECDHE" | "AECDHE" => tls12,
            "ECDSA" | "AECDSA" => self.auth == Auth::Ecdsa,
            "RSA" | "ARSA" => self.auth == Auth::Rsa,
            "AESGCM" | "AEAD" => tls12 && self.cipher != "CHACHA20",
            "AES" => tls12 && self.cipher != "CHACHA20",
            "AES128" => tls12 && self.cipher == "AES128",
            "AES256" => tls12 && self.cipher == "AES256",
            "CHACHA20" => tls12 && self.cipher == "CHACHA20",
            "SHA256" | "SHA384" => tls12 && self.hash == kw,
            // Keywords for things rustls never offers: they select none of its suites, so
            // excluding them (`!aNULL`, `!MD5`, ...) is a harmless no-op.
            "ANULL" | "ENULL" | "NULL" | "COMPLEMENTOFALL" | "MD5" | "RC4" | "DES" | "3DES"
            | "EXPORT" | "EXP" | "LOW" | "MEDIUM" | "PSK" | "SRP" | "DSS" | "ADSS" | "CAMELLIA"
            | "SEED" | "IDEA" | "SHA1" | "SHA" | "KRSA" | "DHE" | "EDH" | "KDHE" | "KEDH"
            | "ADH" | "AECDH" | "CBC" | "SSLV3" | "TLSV1" | "ARIA" | "CCM" | "CCM8" => false,
            _ => return None,
        })
    }
}

/// A parsed `ssl_ciphers` list: the suites offered, in order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CipherList {
    /// Suites selected (TLS 1.2 and 1.3), in order.
    pub suites: Vec<CipherSuite>,
    /// Names that select nothing rustls offers (known OpenSSL suites using CBC, RSA key
    /// exchange, DHE, ...): ignored, reported so the operator knows.
    pub skipped: Vec<String>,
}

/// Whether `name` looks like a concrete OpenSSL or IANA suite name rustls does not implement
/// (as opposed to a typo), judged by its parts.
fn known_unsupported(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "AES", "DES", "RC4", "CAMELLIA", "SEED", "IDEA", "ARIA", "NULL", "PSK", "SRP", "CBC",
        "SHA", "MD5", "CCM",
    ];
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['-', '_']).collect();
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()))
        && words.iter().any(|w| PARTS.iter().any(|p| w.starts_with(p)))
}

/// Parses an OpenSSL-style cipher list: names separated by `:` (or `,`/space), each a suite
/// name (OpenSSL's, e.g. `ECDHE-RSA-AES128-GCM-SHA256`, or IANA's), or a keyword (`HIGH`,
/// `ECDHE`, `AESGCM`, `CHACHA20`, `DEFAULT`, ...), possibly joined with `+` (all of them);
/// `!X` removes X for good, `-X` removes it for now, `+X` is accepted (order is ours).
/// Keywords govern TLS 1.2 suites only, as in OpenSSL; TLS 1.3 suites are kept unless the
/// list names at least one of them, in which case exactly those are offered.
///
/// # Errors
/// [`TlsError::Name`] naming an unknown name, or when nothing is left to offer.
pub fn parse_cipher_list(list: &str) -> Result<CipherList, TlsError> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut banned = vec![false; SUITES.len()];
    let mut named13 = false;
    let mut any = false;
    let mut skipped = Vec::new();
    for raw in list.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        let (op, item) = match raw.as_bytes().first() {
            Some(b'!') => ('!', raw.get(1..).unwrap_or_default()),
            Some(b'-') => ('-', raw.get(1..).unwrap_or_default()),
            Some(b'+') => ('+', raw.get(1..).unwrap_or_default()),
            _ => (' ', raw),
        };
        if item.is_empty() {
            return Err(name_error(
                raw,
                "expected a cipher name or keyword after the prefix",
            ));
        }
        let selected = select(item, &mut named13)?;
        let Some(selected) = selected else {
            skipped.push(item.to_string());
            continue;
        };
        any |= op == ' ' && !selected.is_empty();
        for i in selected {
            match op {
                '!' => {
                    banned[i] = true;
                    chosen.retain(|&c| c != i);
                }
                '-' => chosen.retain(|&c| c != i),
                '+' => {}
                _ => {
                    if !banned[i] && !chosen.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    if !named13 {
        for (i, s) in SUITES.iter().enumerate() {
            if s.tls13() && !banned[i] && !chosen.contains(&i) {
                chosen.push(i);
            }
        }
    }
    if !any || chosen.is_empty() {
        return Err(name_error(list, "selects no cipher suite rustls offers"));
    }
    // TLS 1.3 suites first, as rustls lists them (the version decides anyway).
    chosen.sort_by_key(|&i| SUITES.get(i).is_none_or(|s| !s.tls13()));
    let suites = chosen
        .iter()
        .filter_map(|&i| SUITES.get(i).map(|s| s.id))
        .collect();
    Ok(CipherList { suites, skipped })
}

/// The suites one list item selects; `Ok(None)` for a known suite rustls does not offer.
fn select(item: &str, named13: &mut bool) -> Result<Option<Vec<usize>>, TlsError> {
    if let Some(i) = SUITES
        .iter()
        .position(|s| s.openssl.eq_ignore_ascii_case(item) || s.iana.eq_ignore_ascii_case(item))
    {
        if SUITES.get(i).is_some_and(Suite::tls13) {
            *named13 = true;
        }
        return Ok(Some(vec![i]));
    }
    let mut out: Option<Vec<usize>> = None;
    for kw in item.split('+') {
        let upper = kw.to_ascii_uppercase();
        let mut these = Vec::new();
        for (i, s) in SUITES.iter().enumerate() {
            match s.matches_keyword(&upper) {
                Some(true) => these.push(i),
                Some(false) => {}
                None => {
                    return if known_unsupported(item) {
                        Ok(None)
                    } else {
                        Err(name_error(
                            kw,
                            "unknown cipher name or keyword; expected e.g. \
                             ECDHE-ECDSA-AES128-GCM-SHA256, TLS_AES_256_GCM_SHA384, HIGH, ECDHE, \
                             AESGCM or CHACHA20",
                        ))
                    };
                }
            }
        }
        out = Some(match out {
            None => these,
            Some(prev) => prev.into_iter().filter(|i| these.contains(i)).collect(),
        });
    }
    Ok(out)
}

/// The suites of the *ring* provider named by `list` (all of them for `None`).
pub(crate) fn suites_for(
    list: Option<&str>,
) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    let Some(list) = list else {
        return Ok(all.to_vec());
    };
    let parsed = parse_cipher_list(list)?;
    Ok(parsed
        .suites
        .iter()
        .filter_map(|id| all.iter().find(|s| s.suite() == *id).copied())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(list: &str) -> Vec<String> {
        parse_cipher_list(list)
            .unwrap()
            .suites
            .iter()
            .map(|s| format!("{s:?}"))
            .collect()
    }

    #[test]
    fn protocols_map_to_versions_and_old_ones_say_why() {
        assert_eq!(parse_protocol("ssl23").unwrap(), Versions::default());
        assert!(!parse_protocol("tls1.2").unwrap().tls13);
        assert!(!parse_protocol("TLS1.3").unwrap().tls12);
        for old in ["ssl2", "ssl3", "tls1", "tls1.1"] {
            let e = parse_protocol(old).unwrap_err().to_string();
            assert!(e.contains(old) && e.contains("RFC"), "{e}");
        }
        assert!(parse_protocol("tls9")
            .unwrap_err()
            .to_string()
            .contains("'tls9'"));
    }

    #[test]
    fn ssl_options() {
        assert_eq!(parse_ssl_option("no_tlsv1.3").unwrap(), SslOption::NoTls13);
        assert!(matches!(
            parse_ssl_option("no_sslv3").unwrap(),
            SslOption::Moot(_)
        ));
        let e = parse_ssl_option("no_thing").unwrap_err().to_string();
        assert!(e.contains("'no_thing'"), "{e}");
    }

    #[test]
    fn openssl_and_iana_names_select_suites() {
        assert_eq!(
            names("ECDHE-ECDSA-AES128-GCM-SHA256"),
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(
            names("TLS_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
    }

    #[test]
    fn keywords_and_exclusions() {
        // The classic operator string: every TLS 1.2 suite we have, nothing weak to remove.
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 9);
        assert_eq!(
            names("ECDHE+AESGCM:!ECDSA"),
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(names("CHACHA20:-ECDHE-RSA-CHACHA20-POLY1305").len(), 4);
    }

    #[test]
    fn unsupported_suites_are_skipped_and_reported_typos_are_errors() {
        let l = parse_cipher_list("ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:DES-CBC3-SHA").unwrap();
        assert_eq!(l.skipped, ["AES128-SHA", "DES-CBC3-SHA"]);
        let e = parse_cipher_list("ECDHE-RSA-AES128-GCM-SHA256:BOGUS").unwrap_err();
        assert!(e.to_string().contains("'BOGUS'"), "{e}");
        let e = parse_cipher_list("AES128-SHA").unwrap_err();
        assert!(e.to_string().contains("selects no cipher"), "{e}");
        assert!(parse_cipher_list("!").is_err());
    }

    #[test]
    fn every_selected_suite_is_offered_by_ring() {
        for list in [
            "HIGH",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_AES_256_GCM_SHA384",
        ] {
            let want = parse_cipher_list(list).unwrap().suites.len();
            assert_eq!(suites_for(Some(list)).unwrap().len(), want, "{list}");
        }
        assert_eq!(suites_for(None).unwrap().len(), 9);
    }

    proptest! {
        /// Arbitrary text never panics and never yields an empty list.
        #[test]
        fn cipher_lists_never_panic(s in ".{0,80}") {
            if let Ok(l) = parse_cipher_list(&s) {
                prop_assert!(!l.suites.is_empty());
            }
        }

        /// Lists built from known tokens always parse.
        #[test]
        fn known_tokens_parse(
            items in proptest::collection::vec(
                proptest::sample::select(vec![
                    "HIGH", "!aNULL", "ECDHE+AESGCM", "-RSA", "+AES256", "CHACHA20",
                    "TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "!MD5",
                ]),
                1..6,
            )
        ) {
            let list = items.join(":");
            // Only an all-exclusion list may select nothing.
            match parse_cipher_list(&list) {
                Ok(l) => prop_assert!(!l.suites.is_empty()),
                Err(e) => prop_assert!(e.to_string().contains("selects no cipher"), "{}", e),
            }
        }
    }
}
