//! TLS for the metrics endpoint. The certificate and key are PEM files (a cert-manager
//! Secret mounted into the pod); they are read again when they change, so a rotated
//! certificate is served without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the serving certificate and its key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsTlsError {
    #[error("metrics TLS: cannot read a PEM certificate from {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("metrics TLS: cannot read a PEM private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("metrics TLS: the key {key} does not belong to the certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("metrics TLS: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(tls: &MetricsTls) -> Result<Arc<CertifiedKey>, MetricsTlsError> {
    let cert_error = |reason: String| MetricsTlsError::Cert {
        path: tls.cert.clone(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| MetricsTlsError::Key {
        path: tls.key.clone(),
        reason: e.to_string(),
    })?;
    let signing =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| MetricsTlsError::Key {
                path: tls.key.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| MetricsTlsError::Mismatch {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(certified))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Serves the current certificate; a handshake after the files changed reloads them (a
/// broken pair on disk keeps the previous one, with a warning).
#[derive(Debug)]
struct ReloadingCert {
    tls: MetricsTls,
    current: RwLock<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let stamps = (modified(&self.tls.cert), modified(&self.tls.key));
        {
            let cur = self.current.read();
            if (cur.0, cur.1) == stamps {
                return Some(cur.2.clone());
            }
        }
        let mut cur = self.current.write();
        match load(&self.tls) {
            Ok(fresh) => {
                tracing::info!(cert = %self.tls.cert.display(), "metrics TLS certificate reloaded");
                *cur = (stamps.0, stamps.1, fresh);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics TLS certificate not reloaded; serving the previous one");
                // Do not retry on every handshake until the files change again.
                (cur.0, cur.1) = stamps;
            }
        }
        Some(cur.2.clone())
    }
}

/// A rustls server configuration for the metrics endpoint; fails when the files do not
/// hold a usable certificate and key.
pub fn server_config(tls: &MetricsTls) -> Result<rustls::ServerConfig, MetricsTlsError> {
    let stamps = (modified(&tls.cert), modified(&tls.key));
    let first = load(tls)?;
    let resolver = ReloadingCert {
        tls: tls.clone(),
        current: RwLock::new((stamps.0, stamps.1, first)),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/metrics-tls")
            .join(name)
    }

    #[test]
    fn loads_a_matching_pair() {
        let tls = MetricsTls {
            cert: fixture("a.crt"),
            key: fixture("a.key"),
        };
        assert!(server_config(&tls).is_ok());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let missing = MetricsTls {
            cert: fixture("nope.crt"),
            key: fixture("a.key"),
        };
        let e = server_config(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.crt"), "{e}");
        let swapped = MetricsTls {
            cert: fixture("a.key"),
            key: fixture("a.crt"),
        };
        assert!(server_config(&swapped).is_err());
        let mismatched = MetricsTls {
            cert: fixture("a.crt"),
            key: fixture("b.key"),
        };
        let e = server_config(&mismatched).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
    }
}
