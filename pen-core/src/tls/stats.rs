//! Handshake counters for the metrics: completed handshakes by version and kind (full or
//! resumed), failures by reason, certificate reloads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a handshake failed (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The client closed (or reset) the connection before the handshake finished.
    Eof,
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// `-R`: the client sent no certificate.
    NoClientCert,
    /// The client's certificate did not verify.
    BadClientCert,
    /// Nothing in common: versions, suites, groups or signature schemes.
    Incompatible,
    /// The client broke the protocol (not TLS at all, bad messages, bad MACs).
    Protocol,
    /// The client sent a fatal alert.
    Alert,
    /// Anything else (socket errors included).
    Other,
}

impl Failure {
    /// Every reason, in the order of the metrics.
    pub(crate) const ALL: [Failure; 8] = [
        Failure::Eof,
        Failure::Timeout,
        Failure::NoClientCert,
        Failure::BadClientCert,
        Failure::Incompatible,
        Failure::Protocol,
        Failure::Alert,
        Failure::Other,
    ];

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Failure::Eof => "eof",
            Failure::Timeout => "timeout",
            Failure::NoClientCert => "no_client_cert",
            Failure::BadClientCert => "bad_client_cert",
            Failure::Incompatible => "incompatible",
            Failure::Protocol => "protocol",
            Failure::Alert => "alert",
            Failure::Other => "other",
        }
    }

    /// Classifies a rustls error.
    pub(crate) fn of(e: &rustls::Error) -> Failure {
        use rustls::Error as E;
        match e {
            E::NoCertificatesPresented => Failure::NoClientCert,
            E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => Failure::BadClientCert,
            E::PeerIncompatible(_) => Failure::Incompatible,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerMisbehaved(_)
            | E::DecryptError => Failure::Protocol,
            E::AlertReceived(_) => Failure::Alert,
            _ => Failure::Other,
        }
    }

    fn index(self) -> usize {
        Failure::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// The counters (all workers).
#[derive(Debug, Default)]
pub(crate) struct TlsStats {
    /// Completed handshakes: [TLS 1.2, TLS 1.3] x [full, resumed].
    done: [[AtomicU64; 2]; 2],
    failed: [AtomicU64; Failure::ALL.len()],
    /// Successful certificate reloads.
    pub(crate) reloads: AtomicU64,
}

impl TlsStats {
    /// Counts a completed handshake.
    pub(crate) fn handshake(&self, tls13: bool, resumed: bool) {
        if let Some(c) = self
            .done
            .get(usize::from(tls13))
            .and_then(|v| v.get(usize::from(resumed)))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a failed handshake.
    pub(crate) fn failure(&self, why: Failure) {
        if let Some(c) = self.failed.get(why.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The counters' values now.
    pub(crate) fn values(&self) -> TlsValues {
        TlsValues {
            handshakes: self.handshakes(),
            failures: self.failures(),
            reloads: self.reloads.load(Relaxed),
        }
    }

    /// Completed handshakes: (version label, kind label, count), every combination.
    fn handshakes(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (v, version) in ["TLSv1_2", "TLSv1_3"].into_iter().enumerate() {
            for (k, kind) in ["full", "resumed"].into_iter().enumerate() {
                let n = self
                    .done
                    .get(v)
                    .and_then(|x| x.get(k))
                    .map_or(0, |c| c.load(Relaxed));
                out.push((version, kind, n));
            }
        }
        out
    }

    /// Failed handshakes: (reason label, count), every reason.
    fn failures(&self) -> Vec<(&'static str, u64)> {
        Failure::ALL
            .iter()
            .zip(self.failed.iter())
            .map(|(f, c)| (f.label(), c.load(Relaxed)))
            .collect()
    }
}

/// A copy of the TLS handshake counters, for the metrics, the status page and
/// [`Status::tls`](crate::Status::tls).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsValues {
    /// Completed handshakes: (version, kind, count) for every combination of version
    /// (`TLSv1_2`, `TLSv1_3`) and kind (`full`, `resumed`).
    pub handshakes: Vec<(&'static str, &'static str, u64)>,
    /// Failed handshakes: (reason, count) for every reason (`eof`, `timeout`,
    /// `no_client_cert`, `bad_client_cert`, `incompatible`, `protocol`, `alert`, `other`).
    pub failures: Vec<(&'static str, u64)>,
    /// Successful certificate reloads.
    pub reloads: u64,
}
