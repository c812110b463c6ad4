//! The hub: Server-Sent Events subscribers held by the master, so a live
//! feed costs a few KiB per reader and no PHP worker (issue 11).
//!
//! - `topics`: selectors (`*`, exact topics, RFC 6570 URI templates).
//! - `history`: the bounded ring of recent updates, for replay.
//! - `dispatch`: subscribers, the topic index, encode-once fan-out into
//!   bounded per-subscriber queues (a slow subscriber is dropped).
//! - `protocol`: the Mercure HTTP endpoints and authorization (JWT).
//! - `transport`: where updates travel between nodes (in-process, a Redis
//!   Stream, a PostgreSQL table with LISTEN/NOTIFY), issue 12.
//!
//! PHP reaches it through the pool: `spindle_publish()` becomes a
//! [`Hub::publish`], and `spindle_subscribe()` hands the request's
//! connection over with [`Hub::handoff`]. The hub never calls into the pool.

mod dispatch;
mod history;
pub mod protocol;
pub mod queue;
pub mod topics;
pub mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use dispatch::{Hub, HubMetrics, HubStream, Subscribe};

/// What the hub runs with.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Updates kept for replay.
    pub history: usize,
    /// Bytes the kept updates may take (their encoded frames).
    pub history_bytes: usize,
    /// Subscribers at most; past it subscribing answers 503.
    pub max_subscribers: usize,
    /// Quiet time after which a stream gets a keep-alive comment.
    pub keepalive: Option<Duration>,
    /// Events that may wait for one subscriber before it is dropped.
    pub queue: usize,
    /// Publish subscription events when subscribers come and go.
    pub subscription_events: bool,
    pub auth: protocol::AuthConfig,
    /// `--hub-transport`.
    pub transport: transport::TransportConfig,
    /// `--hub-pg-channel`: (PostgreSQL channel, topic).
    pub pg_channels: Vec<(String, String)>,
    /// `--hub-pg-url`: where those channels are, when the transport is not
    /// PostgreSQL.
    pub pg_url: Option<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history: 1000,
            history_bytes: 16 << 20,
            max_subscribers: 100_000,
            keepalive: Some(Duration::from_secs(15)),
            queue: 64,
            subscription_events: false,
            auth: protocol::AuthConfig::default(),
            transport: transport::TransportConfig::Local,
            pg_channels: Vec::new(),
            pg_url: None,
        }
    }
}

/// One update, as a publisher gives it.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// The first is the canonical topic, the rest alternates.
    pub topics: Vec<String>,
    pub data: String,
    pub private: bool,
    /// Generated (`urn:uuid:...`) when absent; never starts with `#`.
    pub id: Option<String>,
    /// The SSE `event:` field.
    pub event_type: Option<String>,
    /// The SSE `retry:` field, in milliseconds.
    pub retry: Option<u64>,
}

/// A subscription handed over by a PHP script (`spindle_subscribe()`): the
/// script authorized the user; the master streams.
#[derive(Debug, Clone, Default)]
pub struct Handoff {
    /// Topic selectors to receive.
    pub topics: Vec<String>,
    /// Selectors whose private updates this subscriber may receive.
    pub private: Vec<String>,
    /// Replay what followed this id (the request's Last-Event-ID by default).
    pub last_event_id: Option<String>,
    /// A `retry:` field sent first, in milliseconds.
    pub retry: Option<u64>,
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The update itself is wrong (no topic, an id starting with `#`...).
    Invalid(String),
    /// The hub cannot take it now (a transport is down).
    Unavailable(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Invalid(why) => write!(f, "invalid update: {why}"),
            PublishError::Unavailable(why) => write!(f, "the hub is unavailable: {why}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// A selector is not a valid topic or URI template.
    InvalidSelector(String),
    /// `--hub-max-subscribers` reached.
    Full,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::InvalidSelector(s) => write!(f, "invalid topic selector: {s}"),
            SubscribeError::Full => f.write_str("too many subscribers (--hub-max-subscribers)"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Shared handle.
pub type SharedHub = Arc<Hub>;
