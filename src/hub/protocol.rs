//! The Mercure HTTP endpoints at `/.well-known/mercure` and authorization.

/// How publishers and subscribers prove what they may do.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Verifies publisher tokens; `None`: nobody may publish over HTTP.
    pub publisher_key: Option<Key>,
    /// Verifies subscriber tokens; `None`: only public updates, anonymously.
    pub subscriber_key: Option<Key>,
    /// Subscribers without a token receive public updates.
    pub anonymous: bool,
    /// Origins allowed to publish or subscribe from a browser (CORS).
    pub cors_origins: Vec<String>,
    /// The cookie a subscriber's token may come in.
    pub cookie_name: String,
}

/// A verification key: an HMAC secret, or a public key (RS256/ES256).
#[derive(Clone)]
pub struct Key {
    pub decoding: jsonwebtoken::DecodingKey,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

impl Key {
    /// `@/path/key.pem` reads an RS256 or ES256 public key (PEM); anything
    /// else is an HS256 secret.
    pub fn parse(v: &str) -> Result<Key, String> {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let Some(path) = v.strip_prefix('@') else {
            if v.len() < 16 {
                return Err("an HS256 secret needs at least 16 bytes".into());
            }
            return Ok(Key {
                decoding: DecodingKey::from_secret(v.as_bytes()),
                algorithms: vec![Algorithm::HS256],
            });
        };
        let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Key {
                decoding: k,
                algorithms: vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
            });
        }
        if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
            return Ok(Key {
                decoding: k,
                algorithms: vec![Algorithm::ES256, Algorithm::ES384],
            });
        }
        Err(format!("{path}: not an RSA or EC public key in PEM form"))
    }
}
