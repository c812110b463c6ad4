//! The Mercure HTTP endpoints at `/.well-known/mercure` and authorization.
//!
//! The protocol deployed clients speak today (Symfony's Mercure component,
//! API Platform, FrankenPHP's hub): `topic` selectors, `lastEventID`, the
//! `mercure` JWT claim (`publish`, `subscribe`, `payload`), the token in
//! `Authorization: Bearer`, the `authorization` query parameter or the
//! `mercureAuthorization` cookie.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;

use super::dispatch::{Hub, Subscribe};
use super::topics::Selector;
use super::{PublishError, SubscribeError, Update};
use crate::http::body::{self, Body};

/// Where the hub answers.
pub const PATH: &str = "/.well-known/mercure";
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";
/// The largest publish body taken.
const MAX_PUBLISH_BYTES: usize = 1 << 20;

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

/// The `mercure` claim of a token.
#[derive(Debug, Default, Deserialize)]
struct MercureClaim {
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    mercure: Option<MercureClaim>,
    #[serde(default)]
    exp: Option<u64>,
}

/// A verified token's claims.
struct Granted {
    claim: MercureClaim,
    expires: Option<SystemTime>,
}

/// An answer with a short reason, for a request the hub refuses.
fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    body::text(status, &format!("{} {why}", status.as_u16()))
}

/// The request's token: `Authorization: Bearer`, else the `authorization`
/// query parameter, else the cookie.
fn token<'a>(
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
    cookie_name: &str,
) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string());
    }
    if let Some((_, v)) = query.iter().find(|(k, _)| k == "authorization") {
        return Some(v.clone());
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for c in cookie::Cookie::split_parse(v).flatten() {
            if c.name() == cookie_name {
                return Some(c.value().to_string());
            }
        }
    }
    None
}

/// Verifies `jwt` with `key`: signature, algorithm (never `none`), `exp`.
fn verify(jwt: &str, key: &Key) -> Result<Granted, String> {
    use jsonwebtoken::errors::ErrorKind;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("malformed token: {e}"))?;
    if !key.algorithms.contains(&header.alg) {
        return Err(format!("algorithm {:?} is not accepted here", header.alg));
    }
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.algorithms = key.algorithms.clone();
    v.required_spec_claims.clear();
    v.validate_exp = true;
    v.leeway = 0;
    v.validate_aud = false;
    let data =
        jsonwebtoken::decode::<Claims>(jwt, &key.decoding, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => "the token has expired".to_string(),
            ErrorKind::InvalidSignature => "bad token signature".to_string(),
            _ => format!("bad token: {e}"),
        })?;
    Ok(Granted {
        claim: data.claims.mercure.unwrap_or_default(),
        expires: data.claims.exp.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    })
}

fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The CORS headers for an allowed `Origin`.
fn cors(auth: &AuthConfig, req_headers: &HeaderMap, resp: &mut Response<Body>) {
    let Some(origin) = req_headers.get(header::ORIGIN) else {
        return;
    };
    let allowed = auth
        .cors_origins
        .iter()
        .any(|o| o == "*" || o.as_bytes() == origin.as_bytes());
    if !allowed {
        return;
    }
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Answers a request for `/.well-known/mercure` or below.
pub async fn handle<B>(hub: &Arc<Hub>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let auth = &hub.config().auth;
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = Response::new(Body::Empty);
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Cache-Control, Content-Type, Last-Event-ID"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
        r
    } else if path == PATH || path == format!("{PATH}/") {
        match *req.method() {
            Method::GET | Method::HEAD => subscribe(hub, &req),
            Method::POST => publish(hub, req).await,
            _ => {
                let mut r = refuse(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "use GET to subscribe, POST to publish",
                );
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, POST, OPTIONS"),
                );
                r
            }
        }
    } else if path == SUBSCRIPTIONS || path.starts_with(&format!("{SUBSCRIPTIONS}/")) {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            subscriptions(hub, &req)
        } else {
            refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "the subscriptions API is read-only",
            )
        }
    } else {
        body::status(StatusCode::NOT_FOUND)
    };
    cors(auth, &headers, &mut resp);
    resp
}

fn subscribe<B>(hub: &Arc<Hub>, req: &Request<B>) -> Response<Body> {
    let auth = &hub.config().auth;
    let query = query_pairs(req.uri());
    let selectors: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v.clone())
        .collect();
    if selectors.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "missing \"topic\" parameter");
    }
    // The subscriber's rights: a verified token, or anonymity where allowed.
    let granted = match (
        token(req.headers(), &query, &auth.cookie_name),
        &auth.subscriber_key,
    ) {
        (Some(jwt), Some(key)) => match verify(&jwt, key) {
            Ok(g) => Some(g),
            Err(why) => return refuse(StatusCode::UNAUTHORIZED, &why),
        },
        (None, Some(_)) if !auth.anonymous => {
            return refuse(StatusCode::UNAUTHORIZED, "a subscriber token is required");
        }
        _ => None,
    };
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "lastEventID" || k == "last-event-id" || k == "Last-Event-ID")
                .map(|(_, v)| v.clone())
        });
    let (private, expires, payload) = match granted {
        Some(g) => (
            g.claim.subscribe.unwrap_or_default(),
            g.expires,
            g.claim.payload,
        ),
        None => (Vec::new(), None, None),
    };
    let stream = hub.subscribe(Subscribe {
        selectors,
        private,
        last_event_id,
        retry: None,
        expires,
        payload,
    });
    match stream {
        Ok(s) => event_stream(s.body, s.last_event_id),
        Err(SubscribeError::InvalidSelector(why)) => refuse(StatusCode::BAD_REQUEST, &why),
        Err(SubscribeError::Full) => {
            let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, "too many subscribers");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

/// A `text/event-stream` response around a hub stream.
pub fn event_stream(body: Body, last_event_id: Option<String>) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = last_event_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        h.insert("last-event-id", id);
    }
    r
}

async fn publish<B>(hub: &Arc<Hub>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let auth = &hub.config().auth;
    let query = query_pairs(req.uri());
    let Some(key) = &auth.publisher_key else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "publishing over HTTP needs --hub-publisher-key (PHP can use spindle_publish())",
        );
    };
    let Some(jwt) = token(req.headers(), &query, &auth.cookie_name) else {
        return refuse(StatusCode::UNAUTHORIZED, "a publisher token is required");
    };
    let granted = match verify(&jwt, key) {
        Ok(g) => g,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, &why),
    };
    let Some(allowed) = granted.claim.publish else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the token has no mercure.publish claim",
        );
    };
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "publish with Content-Type: application/x-www-form-urlencoded",
        );
    }
    let limited = http_body_util::Limited::new(req.into_body(), MAX_PUBLISH_BYTES);
    let bytes = match tokio::time::timeout(Duration::from_secs(30), limited.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "an update may take at most 1 MiB",
            );
        }
        Ok(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        }
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "the request body stalled"),
    };
    let update = match parse_update(&bytes) {
        Ok(u) => u,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let selectors: Result<Vec<Selector>, String> =
        allowed.iter().map(|s| Selector::parse(s)).collect();
    let Ok(selectors) = selectors else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the token's mercure.publish claim holds an invalid selector",
        );
    };
    if !update
        .topics
        .iter()
        .all(|t| selectors.iter().any(|s| s.matches(t)))
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "the token may not publish to every topic of this update",
        );
    }
    match hub.publish(update) {
        Ok(id) => {
            let mut r = Response::new(Body::full(id));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Err(PublishError::Invalid(why)) => refuse(StatusCode::BAD_REQUEST, &why),
        Err(PublishError::Unavailable(why)) => refuse(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

/// The form fields of a publish request.
fn parse_update(body: &[u8]) -> Result<Update, String> {
    let mut u = Update::default();
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "topic" => u.topics.push(v.into_owned()),
            "data" => u.data = v.into_owned(),
            "id" => u.id = Some(v.into_owned()),
            "type" => u.event_type = Some(v.into_owned()),
            "retry" => {
                u.retry =
                    Some(v.parse().map_err(|_| {
                        format!("retry must be a number of milliseconds, not {v:?}")
                    })?)
            }
            "private" => u.private = !matches!(&*v, "" | "0" | "false" | "off"),
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    if u.topics.is_empty() {
        return Err("missing \"topic\" field".into());
    }
    Ok(u)
}

/// The subscriptions API: the active subscriptions as JSON-LD, all of them,
/// those of one topic, or one subscriber's. The subscriber's token must
/// allow the subscription URLs it asks for.
fn subscriptions<B>(hub: &Arc<Hub>, req: &Request<B>) -> Response<Body> {
    let auth = &hub.config().auth;
    let query = query_pairs(req.uri());
    let Some(key) = &auth.subscriber_key else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the subscriptions API needs --hub-subscriber-key",
        );
    };
    let Some(jwt) = token(req.headers(), &query, &auth.cookie_name) else {
        return refuse(StatusCode::UNAUTHORIZED, "a subscriber token is required");
    };
    let granted = match verify(&jwt, key) {
        Ok(g) => g,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, &why),
    };
    let allowed: Vec<Selector> = granted
        .claim
        .subscribe
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Selector::parse(s).ok())
        .collect();
    let path = req.uri().path();
    let rest = path[SUBSCRIPTIONS.len()..].trim_matches('/');
    let mut parts = rest.split('/').filter(|p| !p.is_empty()).map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let (topic, subscriber) = (parts.next(), parts.next());
    let list: Vec<serde_json::Value> = hub
        .subscriptions()
        .into_iter()
        .filter(|(urn, t, _)| {
            topic.as_deref().is_none_or(|x| x == t)
                && subscriber.as_deref().is_none_or(|x| x == urn)
        })
        .filter(|(urn, t, _)| {
            let url = subscription_url(t, urn);
            allowed.iter().any(|s| s.matches(&url))
        })
        .map(|(urn, t, payload)| subscription_json(&t, &urn, payload, true))
        .collect();
    if subscriber.is_some() {
        return match list.into_iter().next() {
            Some(one) => json(one),
            None => body::status(StatusCode::NOT_FOUND),
        };
    }
    json(serde_json::json!({
        "@context": "https://mercure.rocks/",
        "id": path,
        "type": "Subscriptions",
        "lastEventID": hub.last_event_id(),
        "subscriptions": list,
    }))
}

/// The topic of a subscription's events and its id in the API.
pub fn subscription_url(topic: &str, subscriber: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    format!(
        "{SUBSCRIPTIONS}/{}/{}",
        utf8_percent_encode(topic, NON_ALPHANUMERIC),
        utf8_percent_encode(subscriber, NON_ALPHANUMERIC)
    )
}

pub fn subscription_json(
    topic: &str,
    subscriber: &str,
    payload: Option<serde_json::Value>,
    active: bool,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "@context": "https://mercure.rocks/",
        "id": subscription_url(topic, subscriber),
        "type": "Subscription",
        "topic": topic,
        "subscriber": subscriber,
        "active": active,
    });
    if let Some(p) = payload {
        v["payload"] = p;
    }
    v
}

fn json(v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::full(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_forms() {
        let u = parse_update(b"topic=a&topic=b&data=x%0Ay&id=1&type=t&retry=5&private=on").unwrap();
        assert_eq!(u.topics, ["a", "b"]);
        assert_eq!(u.data, "x\ny");
        assert!(u.private);
        assert_eq!(u.retry, Some(5));
        assert!(parse_update(b"data=x").is_err());
        assert!(parse_update(b"topic=a&color=red").is_err());
        assert!(parse_update(b"topic=a&retry=soon").is_err());
    }
}
