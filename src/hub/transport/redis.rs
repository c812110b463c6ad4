//! The Redis transport: one stream (`spindle:hub`) every node appends to
//! with `XADD ... MAXLEN ~ N` and reads with `XREAD BLOCK`.
//!
//! An entry holds the update's id (the one subscribers see, the same on
//! every node), its topics (a JSON array), whether it is private, and the
//! SSE frame as encoded by the publishing node, so readers do not encode
//! again. The reader remembers the last entry id it read and resumes after
//! it when it reconnects: an entry stored during a reconnect is read then,
//! and none twice.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisResult};

use super::{
    keep_reading, now_ms, Backoff, BoxFuture, Reader, Transport, TransportHealth, PUBLISH_TIMEOUT,
};
use crate::hub::dispatch::{Event, Hub};
use crate::hub::PublishError;

/// The stream's key (the URL's database number separates applications).
pub const STREAM: &str = "spindle:hub";

/// How long one XREAD waits for news before asking again.
const BLOCK: Duration = Duration::from_secs(5);

pub struct Redis {
    client: redis::Client,
    /// `--hub-history`: the stream is trimmed to about this many entries,
    /// and a starting node loads this many into its own history.
    history: usize,
    health: Arc<TransportHealth>,
    /// The publishing connection, set by the reader once connected. A
    /// multiplexed connection fails fast once its socket is gone, so a
    /// publish during an outage is refused at once; the reader replaces it
    /// when it reconnects.
    publisher: Mutex<Option<MultiplexedConnection>>,
}

impl Redis {
    /// `url` was checked by [`super::TransportConfig::parse`].
    pub fn new(url: &str, history: usize) -> Redis {
        Redis {
            client: redis::Client::open(url).expect("checked when the configuration was read"),
            history,
            health: Arc::new(TransportHealth::new("redis", false)),
            publisher: Mutex::new(None),
        }
    }

    fn set_publisher(&self, c: Option<MultiplexedConnection>) {
        *self.publisher.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// One connection's life: returns `Ok` only when the hub is gone.
    async fn read(
        &self,
        hub: &Weak<Hub>,
        last: &mut Option<String>,
        backoff: &mut Backoff,
    ) -> RedisResult<()> {
        let publishing = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT));
        let publisher = self
            .client
            .get_multiplexed_async_connection_with_config(&publishing)
            .await?;
        // A blocked XREAD answers within BLOCK; past that much more the
        // server is hung and the connection is given up.
        let reading = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        let mut reader = self
            .client
            .get_multiplexed_async_connection_with_config(&reading)
            .await?;
        if last.is_none() {
            // A node that starts late holds the stream's tail in its own
            // history, so a client that comes over from another node is
            // replayed from here like from there.
            let tail: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(STREAM)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(self.history.max(1))
                .query_async(&mut reader)
                .await?;
            let Some(hub) = hub.upgrade() else {
                return Ok(());
            };
            for e in tail.ids.iter().rev() {
                if let Some(ev) = decode(e) {
                    hub.remember(ev);
                }
            }
            *last = Some(tail.ids.first().map_or("0-0".into(), |e| e.id.clone()));
        }
        self.set_publisher(Some(publisher));
        self.health.set_up(true);
        backoff.reset();
        let opts = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(1000);
        loop {
            let from = last.clone().unwrap_or_else(|| "0-0".into());
            let reply: Option<StreamReadReply> =
                reader.xread_options(&[STREAM], &[&from], &opts).await?;
            let Some(hub) = hub.upgrade() else {
                return Ok(());
            };
            for e in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                *last = Some(e.id.clone());
                if let Some(ms) = e.id.split('-').next().and_then(|m| m.parse::<u64>().ok()) {
                    self.health.lag_ms.store(
                        now_ms().saturating_sub(ms),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                self.health
                    .received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match decode(&e) {
                    Some(ev) => hub.deliver(ev),
                    None => {
                        tracing::warn!(entry = %e.id, "hub stream entry not understood; skipped")
                    }
                }
            }
        }
    }
}

fn decode(e: &StreamId) -> Option<Arc<Event>> {
    let id: String = e.get("id")?;
    let topics: String = e.get("topics")?;
    let topics: Vec<String> = serde_json::from_str(&topics).ok()?;
    let private: u8 = e.get("private")?;
    let frame: Vec<u8> = e.get("frame")?;
    Some(Arc::new(Event {
        id,
        topics,
        private: private != 0,
        frame: Bytes::from(frame),
    }))
}

impl Transport for Redis {
    fn publish<'a>(
        &'a self,
        _hub: &'a Hub,
        event: Arc<Event>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let conn = self
                .publisher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Some(mut conn) = conn else {
                return Err(PublishError::Unavailable("Redis is not connected".into()));
            };
            let topics = serde_json::to_string(&event.topics).unwrap_or_default();
            let stored: RedisResult<String> = redis::cmd("XADD")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.history.max(1))
                .arg("*")
                .arg("id")
                .arg(&event.id)
                .arg("topics")
                .arg(topics)
                .arg("private")
                .arg(u8::from(event.private))
                .arg("frame")
                .arg(&event.frame[..])
                .query_async(&mut conn)
                .await;
            stored.map(drop).map_err(|e| {
                self.health.error();
                tracing::warn!("hub transport (redis): publishing: {e}");
                PublishError::Unavailable(format!("Redis: {e}"))
            })
        })
    }

    fn start(self: Arc<Self>, hub: Weak<Hub>) {
        tokio::spawn(keep_reading(self, hub));
    }

    fn health(&self) -> &Arc<TransportHealth> {
        &self.health
    }
}

impl Reader for Redis {
    /// The id of the last stream entry read.
    type Cursor = String;

    async fn session<'a>(
        &'a self,
        hub: &'a Weak<Hub>,
        last: &'a mut Option<String>,
        backoff: &'a mut Backoff,
    ) -> Result<(), String> {
        self.read(hub, last, backoff)
            .await
            .map_err(|e| e.to_string())
    }

    fn disconnected(&self) {
        self.set_publisher(None);
    }
}
