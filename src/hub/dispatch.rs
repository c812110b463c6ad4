//! Subscribers, the topic index and fan-out.
//!
//! One lock guards the state; a publish encodes its event once and hands a
//! `Bytes` clone to each matching subscriber's bounded queue with
//! `try_send`, so a publisher never waits for a reader. A subscriber whose
//! queue is full is dropped: its stream ends, its `EventSource` reconnects
//! with `Last-Event-ID` and is replayed from the history. Quiet streams cost
//! no wake-ups: one hub-wide tick sends keep-alive comments and closes
//! subscriptions whose token expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};

use super::history::History;
use super::queue::{self, TrySendError};
use super::topics::Selector;
use super::transport::{self, Transport, TransportHealth};
use super::{Handoff, HubConfig, PublishError, SubscribeError, Update};
use crate::http::body::{Body, Tracked};

/// One published update, encoded once as an SSE frame.
#[derive(Debug)]
pub struct Event {
    pub id: String,
    pub topics: Vec<String>,
    pub private: bool,
    pub frame: Bytes,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub subscribers: AtomicU64,
    pub published: AtomicU64,
    pub deliveries: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub replays: AtomicU64,
    pub rejected_full: AtomicU64,
    /// The transport's state (set when the hub is built).
    pub transport: std::sync::OnceLock<Arc<TransportHealth>>,
}

/// A new subscription, as the HTTP side or a hand-off asks for it.
#[derive(Debug, Clone, Default)]
pub struct Subscribe {
    pub selectors: Vec<String>,
    /// Selectors whose private updates this subscriber may receive.
    pub private: Vec<String>,
    /// `Last-Event-ID`, or `earliest`.
    pub last_event_id: Option<String>,
    pub retry: Option<u64>,
    /// When the subscriber's token expires; the stream then ends.
    pub expires: Option<SystemTime>,
    /// The token's `mercure.payload`, shown in subscription events.
    pub payload: Option<serde_json::Value>,
}

/// A subscription's response: the `Last-Event-ID` header to send (when the
/// client asked for a replay) and the event stream.
#[derive(Debug)]
pub struct HubStream {
    pub last_event_id: Option<String>,
    pub body: Body,
}

pub struct Hub {
    config: HubConfig,
    state: Mutex<State>,
    next_subscriber: AtomicU64,
    pub metrics: Arc<HubMetrics>,
    transport: Arc<dyn Transport>,
    /// This hub, for the tasks it spawns (subscription events through a
    /// shared transport).
    me: std::sync::Weak<Hub>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("config", &self.config).finish()
    }
}

struct State {
    history: History,
    subscribers: HashMap<u64, Subscriber>,
    /// Exact topic -> subscribers with that exact selector.
    exact: HashMap<String, Vec<u64>>,
    /// Subscribers with a `*` or template selector: checked on every publish.
    wild: Vec<u64>,
    closed: bool,
}

struct Subscriber {
    selectors: Vec<Selector>,
    private: Vec<Selector>,
    tx: queue::Sender,
    /// Something was sent since the last keep-alive tick.
    active: bool,
    expires: Option<Instant>,
    /// For the subscriptions API and events.
    urn: String,
    topics: Vec<String>,
    payload: Option<serde_json::Value>,
}

impl Subscriber {
    fn wants(&self, e: &Event) -> bool {
        let matches =
            |sels: &[Selector]| sels.iter().any(|s| e.topics.iter().any(|t| s.matches(t)));
        matches(&self.selectors) && (!e.private || matches(&self.private))
    }
}

const KEEPALIVE: &[u8] = b":\n\n";

impl Hub {
    pub fn new(config: HubConfig) -> Arc<Hub> {
        let transport = transport::build(&config);
        let metrics: Arc<HubMetrics> = Arc::default();
        let _ = metrics.transport.set(transport.health().clone());
        Arc::new_cyclic(|me| Hub {
            state: Mutex::new(State {
                history: History::new(config.history, config.history_bytes),
                subscribers: HashMap::new(),
                exact: HashMap::new(),
                wild: Vec::new(),
                closed: false,
            }),
            config,
            next_subscriber: AtomicU64::new(1),
            metrics,
            transport,
            me: me.clone(),
        })
    }

    /// The transport's state, for `/health`.
    pub fn transport_health(&self) -> &Arc<TransportHealth> {
        self.transport.health()
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the hub-wide tick (keep-alives, token expiry), the
    /// transport's reader and the `--hub-pg-channel` listener. Call inside
    /// the tokio runtime.
    pub fn start(self: &Arc<Self>) {
        self.transport.clone().start(Arc::downgrade(self));
        if !self.config.pg_channels.is_empty() {
            let url = self
                .config
                .pg_url
                .clone()
                .or_else(|| self.config.transport.postgres_url().map(str::to_string));
            match url {
                Some(url) => transport::pg_channels::start(
                    url,
                    self.config.pg_channels.clone(),
                    Arc::downgrade(self),
                    self.transport.health().clone(),
                ),
                // The configuration refuses this; never listen silently on nothing.
                None => tracing::error!("--hub-pg-channel needs a PostgreSQL URL"),
            }
        }
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_keepalive = Instant::now();
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                let keepalive = hub
                    .config
                    .keepalive
                    .is_some_and(|k| last_keepalive.elapsed() >= k);
                if keepalive {
                    last_keepalive = Instant::now();
                }
                hub.tick(keepalive);
            }
        });
    }

    fn tick(&self, keepalive: bool) {
        let now = Instant::now();
        let mut st = self.lock();
        let mut gone = Vec::new();
        for (id, s) in st.subscribers.iter_mut() {
            if s.expires.is_some_and(|e| e <= now) || s.tx.is_closed() {
                gone.push(*id);
                continue;
            }
            if keepalive {
                if !s.active {
                    let _ = s.tx.try_send(Bytes::from_static(KEEPALIVE));
                }
                s.active = false;
            }
        }
        let gone: Vec<Subscriber> = gone
            .into_iter()
            .filter_map(|id| self.remove(&mut st, id))
            .collect();
        drop(st);
        self.announce_gone(gone);
    }

    /// Publishes `u` to every matching subscriber (on every node, with a
    /// shared transport); returns its id once the transport stored it.
    pub async fn publish(&self, u: Update) -> Result<String, PublishError> {
        let event = self.prepare(u)?;
        let id = event.id.clone();
        self.transport.publish(self, event).await?;
        Ok(id)
    }

    /// Checks an update and encodes it as an event.
    pub(crate) fn prepare(&self, u: Update) -> Result<Arc<Event>, PublishError> {
        if u.topics.is_empty() || u.topics.iter().any(|t| t.is_empty()) {
            return Err(PublishError::Invalid("an update needs a topic".into()));
        }
        let id = match u.id {
            Some(id) if id.starts_with('#') => {
                return Err(PublishError::Invalid(
                    "an id must not start with '#'".into(),
                ))
            }
            Some(id) if id.is_empty() || id.contains(['\n', '\r']) => {
                return Err(PublishError::Invalid(
                    "an id must be one non-empty line".into(),
                ))
            }
            Some(id) => id,
            None => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        };
        if u.event_type
            .as_deref()
            .is_some_and(|t| t.contains(['\n', '\r']))
        {
            return Err(PublishError::Invalid("a type must be one line".into()));
        }
        Ok(Arc::new(Event {
            frame: encode(&id, u.event_type.as_deref(), u.retry, &u.data),
            id,
            topics: u.topics,
            private: u.private,
        }))
    }

    /// Keeps an event for replay and hands it to this node's subscribers:
    /// what a transport does with each update it carries.
    pub(crate) fn deliver(&self, event: Arc<Event>) {
        let mut st = self.lock();
        st.history.push(event.clone());
        self.metrics.published.fetch_add(1, Relaxed);
        let gone = self.fan_out(&mut st, &event);
        drop(st);
        self.announce_gone(gone);
    }

    /// Keeps an event for replay only: a starting node loading what the
    /// shared transport holds from before it started.
    pub(crate) fn remember(&self, event: Arc<Event>) {
        self.lock().history.push(event);
    }

    /// Subscription events for subscribers that left (with
    /// `--hub-subscriptions`); called without the lock held.
    fn announce_gone(&self, gone: Vec<Subscriber>) {
        for s in gone {
            self.announce(&s.topics, &s.urn, s.payload, false);
        }
    }

    /// Publishes a subscription's arrival or departure on
    /// `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, privately.
    fn announce(
        &self,
        topics: &[String],
        urn: &str,
        payload: Option<serde_json::Value>,
        active: bool,
    ) {
        if !self.config.subscription_events {
            return;
        }
        for t in topics {
            let data = super::protocol::subscription_json(t, urn, payload.clone(), active);
            let event = match self.prepare(Update {
                topics: vec![super::protocol::subscription_url(t, urn)],
                data: data.to_string(),
                private: true,
                ..Update::default()
            }) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("subscription event: {e}");
                    continue;
                }
            };
            if self.transport.health().kind == "local" {
                self.deliver(event);
            } else if let Some(hub) = self.me.upgrade() {
                // This runs with callers' state around it (subscribe, the
                // tick): the remote publish goes on in its own task.
                tokio::spawn(async move {
                    if let Err(e) = hub.transport.publish(&hub, event).await {
                        tracing::debug!("subscription event not published: {e}");
                    }
                });
            }
        }
    }

    fn fan_out(&self, st: &mut State, event: &Event) -> Vec<Subscriber> {
        let mut candidates: Vec<u64> = Vec::new();
        for t in &event.topics {
            if let Some(ids) = st.exact.get(t) {
                candidates.extend_from_slice(ids);
            }
        }
        candidates.extend_from_slice(&st.wild);
        if event.topics.len() > 1 || !st.wild.is_empty() {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let mut gone = Vec::new();
        let mut delivered = 0u64;
        for id in candidates {
            let Some(s) = st.subscribers.get_mut(&id) else {
                continue;
            };
            if !s.wants(event) {
                continue;
            }
            match s.tx.try_send(event.frame.clone()) {
                Ok(()) => {
                    s.active = true;
                    delivered += 1;
                }
                Err(TrySendError::Full) => {
                    self.metrics.dropped_slow.fetch_add(1, Relaxed);
                    tracing::info!(subscriber = %s.urn, "dropping a subscriber that cannot keep up");
                    gone.push(id);
                }
                Err(TrySendError::Closed) => gone.push(id),
            }
        }
        self.metrics.deliveries.fetch_add(delivered, Relaxed);
        gone.into_iter()
            .filter_map(|id| self.remove(st, id))
            .collect()
    }

    /// A subscription handed over by a PHP script.
    pub fn handoff(self: &Arc<Self>, h: Handoff) -> Result<HubStream, SubscribeError> {
        self.subscribe(Subscribe {
            selectors: h.topics,
            private: h.private,
            last_event_id: h.last_event_id,
            retry: h.retry,
            expires: None,
            payload: None,
        })
    }

    /// Registers a subscriber and returns its stream: first what it missed
    /// (after `last_event_id`), then live updates, in order, no gap.
    pub fn subscribe(self: &Arc<Self>, sub: Subscribe) -> Result<HubStream, SubscribeError> {
        if sub.selectors.is_empty() {
            return Err(SubscribeError::InvalidSelector(
                "at least one topic selector is needed".into(),
            ));
        }
        let parse = |v: &[String]| -> Result<Vec<Selector>, SubscribeError> {
            v.iter()
                .map(|s| Selector::parse(s).map_err(SubscribeError::InvalidSelector))
                .collect()
        };
        let selectors = parse(&sub.selectors)?;
        let private = parse(&sub.private)?;
        let expires = sub.expires.map(|t| {
            let left = t.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        let (tx, rx) = queue::queue(self.config.queue.max(2));
        let id = self.next_subscriber.fetch_add(1, Relaxed);
        let urn = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let mut st = self.lock();
        if st.closed {
            return Err(SubscribeError::Full);
        }
        if st.subscribers.len() >= self.config.max_subscribers {
            self.metrics.rejected_full.fetch_add(1, Relaxed);
            return Err(SubscribeError::Full);
        }
        let subscriber = Subscriber {
            selectors,
            private,
            tx,
            active: true,
            expires,
            urn,
            topics: sub.selectors.clone(),
            payload: sub.payload,
        };
        // The first chunk: a retry hint, then the replay, in one piece.
        let mut first = BytesMut::new();
        if let Some(ms) = sub.retry {
            first.put_slice(format!("retry: {ms}\n\n").as_bytes());
        }
        let mut header = None;
        if let Some(last) = sub.last_event_id.as_deref() {
            let (events, found): (Vec<&Arc<Event>>, bool) = match st.history.after(last) {
                Some(after) if last != "earliest" => (after.collect(), true),
                _ => (st.history.all().collect(), false),
            };
            for e in events.into_iter().filter(|e| subscriber.wants(e)) {
                first.put_slice(&e.frame);
            }
            header = Some(if found {
                last.to_string()
            } else {
                "earliest".to_string()
            });
            self.metrics.replays.fetch_add(1, Relaxed);
        }
        if !first.is_empty() {
            let _ = subscriber.tx.try_send(first.freeze());
        }
        let mut wild = false;
        for s in &subscriber.selectors {
            match s.exact() {
                Some(t) => st.exact.entry(t.to_string()).or_default().push(id),
                None => wild = true,
            }
        }
        if wild {
            st.wild.push(id);
        }
        let (topics, urn, payload) = (
            subscriber.topics.clone(),
            subscriber.urn.clone(),
            subscriber.payload.clone(),
        );
        st.subscribers.insert(id, subscriber);
        self.metrics.subscribers.fetch_add(1, Relaxed);
        drop(st);
        self.announce(&topics, &urn, payload, true);

        let hub = Arc::downgrade(self);
        let body = Body::Tracked(Box::new(Tracked::new(Body::Queue(rx), move |_| {
            if let Some(hub) = hub.upgrade() {
                let gone = hub.remove(&mut hub.lock(), id);
                hub.announce_gone(gone.into_iter().collect());
            }
        })));
        Ok(HubStream {
            last_event_id: header,
            body,
        })
    }

    fn remove(&self, st: &mut State, id: u64) -> Option<Subscriber> {
        let s = st.subscribers.remove(&id)?;
        self.metrics.subscribers.fetch_sub(1, Relaxed);
        for sel in &s.selectors {
            if let Some(t) = sel.exact() {
                if let Some(ids) = st.exact.get_mut(t) {
                    ids.retain(|&x| x != id);
                    if ids.is_empty() {
                        st.exact.remove(t);
                    }
                }
            }
        }
        st.wild.retain(|&x| x != id);
        Some(s)
    }

    /// Shutdown: every stream ends cleanly (its client reconnects to
    /// whatever serves next) and no new subscription is taken.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let ids: Vec<u64> = st.subscribers.keys().copied().collect();
        for id in ids {
            self.remove(&mut st, id);
        }
    }

    /// The current subscriptions, for the subscriptions API:
    /// (subscriber urn, selector, payload).
    pub fn subscriptions(&self) -> Vec<(String, String, Option<serde_json::Value>)> {
        let st = self.lock();
        let mut out = Vec::new();
        for s in st.subscribers.values() {
            for t in &s.topics {
                out.push((s.urn.clone(), t.clone(), s.payload.clone()));
            }
        }
        out
    }

    /// The newest event's id, or `earliest` when none is kept.
    pub fn last_event_id(&self) -> String {
        self.lock()
            .history
            .last_id()
            .unwrap_or("earliest")
            .to_string()
    }
}

/// One update as an SSE frame: `id`, `event`, `retry`, then each line of
/// the data as its own `data:` field (CR, LF and CRLF all end a line).
fn encode(id: &str, event_type: Option<&str>, retry: Option<u64>, data: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + id.len() + 32);
    b.put_slice(b"id: ");
    b.put_slice(id.as_bytes());
    b.put_u8(b'\n');
    if let Some(t) = event_type {
        b.put_slice(b"event: ");
        b.put_slice(t.as_bytes());
        b.put_u8(b'\n');
    }
    if let Some(r) = retry {
        b.put_slice(format!("retry: {r}\n").as_bytes());
    }
    let normalized = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        b.put_slice(b"data: ");
        b.put_slice(line.as_bytes());
        b.put_u8(b'\n');
    }
    b.put_u8(b'\n');
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_multi_line_data() {
        let f = encode("1", Some("greet"), Some(500), "a\nb\r\nc");
        assert_eq!(
            &f[..],
            b"id: 1\nevent: greet\nretry: 500\ndata: a\ndata: b\ndata: c\n\n"
        );
    }
}
