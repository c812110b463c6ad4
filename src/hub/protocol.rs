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
