//! Building the rustls `ServerConfig` new connections use, from [`TlsOptions`]: the default
//! certificate and the SNI ones behind one resolver, the client-certificate verifier, versions,
//! suites, and the session-resumption parts that outlive every rebuild.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;

use super::{load, names, TlsError, TlsOptions};

/// TLS 1.2 session-id cache entries (TLS 1.3 resumes with stateless tickets).
const SESSION_CACHE: usize = 16 * 1024;

/// Resumption state shared by every configuration a balancer builds, so a reload does not end
/// resumption: the ticket key (rotated by rustls every 6 hours) and the session cache.
#[derive(Clone)]
pub(crate) struct SessionParts {
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    cache: Arc<ServerSessionMemoryCache>,
}

impl SessionParts {
    pub(crate) fn new() -> Result<Self, TlsError> {
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::Config(format!("cannot make a session ticket key: {e}")))?;
        Ok(SessionParts {
            ticketer,
            cache: ServerSessionMemoryCache::new(SESSION_CACHE),
        })
    }
}

/// Picks the certificate by the client's SNI name, the default one otherwise.
#[derive(Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello.server_name().and_then(|n| {
            // rustls hands names over as sent; DNS names are case-insensitive.
            if n.bytes().any(|b| b.is_ascii_uppercase()) {
                self.by_name.get(&n.to_ascii_lowercase())
            } else {
                self.by_name.get(n)
            }
        });
        Some(Arc::clone(named.unwrap_or(&self.default)))
    }
}

/// Builds the configuration `o` describes, reading every file it names.
pub(crate) fn server_config(
    o: &TlsOptions,
    parts: &SessionParts,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let key_path = o.key.as_deref().unwrap_or(&o.cert);
    let mut default = load::certified_key(&o.cert, key_path, Vec::new())?;
    if let Some(f) = &o.ocsp_response {
        default.ocsp = Some(load::ocsp(f, &default.cert)?);
    }
    let by_name = match &o.sni_path {
        Some(dir) => load::sni_dir(dir)?.into_iter().collect(),
        None => HashMap::new(),
    };
    let certs = Arc::new(Certs {
        default: Arc::new(default),
        by_name,
    });

    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = names::suites_for(o.ciphers.as_deref())?;
    let provider = Arc::new(provider);

    let mut versions = Vec::new();
    if o.versions.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if o.versions.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(TlsError::Config(
            "no TLS version left to offer (both TLS 1.2 and 1.3 are turned off)".to_string(),
        ));
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(format!("cipher suites and versions do not fit: {e}")))?;

    let has_ca = o.ca_file.is_some() || o.ca_dir.is_some();
    if o.require_client_cert && !has_ca {
        return Err(TlsError::Config(
            "-R (require a client certificate) needs the trusted CAs: -G FILE or -A DIR"
                .to_string(),
        ));
    }
    let builder = if has_ca {
        let roots = load::ca_roots(o.ca_file.as_deref(), o.ca_dir.as_deref())?;
        let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if !o.require_client_cert {
            v = v.allow_unauthenticated();
        }
        let verifier = v
            .build()
            .map_err(|e| TlsError::Config(format!("cannot verify client certificates: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(certs);
    config.ignore_client_order = o.server_preference;
    config.ticketer = Arc::clone(&parts.ticketer);
    config.session_storage = parts.cache.clone();
    Ok(Arc::new(config))
}
