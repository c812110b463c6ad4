//! Checking the hub's, TLS's and ACME's options.

use std::time::Duration;

use super::{bad, ConfigError, Listen, ServeArgs};

impl ServeArgs {
    pub(super) fn resolve_acme(
        &self,
    ) -> Result<Option<crate::http::acme::AcmeConfig>, ConfigError> {
        if self.acme_domain.is_empty() {
            if self.acme_directory.is_some() {
                return Err(bad("--acme-directory", "needs --acme-domain"));
            }
            return Ok(None);
        }
        if self.tls_cert.is_some() {
            return Err(bad(
                "--acme-domain",
                "use either --acme-domain or --tls-cert",
            ));
        }
        if matches!(self.listen, Listen::Unix(_)) {
            return Err(bad("--acme-domain", "TLS needs a TCP --listen address"));
        }
        for d in &self.acme_domain {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(bad("--acme-domain", format!("{d:?} is not a DNS name")));
            }
        }
        let directory = self
            .acme_directory
            .clone()
            .unwrap_or_else(|| crate::http::acme::LETS_ENCRYPT.to_string());
        if !directory.starts_with("https://") {
            return Err(bad("--acme-directory", "must be an https:// URL"));
        }
        Ok(Some(crate::http::acme::AcmeConfig {
            domains: self
                .acme_domain
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            directory,
            cache: self.acme_cache.clone(),
            email: self.acme_email.clone(),
        }))
    }

    pub(super) fn resolve_tls(&self) -> Result<Option<crate::http::tls::TlsFiles>, ConfigError> {
        let files = match (&self.tls_cert, &self.tls_key) {
            (None, None) => {
                if self.redirect_http.is_some() && self.acme_domain.is_empty() {
                    return Err(bad(
                        "--redirect-http",
                        "needs --tls-cert and --tls-key, or --acme-domain",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => return Err(bad("--tls-key", "--tls-cert needs --tls-key too")),
            (None, Some(_)) => return Err(bad("--tls-cert", "--tls-key needs --tls-cert too")),
            (Some(cert), Some(key)) => crate::http::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        };
        if matches!(self.listen, Listen::Unix(_)) {
            return Err(bad("--tls-cert", "TLS needs a TCP --listen address"));
        }
        crate::http::tls::load(&files).map_err(|e| bad("--tls-cert", e))?;
        Ok(Some(files))
    }

    pub(super) fn resolve_hub(&self) -> Result<Option<crate::hub::HubConfig>, ConfigError> {
        use crate::hub::transport::TransportConfig;
        if !self.hub {
            if self.hub_transport != "local" || !self.hub_pg_channel.is_empty() {
                return Err(bad(
                    "--hub-transport",
                    "--hub-transport and --hub-pg-channel need --hub",
                ));
            }
            return Ok(None);
        }
        let key = |option: &'static str, v: &Option<String>| match v {
            None => Ok(None),
            Some(v) => crate::hub::protocol::Key::parse(v)
                .map(Some)
                .map_err(|e| bad(option, e)),
        };
        if self.hub_max_subscribers == 0 {
            return Err(bad("--hub-max-subscribers", "must be at least 1"));
        }
        if self.hub_cookie_name.is_empty() {
            return Err(bad("--hub-cookie-name", "must not be empty"));
        }
        let transport = TransportConfig::parse(&self.hub_transport)
            .map_err(|why| bad("--hub-transport", &why))?;
        let mut pg_channels = Vec::new();
        for c in &self.hub_pg_channel {
            match c.split_once('=') {
                Some((channel, topic)) if !channel.is_empty() && !topic.is_empty() => {
                    pg_channels.push((channel.to_string(), topic.to_string()))
                }
                _ => return Err(bad("--hub-pg-channel", "expected CHANNEL=TOPIC")),
            }
        }
        if let Some(url) = &self.hub_pg_url {
            match TransportConfig::parse(url) {
                Ok(TransportConfig::Postgres(_)) => {}
                Ok(_) => return Err(bad("--hub-pg-url", "expected a postgres:// URL")),
                Err(why) => return Err(bad("--hub-pg-url", &why)),
            }
        }
        if !pg_channels.is_empty()
            && self.hub_pg_url.is_none()
            && transport.postgres_url().is_none()
        {
            return Err(bad(
                "--hub-pg-channel",
                "needs a PostgreSQL database: --hub-transport postgres://... or --hub-pg-url",
            ));
        }
        Ok(Some(crate::hub::HubConfig {
            transport,
            pg_channels,
            pg_url: self.hub_pg_url.clone(),
            history: self.hub_history,
            max_subscribers: self.hub_max_subscribers,
            keepalive: (self.sse_keepalive > 0).then(|| Duration::from_secs(self.sse_keepalive)),
            subscription_events: self.hub_subscriptions,
            auth: crate::hub::protocol::AuthConfig {
                publisher_key: key("--hub-publisher-key", &self.hub_publisher_key)?,
                subscriber_key: key("--hub-subscriber-key", &self.hub_subscriber_key)?,
                anonymous: self.hub_anonymous,
                cors_origins: self.hub_cors_origin.clone(),
                cookie_name: self.hub_cookie_name.clone(),
            },
            ..crate::hub::HubConfig::default()
        }))
    }
}
