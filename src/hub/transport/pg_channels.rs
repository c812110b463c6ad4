//! `--hub-pg-channel CHANNEL=TOPIC`: database events straight to
//! subscribers. The hub LISTENs on each channel and publishes every NOTIFY
//! payload to its topic, so a trigger calling `pg_notify()` reaches
//! browsers with no PHP running.
//!
//! Every node LISTENs itself and delivers to its own subscribers only (a
//! node that also published through a shared transport would make each
//! event arrive once per node). So such an event's id is this node's own,
//! kept in this node's history: a client that moves to another node is not
//! replayed these events from there (docs/hub.md, "Several machines").

use std::collections::HashMap;
use std::sync::Weak;

use super::postgres::connect;
use super::{Backoff, TransportHealth};
use crate::hub::dispatch::Hub;
use crate::hub::Update;

/// Listens until the hub goes away, reconnecting with backoff; `health`
/// counts connection errors (shown with the transport's in `/metrics`).
pub fn start(
    url: String,
    channels: Vec<(String, String)>,
    hub: Weak<Hub>,
    health: std::sync::Arc<TransportHealth>,
) {
    let topics: HashMap<String, String> = channels.into_iter().collect();
    tokio::spawn(async move {
        let mut backoff = Backoff::new();
        loop {
            match listen(&url, &topics, &hub, &mut backoff).await {
                Ok(()) => return,
                Err(e) => {
                    health.error();
                    tracing::warn!("--hub-pg-channel: {e}; reconnecting");
                }
            }
            if hub.strong_count() == 0 {
                return;
            }
            backoff.wait().await;
        }
    });
}

async fn listen(
    url: &str,
    topics: &HashMap<String, String>,
    hub: &Weak<Hub>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let (client, mut notes, _driver) = connect(url).await?;
    let sql: String = topics
        .keys()
        .map(|c| format!("LISTEN {};", quote_ident(c)))
        .collect();
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(channels = topics.len(), "listening on PostgreSQL channels");
    backoff.reset();
    while let Some(n) = notes.recv().await {
        let Some(hub) = hub.upgrade() else {
            return Ok(());
        };
        let Some(topic) = topics.get(n.channel()) else {
            continue;
        };
        let update = Update {
            topics: vec![topic.clone()],
            data: n.payload().to_string(),
            ..Update::default()
        };
        match hub.prepare(update) {
            Ok(ev) => hub.deliver(ev),
            Err(e) => tracing::warn!(channel = n.channel(), "--hub-pg-channel: {e}"),
        }
    }
    Err("connection closed".into())
}

/// A channel name as a quoted identifier: LISTEN takes no parameters.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_identifiers() {
        assert_eq!(super::quote_ident("orders"), "\"orders\"");
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
