//! The PostgreSQL transport: a history table every node inserts into, and
//! LISTEN/NOTIFY to wake the readers.
//!
//! A NOTIFY carries only the new row's sequence number; readers fetch every
//! row after the last one they read. So the payload has no size limit (NOTIFY
//! stops at 8000 bytes), a reader that reconnects catches up from the table
//! with the same query, and many notifications arriving together cost one
//! query. Publishers take a transaction-scoped advisory lock before
//! inserting, so sequence numbers commit in order and a reader that has read
//! row N never later finds a row below N appear.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row, Statement};

use super::{
    keep_reading, Backoff, BoxFuture, Reader, Transport, TransportHealth, PUBLISH_TIMEOUT,
};
use crate::hub::dispatch::{Event, Hub};
use crate::hub::{HubConfig, PublishError};

/// The table (created if missing) and the channel readers LISTEN on.
pub const TABLE: &str = "spindle_hub_updates";
pub const CHANNEL: &str = "spindle_hub";

/// Serializes publishers across nodes (see the module's comment).
const LOCK_KEY: i64 = 0x0053_5049_4e44_4c45; // "SPINDLE" in ASCII

/// Every this many publishes, a node trims the table to `--hub-history`.
const TRIM_EVERY: u64 = 100;

/// Rows fetched per query when catching up.
const BATCH: i64 = 1000;

/// Refuses what the transport cannot do: it connects without TLS.
pub fn check_url(url: &str) -> Result<(), String> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err("sslmode=require is not supported: the hub connects to PostgreSQL without TLS (use a local socket, a private network or a TLS tunnel)".into());
    }
    Ok(())
}

/// Connects without TLS and drives the connection in a task that forwards
/// notifications; the receiver ends when the connection does. The task is
/// aborted when the returned guard drops.
pub(super) async fn connect(
    url: &str,
) -> Result<
    (
        Client,
        mpsc::UnboundedReceiver<tokio_postgres::Notification>,
        AbortOnDrop,
    ),
    String,
> {
    let (client, mut connection) =
        tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| "connecting timed out".to_string())?
            .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!("hub transport (postgres): connection: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    Ok((client, rx, AbortOnDrop(driver)))
}

pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The publishing side of a live connection.
struct Publisher {
    client: Arc<Client>,
    insert: Statement,
}

pub struct Postgres {
    url: String,
    history: usize,
    health: Arc<TransportHealth>,
    publisher: Mutex<Option<Arc<Publisher>>>,
    published: AtomicU64,
}

impl Postgres {
    pub fn new(url: &str, config: &HubConfig) -> Postgres {
        Postgres {
            url: url.to_string(),
            history: config.history.max(1),
            health: Arc::new(TransportHealth::new("postgres", false)),
            publisher: Mutex::new(None),
            published: AtomicU64::new(0),
        }
    }

    fn set_publisher(&self, p: Option<Arc<Publisher>>) {
        *self.publisher.lock().unwrap_or_else(|p| p.into_inner()) = p;
    }

    /// One connection's life: returns `Ok` only when the hub is gone.
    async fn read(
        &self,
        hub: &Weak<Hub>,
        last: &mut Option<i64>,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let (client, mut notes, _driver) = connect(&self.url).await?;
        let e = |e: tokio_postgres::Error| e.to_string();
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (
                    seq bigserial PRIMARY KEY,
                    id text NOT NULL,
                    topics text[] NOT NULL,
                    private boolean NOT NULL,
                    frame bytea NOT NULL,
                    stored timestamptz NOT NULL DEFAULT clock_timestamp());
                 LISTEN {CHANNEL};"
            ))
            .await
            .map_err(e)?;
        let insert = client
            .prepare(&format!(
                "WITH l AS (SELECT pg_advisory_xact_lock({LOCK_KEY})),
                      i AS (INSERT INTO {TABLE} (id, topics, private, frame)
                            SELECT $1, $2, $3, $4 FROM l RETURNING seq)
                 SELECT i.seq FROM i, LATERAL (SELECT pg_notify('{CHANNEL}', i.seq::text)) n"
            ))
            .await
            .map_err(e)?;
        let fetch = client
            .prepare(&format!(
                "SELECT seq, id, topics, private, frame,
                        (extract(epoch FROM clock_timestamp() - stored) * 1000)::bigint
                 FROM {TABLE} WHERE seq > $1 ORDER BY seq LIMIT {BATCH}"
            ))
            .await
            .map_err(e)?;
        if last.is_none() {
            // A node that starts late holds the table's tail in its own
            // history, so clients coming from other nodes are replayed here.
            let rows = client
                .query(
                    &format!(
                        "SELECT seq, id, topics, private, frame, 0::bigint FROM {TABLE}
                         ORDER BY seq DESC LIMIT $1"
                    ),
                    &[&(self.history as i64)],
                )
                .await
                .map_err(e)?;
            let Some(hub) = hub.upgrade() else {
                return Ok(());
            };
            for r in rows.iter().rev() {
                hub.remember(decode(r).1);
            }
            *last = Some(rows.first().map_or(0, |r| r.get(0)));
        }
        let client = Arc::new(client);
        self.set_publisher(Some(Arc::new(Publisher {
            client: client.clone(),
            insert,
        })));
        self.health.set_up(true);
        backoff.reset();
        loop {
            // Rows stored while this node was away, or since the last wake-up.
            loop {
                let rows = client
                    .query(&fetch, &[&last.unwrap_or(0)])
                    .await
                    .map_err(e)?;
                let Some(hub) = hub.upgrade() else {
                    return Ok(());
                };
                for r in &rows {
                    let (seq, ev) = decode(r);
                    *last = Some(seq);
                    let lag: i64 = r.get(5);
                    self.health.lag_ms.store(lag.max(0) as u64, Relaxed);
                    self.health.received.fetch_add(1, Relaxed);
                    hub.deliver(ev);
                }
                if (rows.len() as i64) < BATCH {
                    break;
                }
            }
            if notes.recv().await.is_none() {
                return Err("connection closed".into());
            }
            // Several wake-ups that arrived together need one query.
            while notes.try_recv().is_ok() {}
        }
    }
}

/// Deletes the rows up to `below` (the newest minus `--hub-history`).
async fn trim(client: Arc<Client>, below: i64) {
    if below <= 0 {
        return;
    }
    if let Err(e) = client
        .execute(&format!("DELETE FROM {TABLE} WHERE seq <= $1"), &[&below])
        .await
    {
        tracing::warn!("hub transport (postgres): trimming the history: {e}");
    }
}

fn decode(r: &Row) -> (i64, Arc<Event>) {
    let frame: Vec<u8> = r.get(4);
    (
        r.get(0),
        Arc::new(Event {
            id: r.get(1),
            topics: r.get(2),
            private: r.get(3),
            frame: Bytes::from(frame),
        }),
    )
}

impl Transport for Postgres {
    fn publish<'a>(
        &'a self,
        _hub: &'a Hub,
        event: Arc<Event>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let p = self
                .publisher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Some(p) = p else {
                return Err(PublishError::Unavailable(
                    "PostgreSQL is not connected".into(),
                ));
            };
            let frame: &[u8] = &event.frame;
            let stored = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                p.client.query_one(
                    &p.insert,
                    &[&event.id, &event.topics, &event.private, &frame],
                ),
            )
            .await;
            let seq: i64 = match stored {
                Ok(Ok(row)) => row.get(0),
                Ok(Err(e)) => {
                    self.health.error();
                    tracing::warn!("hub transport (postgres): publishing: {e}");
                    return Err(PublishError::Unavailable(format!("PostgreSQL: {e}")));
                }
                Err(_) => {
                    self.health.error();
                    return Err(PublishError::Unavailable(
                        "PostgreSQL did not answer in time".into(),
                    ));
                }
            };
            if self.published.fetch_add(1, Relaxed) % TRIM_EVERY == TRIM_EVERY - 1 {
                // Off the publisher's path: it waits for its own insert only.
                tokio::spawn(trim(p.client.clone(), seq - self.history as i64));
            }
            Ok(())
        })
    }

    fn start(self: Arc<Self>, hub: Weak<Hub>) {
        tokio::spawn(keep_reading(self, hub));
    }

    fn health(&self) -> &Arc<TransportHealth> {
        &self.health
    }
}

impl Reader for Postgres {
    /// The `seq` of the last row read.
    type Cursor = i64;

    async fn session<'a>(
        &'a self,
        hub: &'a Weak<Hub>,
        last: &'a mut Option<i64>,
        backoff: &'a mut Backoff,
    ) -> Result<(), String> {
        self.read(hub, last, backoff).await
    }

    fn disconnected(&self) {
        self.set_publisher(None);
    }
}
