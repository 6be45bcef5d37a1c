//! Reading and checking TLS files: certificate chains, private keys, CA bundles and OCSP
//! responses. Every error names the file and what is wrong with it, so a bad file is refused
//! at start (exit 2) or by the command that named it, before anything changes.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// Largest TLS file we read (a certificate bundle is a few KiB; this stops a wrong path such as
/// a device or a huge log from being read whole).
const MAX_FILE: u64 = 4 << 20;

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn bad(p: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::BadFile {
        path: show(p),
        reason: reason.into(),
    }
}

/// Reads a whole (small) regular file: a FIFO or a device is refused at once, never read or
/// waited on. Symbolic links are followed here (certificate deployments such as certbot's
/// `live/` directory are links; what is read is checked, never echoed).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::files::read_regular(path, MAX_FILE, true).map_err(|source| TlsError::Read {
        path: show(path),
        source,
    })
}

/// Every certificate in a PEM text, in order.
pub(crate) fn certs_in(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not valid PEM: {e}")))
}

/// The certificate chain in `path` (leaf first).
pub(crate) fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = certs_in(path, &read(path)?)?;
    if certs.is_empty() {
        return Err(bad(
            path,
            "no certificate found (expected a PEM '-----BEGIN CERTIFICATE-----' block)",
        ));
    }
    Ok(certs)
}

/// The private key in a PEM text (`path` names it in errors).
fn key_in(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => bad(
            path,
            "no private key found (expected a PEM 'PRIVATE KEY', 'EC PRIVATE KEY' or \
             'RSA PRIVATE KEY' block)",
        ),
        e => bad(path, format!("not a valid PEM private key: {e}")),
    })
}

/// Checks the leaf certificate's dates against `now` (seconds since the epoch).
pub(crate) fn check_dates(
    path: &Path,
    leaf: &CertificateDer<'_>,
    now: i64,
) -> Result<(), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(path, format!("not a valid X.509 certificate: {e}")))?;
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(TlsError::Expired {
            path: show(path),
            when: validity.not_after.to_string(),
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(TlsError::NotYetValid {
            path: show(path),
            when: validity.not_before.to_string(),
        });
    }
    Ok(())
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A certificate chain and its key, checked: PEM of the right kinds, a key type rustls can
/// sign with, the key belonging to the leaf, the leaf within its dates. `extra` certificates
/// (an SNI `NAME.ca` file) are appended to the chain.
pub(crate) fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    extra: Vec<CertificateDer<'static>>,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    certified_key_in(
        (cert_path, &cert_pem),
        (key_path, &key_pem),
        extra,
        unix_now(),
    )
}

/// [`certified_key`] over PEM texts already read (the paths name them in errors), checking
/// dates against `now`: the whole path from bytes to a usable key, for tests and fuzzing.
pub(crate) fn certified_key_in(
    (cert_path, cert_pem): (&Path, &[u8]),
    (key_path, key_pem): (&Path, &[u8]),
    extra: Vec<CertificateDer<'static>>,
    now: i64,
) -> Result<CertifiedKey, TlsError> {
    let mut certs = certs_in(cert_path, cert_pem)?;
    if certs.is_empty() {
        return Err(bad(
            cert_path,
            "no certificate found (expected a PEM '-----BEGIN CERTIFICATE-----' block)",
        ));
    }
    certs.extend(extra);
    let key = key_in(key_path, key_pem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad(key_path, format!("unusable private key: {e}")))?;
    if let Some(leaf) = certs.first() {
        check_dates(cert_path, leaf, now)?;
    }
    let ck = CertifiedKey::new(certs, signer);
    match ck.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: show(cert_path),
                key: show(key_path),
            })
        }
        // `Unknown`: the provider cannot tell (never for ring's key types); rustls checks at
        // the first handshake's signature anyway.
        _ => Ok(ck),
    }
}

/// CA certificates for verifying clients: every certificate in `file` and in each regular file
/// of `dir` (files without certificates, such as a README, are skipped).
pub(crate) fn ca_roots(
    file: Option<&Path>,
    dir: Option<&Path>,
) -> Result<rustls::RootCertStore, TlsError> {
    let mut certs = Vec::new();
    if let Some(f) = file {
        certs.extend(chain(f)?);
    }
    if let Some(d) = dir {
        let entries = std::fs::read_dir(d).map_err(|source| TlsError::Read {
            path: show(d),
            source,
        })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let before = certs.len();
        for p in paths.iter().filter(|p| p.is_file()) {
            certs.extend(certs_in(p, &read(p)?).unwrap_or_default());
        }
        if certs.len() == before {
            return Err(bad(d, "no PEM certificates in this directory"));
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        let what = file.or(dir).unwrap_or(Path::new("-"));
        roots
            .add(c)
            .map_err(|e| bad(what, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// An OCSP response (DER) to staple with `chain` (leaf first): a successful basic response
/// for the leaf, checked by [`super::ocsp::check`]; anything else is refused, as whatever is
/// stapled goes to every client.
pub(crate) fn ocsp(path: &Path, chain: &[CertificateDer<'_>]) -> Result<Vec<u8>, TlsError> {
    let der = read(path)?;
    let chain: Vec<&[u8]> = chain.iter().map(|c| c.as_ref()).collect();
    super::ocsp::check(&der, &chain).map_err(|e| bad(path, e.to_string()))?;
    Ok(der)
}

/// The certificates for SNI from `dir`: for each `NAME.crt`, the key `NAME.key` and the
/// optional extra chain `NAME.ca`; names are matched case-insensitively.
pub(crate) fn sni_dir(dir: &Path) -> Result<Vec<(String, Arc<CertifiedKey>)>, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TlsError::Read {
        path: show(dir),
        source,
    })?;
    let mut out = Vec::new();
    let mut crts: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    crts.sort();
    for crt in crts {
        let Some(name) = crt.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let key = crt.with_extension("key");
        let ca = crt.with_extension("ca");
        let extra = if ca.exists() { chain(&ca)? } else { Vec::new() };
        let ck = certified_key(&crt, &key, extra)?;
        out.push((name.to_ascii_lowercase(), Arc::new(ck)));
    }
    if out.is_empty() {
        return Err(bad(dir, "no NAME.crt files in this directory"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_missing_files_are_named() {
        let dir = std::env::temp_dir().join(format!("pen-tls-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = chain(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        let e = key_in(&junk, b"hello\n").unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no private key"),
            "{e}"
        );
        let e = chain(&dir.join("missing.pem")).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = ocsp(&junk, &[]).unwrap_err().to_string();
        assert!(e.contains("OCSP"), "{e}");
        let e = sni_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("NAME.crt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
