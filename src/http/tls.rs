//! TLS on the listener: rustls (no OpenSSL), TLS 1.2 and 1.3, ALPN offering
//! h2 and http/1.1. The certificate and key are read again on SIGHUP; new
//! handshakes use the new pair, established connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate chain and key files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads and checks a certificate chain and its key: both parse, the key
/// matches the certificate, and the certificate is valid now. The error is
/// one line naming the file and the problem.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    let name = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{}: {e}", name(&files.cert)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", name(&files.cert)))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in it (PEM expected)",
            name(&files.cert)
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "{}: no private key in it (PEM expected): {e}",
            name(&files.key)
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", name(&files.key)))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0])
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", name(&files.cert)))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let validity = leaf.validity();
    if validity.not_after.timestamp() < now {
        return Err(format!(
            "{}: the certificate expired on {}",
            name(&files.cert),
            validity.not_after
        ));
    }
    if validity.not_before.timestamp() > now {
        return Err(format!(
            "{}: the certificate is not valid before {}",
            name(&files.cert),
            validity.not_before
        ));
    }
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|_| {
        format!(
            "{}: the key does not match the certificate in {}",
            name(&files.key),
            name(&files.cert)
        )
    })?;
    Ok(Arc::new(ck))
}

/// Serves the current certificate to every handshake; `reload` swaps it.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    pub fn new(files: TlsFiles) -> Result<Arc<Certificates>, String> {
        let current = load(&files)?;
        Ok(Arc::new(Certificates {
            files,
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again; on error the old pair stays (and is logged).
    pub fn reload(&self) {
        match load(&self.files) {
            Ok(ck) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = ck;
                tracing::info!(
                    "TLS certificate reloaded from {}",
                    self.files.cert.display()
                );
            }
            Err(e) => tracing::error!("TLS certificate not reloaded, keeping the old one: {e}"),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The acceptor for a listener serving `certs`.
pub fn acceptor(certs: Arc<Certificates>) -> Result<tokio_rustls::TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
