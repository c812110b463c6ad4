//! Where published updates go before subscribers see them (issue 12).
//!
//! - `local`: in this process only, delivered at once (the default).
//! - `redis`: a Redis Stream every node appends to (XADD) and reads
//!   (XREAD BLOCK); each node dispatches what it reads to its own
//!   subscribers.
//! - `postgres`: a history table every node inserts into, with
//!   LISTEN/NOTIFY as the wake-up.
//!
//! With a shared transport a publish is acknowledged once the engine has
//! stored it, and the publishing node delivers it like every other node:
//! when its reader sees it. So every node delivers the same updates in the
//! same order, under the same ids, and a client may reconnect to any node
//! with `Last-Event-ID`. Each reader remembers the last entry it saw and
//! resumes after it on reconnect, so nothing stored is skipped and nothing
//! is delivered twice.

mod local;
pub mod pg_channels;
mod postgres;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::dispatch::{Event, Hub};
use super::PublishError;

pub use local::Local;

/// A boxed future borrowed from the transport (the trait stays object safe
/// without an extra crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which transport, from `--hub-transport`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TransportConfig {
    #[default]
    Local,
    /// `redis://`, `rediss://` or `redis+unix://` (as the redis crate reads it).
    Redis(String),
    /// `postgres://` or `postgresql://` (as tokio-postgres reads it).
    Postgres(String),
}

impl TransportConfig {
    /// Reads `--hub-transport`; an empty value or `local` is in-process.
    pub fn parse(url: &str) -> Result<TransportConfig, String> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        match scheme {
            _ if url.is_empty() || url == "local" => Ok(TransportConfig::Local),
            Some("redis" | "rediss" | "redis+unix" | "unix") => {
                ::redis::Client::open(url).map_err(|e| format!("not a Redis URL: {e}"))?;
                Ok(TransportConfig::Redis(url.to_string()))
            }
            Some("postgres" | "postgresql") => {
                postgres::check_url(url)?;
                Ok(TransportConfig::Postgres(url.to_string()))
            }
            _ => Err("expected local, redis://, rediss://, redis+unix:// or postgres://".into()),
        }
    }

    /// The URL when the transport is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        match self {
            TransportConfig::Postgres(u) => Some(u),
            _ => None,
        }
    }
}

/// What `/health` and `/metrics` show of the transport.
#[derive(Debug)]
pub struct TransportHealth {
    /// `local`, `redis` or `postgres`.
    pub kind: &'static str,
    /// Connected (always true for `local`).
    pub up: AtomicBool,
    /// Connection losses, failed connection attempts and failed publishes.
    pub errors: AtomicU64,
    /// How long the newest update read took from being stored to being
    /// read here, in milliseconds.
    pub lag_ms: AtomicU64,
    /// Updates read from the transport (published by any node).
    pub received: AtomicU64,
}

impl TransportHealth {
    pub fn new(kind: &'static str, up: bool) -> TransportHealth {
        TransportHealth {
            kind,
            up: AtomicBool::new(up),
            errors: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Relaxed) != up {
            if up {
                tracing::info!(transport = self.kind, "hub transport connected");
            } else {
                tracing::warn!(transport = self.kind, "hub transport down");
            }
        }
    }

    fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
}

/// One way updates travel between nodes.
pub trait Transport: Send + Sync + 'static {
    /// Stores `event` where every node reads it. `Ok` only once stored;
    /// `hub` is the local hub, for a transport that delivers itself.
    fn publish<'a>(
        &'a self,
        hub: &'a Hub,
        event: Arc<Event>,
    ) -> BoxFuture<'a, Result<(), PublishError>>;

    /// Starts the reading side: every update stored by any node is given
    /// to [`Hub::deliver`] once, in order, until the hub goes away.
    fn start(self: Arc<Self>, hub: Weak<Hub>);

    fn health(&self) -> &Arc<TransportHealth>;
}

/// Builds the transport for `config` (connections open in `start`).
pub fn build(config: &super::HubConfig) -> Arc<dyn Transport> {
    match &config.transport {
        TransportConfig::Local => Arc::new(Local::new()),
        TransportConfig::Redis(url) => Arc::new(redis::Redis::new(url, config.history)),
        TransportConfig::Postgres(url) => Arc::new(postgres::Postgres::new(url, config)),
    }
}

/// The reading side of a transport shared by nodes, one connection at a
/// time; [`keep_reading`] reconnects it.
trait Reader: Transport {
    /// How far the reader got: the last entry read, `None` before the
    /// first connection loaded the engine's history.
    type Cursor: Send;

    /// One connection's life: reads what every node stores and gives it to
    /// the hub, resuming after `last`. Returns `Ok` only once the hub is
    /// gone; resets `backoff` once connected.
    fn session<'a>(
        &'a self,
        hub: &'a Weak<Hub>,
        last: &'a mut Option<Self::Cursor>,
        backoff: &'a mut Backoff,
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;

    /// The connection was lost: publishes must fail at once until the next.
    fn disconnected(&self);
}

/// Keeps `reader` connected until the hub goes away: after each failure,
/// waits (100 ms doubling to 5 s) and connects again, resuming after the
/// last entry read, so nothing stored is skipped or delivered twice.
async fn keep_reading<R: Reader>(reader: Arc<R>, hub: Weak<Hub>) {
    let mut last = None;
    let mut backoff = Backoff::new();
    loop {
        match reader.session(&hub, &mut last, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                reader.disconnected();
                let health = reader.health();
                health.error();
                health.set_up(false);
                tracing::warn!("hub transport ({}): {e}; reconnecting", health.kind);
            }
        }
        if hub.strong_count() == 0 {
            return;
        }
        backoff.wait().await;
    }
}

/// Waits between connection attempts: 100 ms doubling to 5 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }
}

/// How long a publish waits for the engine before answering unavailable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Milliseconds since the Unix epoch, for lag.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
