//! The pool's side of the hub (issue 11): a worker's `spindle_publish()`
//! becomes a [`Hub::publish`] answered over the control socket, and a
//! script that called `spindle_subscribe()` has its response turned into a
//! hub stream held by the master, so the worker is free at once.

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::http::body::{self, Body, Chunk};
use crate::hub::{Handoff, Hub, SubscribeError, Update};
use crate::ipc::{self, DecodeError, Decoder, Encoder};

use super::response::{cut, Head, STREAM_CHANNEL_CAPACITY};

/// Why a publish is refused when the pool has no hub. Workers refuse at
/// call time already (`REQ_HUB`); this answers a worker that asks anyway.
const HUB_OFF: &str = "the hub is off: start spindle with --hub";

/// Decodes a `MSG_PUBLISH` (after its type byte): the request id and the
/// update. Text fields were checked to be UTF-8 by the worker.
pub(super) fn decode_update(d: &mut Decoder<'_>) -> Result<(u64, Update), DecodeError> {
    let id = d.u64()?;
    let flags = d.u8()?;
    let retry = d.u64()?;
    let n = d.u32()? as usize;
    let mut topics = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        topics.push(text(d.str()?));
    }
    let event_id = d.opt_str_nul()?.map(strip_nul).map(text);
    let event_type = d.opt_str_nul()?.map(strip_nul).map(text);
    let data = text(d.rest());
    Ok((
        id,
        Update {
            topics,
            data,
            private: flags & ipc::PUB_PRIVATE != 0,
            id: event_id,
            event_type,
            retry: (flags & ipc::PUB_RETRY != 0).then_some(retry),
        },
    ))
}

/// Publishes what a worker sent; returns the `MSG_PUBLISHED` answer.
pub(super) fn publish(hub: Option<&Hub>, msg: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let (id, update) = decode_update(&mut Decoder::new(msg))?;
    let result = match hub {
        Some(hub) => hub.publish(update).map_err(|e| e.to_string()),
        None => Err(HUB_OFF.to_string()),
    };
    let mut m = Encoder::with_capacity(64);
    m.u8(ipc::MSG_PUBLISHED).u64(id);
    match result {
        Ok(event_id) => m.u8(1).raw(event_id.as_bytes()),
        Err(why) => {
            tracing::debug!(request = id, "spindle_publish() refused: {why}");
            m.u8(0).raw(why.as_bytes())
        }
    };
    Ok(m.into_vec())
}

/// Decodes the hand-off part of a final `MSG_OUTPUT`.
pub(super) fn decode_handoff(d: &mut Decoder<'_>) -> Result<Handoff, DecodeError> {
    let list = |d: &mut Decoder<'_>| -> Result<Vec<String>, DecodeError> {
        let n = d.u32()? as usize;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(text(d.str()?));
        }
        Ok(v)
    };
    let topics = list(d)?;
    let private = list(d)?;
    let last_event_id = d.opt_str_nul()?.map(strip_nul).map(text);
    let retry = match d.u8()? {
        0 => None,
        _ => Some(d.u64()?),
    };
    Ok(Handoff {
        topics,
        private,
        last_event_id,
        retry,
    })
}

fn strip_nul(s: &[u8]) -> &[u8] {
    &s[..s.len() - 1]
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The response for a hand-off whose head had not left yet: the script's
/// status and headers (cookies, CORS) as an event stream, `Last-Event-ID`
/// when the subscriber asked for a replay, and the hub stream as the body,
/// after `data`, what the script echoed without flushing.
pub(super) fn response(
    hub: &std::sync::Arc<Hub>,
    head: Head,
    data: Bytes,
    h: Handoff,
) -> Response<Body> {
    let stream = match hub.handoff(h) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = head.status;
    *resp.headers_mut() = head.headers;
    // Whatever type the script left (PHP's default text/html, usually),
    // the body is an event stream now.
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    super::response::make_sse(&mut resp, false, false);
    if let Some(id) = stream.last_event_id {
        match HeaderValue::from_str(&id) {
            Ok(v) => {
                resp.headers_mut().insert("last-event-id", v);
            }
            Err(_) => tracing::warn!("a Last-Event-ID that cannot be a header value"),
        }
    }
    *resp.body_mut() = if data.is_empty() {
        stream.body
    } else {
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL_CAPACITY);
        tokio::spawn(forward(data, stream.body, tx));
        Body::Channel(rx)
    };
    resp
}

/// A hand-off after the script flushed: the head is gone, so the hub
/// stream continues the response already streaming through `tx`.
pub(super) fn continue_stream(
    hub: &std::sync::Arc<Hub>,
    data: Bytes,
    h: Handoff,
    tx: mpsc::Sender<Chunk>,
) {
    match hub.handoff(h) {
        Ok(stream) => {
            tokio::spawn(forward(data, stream.body, tx));
        }
        Err(e) => {
            tracing::error!("hand-off refused: {e}");
            cut(tx, "hand-off refused");
        }
    }
}

fn refused(e: SubscribeError) -> Response<Body> {
    match e {
        SubscribeError::Full => {
            tracing::warn!("hand-off refused: {e}");
            let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        // The worker validates selectors at call time: reaching this is a bug.
        e => {
            tracing::error!("hand-off refused: {e}");
            body::status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Sends `first`, then the hub stream, into `tx`, until either ends. The
/// client leaving ends it at once (not at the next event), which drops the
/// hub stream and so unsubscribes.
async fn forward(first: Bytes, mut from: Body, tx: mpsc::Sender<Chunk>) {
    if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
        return;
    }
    loop {
        let frame = tokio::select! {
            f = from.frame() => f,
            _ = tx.closed() => return,
        };
        match frame {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if tx.send(Ok(data)).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            None => return,
        }
    }
}
