//! Automatic certificates over ACME (RFC 8555) with the TLS-ALPN-01
//! challenge (RFC 8737), answered on the TLS listener itself, so no other
//! port is needed. instant-acme speaks the protocol; this module keeps the
//! account and certificate in `--acme-cache`, renews 30 days before expiry
//! and swaps the new certificate in without dropping a connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

use super::tls::{self, Certificates};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Renew when fewer days than this are left.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86400);

/// What `--acme-*` asked for.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    pub directory: String,
    pub cache: PathBuf,
    pub email: Option<String>,
}

impl AcmeConfig {
    fn cert_path(&self) -> PathBuf {
        self.cache.join(format!("{}.crt", self.domains[0]))
    }
    fn key_path(&self) -> PathBuf {
        self.cache.join(format!("{}.key", self.domains[0]))
    }
    fn account_path(&self) -> PathBuf {
        self.cache.join("account.json")
    }
}

/// The certificate to start with: the cached one when it is valid, else a
/// self-signed placeholder for the domains until the first issuance.
pub fn initial(config: &AcmeConfig) -> Result<Arc<CertifiedKey>, String> {
    let files = tls::TlsFiles {
        cert: config.cert_path(),
        key: config.key_path(),
    };
    if let Ok(ck) = tls::load(&files) {
        return Ok(ck);
    }
    self_signed(&config.domains, None)
}

/// A self-signed certificate for `domains`; with `acme_digest`, the
/// TLS-ALPN-01 challenge certificate carrying it.
fn self_signed(
    domains: &[String],
    acme_digest: Option<&[u8]>,
) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(|e| e.to_string())?;
    if let Some(d) = acme_digest {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::new_acme_identifier(d));
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| e.to_string())?;
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der_key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Seconds until the current certificate in the cache expires, if any.
fn time_left(config: &AcmeConfig) -> Option<Duration> {
    let pem = std::fs::read(config.cert_path()).ok()?;
    let der = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(
        not_after.saturating_sub(now).max(0) as u64
    ))
}

/// Keeps a valid certificate for the domains: obtains one at once when
/// the cache has none, renews it 30 days before it expires, retries
/// failures with backoff (1 minute, doubling, at most 1 hour).
pub async fn run(config: AcmeConfig, certs: Arc<Certificates>) {
    let mut backoff = Duration::from_secs(60);
    loop {
        let due = time_left(&config).is_none_or(|left| left < RENEW_BEFORE);
        if !due {
            tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
            continue;
        }
        tracing::info!(domains = ?config.domains, "ACME: requesting a certificate from {}", config.directory);
        match obtain(&config, &certs).await {
            Ok(()) => {
                backoff = Duration::from_secs(60);
                let files = tls::TlsFiles {
                    cert: config.cert_path(),
                    key: config.key_path(),
                };
                match tls::load(&files) {
                    Ok(ck) => {
                        certs.set(ck);
                        tracing::info!(domains = ?config.domains, "ACME: certificate installed");
                    }
                    Err(e) => tracing::error!("ACME: the issued certificate does not load: {e}"),
                }
            }
            Err(e) => {
                tracing::error!("ACME: {e}; retrying in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

/// The HTTP client for the ACME server: the system's roots plus the file
/// named by SSL_CERT_FILE (a private ACME server's CA, as in the tests).
fn http_client() -> Result<Box<dyn instant_acme::HttpClient>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut files = vec![PathBuf::from("/etc/ssl/certs/ca-certificates.crt")];
    if let Some(extra) = std::env::var_os("SSL_CERT_FILE") {
        files.push(PathBuf::from(extra));
    }
    for f in &files {
        if let Ok(iter) = CertificateDer::pem_file_iter(f) {
            for c in iter.flatten() {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted root certificates (install ca-certificates)".into());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    Ok(Box::new(client))
}

async fn account(config: &AcmeConfig) -> Result<Account, String> {
    let builder = Account::builder_with_http(http_client()?);
    if let Ok(text) = std::fs::read_to_string(config.account_path()) {
        if let Ok(creds) = serde_json::from_str::<AccountCredentials>(&text) {
            return builder
                .from_credentials(creds)
                .await
                .map_err(|e| format!("restoring the account: {e}"));
        }
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("creating the account: {e}"))?;
    let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    write_private(&config.account_path(), json.as_bytes())?;
    Ok(account)
}

async fn obtain(config: &AcmeConfig, certs: &Certificates) -> Result<(), String> {
    std::fs::create_dir_all(&config.cache)
        .map_err(|e| format!("--acme-cache {}: {e}", config.cache.display()))?;
    let account = account(config).await?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or("the ACME server offers no tls-alpn-01 challenge")?;
        let domain = challenge.identifier().to_string();
        let digest = challenge.key_authorization().digest();
        let ck = self_signed(std::slice::from_ref(&domain), Some(digest.as_ref()))?;
        certs.set_challenge(&domain, ck);
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge for {domain}: {e}"))?;
    }
    let retry = RetryPolicy::new().timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    certs.clear_challenges();
    if status != OrderStatus::Ready {
        return Err(format!("the order is {status:?}, not ready"));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    write_private(&config.key_path(), key_pem.as_bytes())?;
    std::fs::write(config.cert_path(), chain_pem.as_bytes())
        .map_err(|e| format!("{}: {e}", config.cert_path().display()))?;
    Ok(())
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
