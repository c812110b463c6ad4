//! Turning a worker's replies into an HTTP response: the head PHP sent, the
//! Server-Sent Events treatment, the Content-Length the script declared, and
//! how a stream ends or is cut.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::http::body::{self, Body, Chunk};
use crate::ipc::{self, Decoder};
use crate::metrics::Metrics;
use crate::worker::WorkerKind;

use super::Supervisor;

/// Chunks that may wait between a worker and a slow client, per request.
/// With the socket buffers this bounds a streaming request's memory.
pub(super) const STREAM_CHANNEL_CAPACITY: usize = 8;

/// Where the response of the current request stands.
pub(super) enum Reply {
    /// Nothing sent yet: the HTTP side waits for the head.
    Waiting(oneshot::Sender<Response<Body>>),
    /// Head sent, body streaming.
    Streaming(mpsc::Sender<Chunk>),
    /// The response is complete; the script may still run
    /// (tokio_finish_request()).
    Complete,
    /// The client left; the worker was told.
    Aborted,
}

impl Reply {
    pub(super) async fn client_gone(&mut self) {
        match self {
            Reply::Waiting(tx) => tx.closed().await,
            Reply::Streaming(tx) => tx.closed().await,
            _ => std::future::pending().await,
        }
    }
    pub(super) fn is_open(&self) -> bool {
        matches!(self, Reply::Waiting(_) | Reply::Streaming(_))
    }
    /// Ends the response with `status` when nothing was sent, or cuts the
    /// stream so the client sees an incomplete response, never a complete one.
    pub(super) fn fail(self, status: StatusCode, why: &str) {
        match self {
            Reply::Waiting(tx) => {
                let _ = tx.send(body::status(status));
            }
            Reply::Streaming(tx) => {
                cut(tx, why);
            }
            Reply::Complete | Reply::Aborted => {}
        }
    }
}

/// Ends a streamed response with an error, so hyper closes the connection
/// without the final chunk and the client sees an incomplete response. The
/// error must get into the channel even when it is full (a slow client):
/// dropping the sender instead would end the body cleanly, and the cut
/// response would look complete.
pub(super) fn cut(tx: mpsc::Sender<Chunk>, why: &str) {
    let err = io::Error::other(why.to_string());
    if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(Err(err)) {
        tokio::spawn(async move {
            let _ = tx.send(item).await;
        });
    }
}

/// `cut`, once the chunks already queued have gone out: hyper drops its
/// unflushed output when a body fails, and a short response should still
/// show the client the bytes the script did send.
pub(super) fn cut_after_sent(tx: mpsc::Sender<Chunk>, why: &'static str) {
    tokio::spawn(async move {
        let give_up = Instant::now() + Duration::from_secs(5);
        while tx.capacity() < tx.max_capacity() && Instant::now() < give_up && !tx.is_closed() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // One more turn for hyper to flush what it took last.
        tokio::time::sleep(Duration::from_millis(20)).await;
        cut(tx, why);
    });
}

/// One request's progress on a worker.
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) reply: Reply,
    /// The request accepts `text/event-stream`.
    pub(super) accepts_sse: bool,
    /// The response is a Server-Sent Events stream.
    pub(super) sse: bool,
    /// The last bytes sent ended an event (or nothing was sent yet): a
    /// keep-alive comment here cannot split an event.
    pub(super) at_event_boundary: bool,
    /// Counts this response in `open_streams` while it streams.
    pub(super) stream_gauge: Option<StreamGauge>,
    /// Holds this worker's place among --max-streaming-workers.
    pub(super) stream_place: Option<StreamPlace>,
    /// A HEAD request.
    pub(super) head: bool,
    /// The script, for log lines.
    pub(super) script: Box<str>,
    /// Body bytes still owed when the script declared a Content-Length.
    pub(super) remaining: Option<u64>,
    /// The Content-Length the script declared.
    pub(super) declared: u64,
    /// More than `declared` was sent (logged once).
    pub(super) overran: bool,
}

/// One worker's place among those of its kind that hold streams; given
/// back on drop.
pub(super) struct StreamPlace {
    pub(super) supervisor: Arc<Supervisor>,
    pub(super) kind: WorkerKind,
}

impl StreamPlace {
    /// Counts a response that turned into a stream though its request did
    /// not ask for one: it cannot be refused any more, but it holds a worker.
    pub(super) fn take(supervisor: &Arc<Supervisor>, kind: WorkerKind) -> StreamPlace {
        supervisor.streaming[kind.index()].fetch_add(1, Relaxed);
        StreamPlace {
            supervisor: supervisor.clone(),
            kind,
        }
    }
}

impl InFlight {
    /// Cuts `data` to what the script's Content-Length still allows: the
    /// bytes past it would reach the client as the start of the next
    /// response on a keep-alive connection (response splitting, issue 9,
    /// item 4).
    pub(super) fn clip(&mut self, data: Bytes) -> Bytes {
        let Some(rem) = self.remaining else {
            return data;
        };
        let len = data.len() as u64;
        if len <= rem {
            self.remaining = Some(rem - len);
            return data;
        }
        if !self.overran {
            self.overran = true;
            tracing::warn!(
                request = self.id,
                script = %self.script,
                "the script sent more than its Content-Length ({}); the rest is dropped",
                self.declared
            );
        }
        self.remaining = Some(0);
        data.slice(..rem as usize)
    }

    pub(super) fn owes_bytes(&self) -> bool {
        self.remaining.is_some_and(|r| r > 0)
    }

    pub(super) fn log_short(&self) {
        tracing::warn!(
            request = self.id,
            script = %self.script,
            "the script declared Content-Length {} but sent {} bytes; closing the connection",
            self.declared,
            self.declared - self.remaining.unwrap_or(0)
        );
    }
}

/// The one valid Content-Length the script set, which then frames the
/// response. Several or unparsable ones are dropped (hyper frames the body
/// itself then), never passed on for a client to pick from.
pub(super) fn declared_length(resp: &mut Response<Body>, script: &str) -> Option<u64> {
    let status = resp.status();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return None;
    }
    let h = resp.headers_mut();
    let mut values = h.get_all(http::header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    let parsed = first
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if values.next().is_none() {
        if let Some(n) = parsed {
            return Some(n);
        }
    }
    tracing::warn!(
        script,
        "dropping an invalid or repeated Content-Length from PHP"
    );
    h.remove(http::header::CONTENT_LENGTH);
    None
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        self.supervisor.streaming[self.kind.index()].fetch_sub(1, Relaxed);
    }
}

/// One open stream in the metrics, for as long as it lives.
pub(super) struct StreamGauge(pub(super) Arc<Metrics>);

impl StreamGauge {
    pub(super) fn new(m: &Arc<Metrics>) -> StreamGauge {
        m.open_streams.fetch_add(1, Relaxed);
        StreamGauge(m.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Relaxed);
    }
}

/// Turns `resp` into a Server-Sent Events response when the script set
/// `Content-Type: text/event-stream`, or set no Content-Type for a request
/// that accepts `text/event-stream`. Returns whether it did.
pub(super) fn make_sse(
    resp: &mut Response<Body>,
    accepts_sse: bool,
    default_content_type: bool,
) -> bool {
    let h = resp.headers_mut();
    let declared = h
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let wanted = accepts_sse && default_content_type;
    if !(declared || wanted) {
        return false;
    }
    if !declared {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
    }
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    h.remove(http::header::CONTENT_LENGTH);
    h.remove(http::header::CONTENT_ENCODING);
    true
}

/// Whether `data` ends an SSE event (a blank line, in any of the line-ending
/// forms the spec allows).
pub(super) fn ends_event(data: &[u8]) -> bool {
    data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n") || data.ends_with(b"\r\r")
}

pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) default_content_type: bool,
}

/// Status and header lines as PHP produced them. Lines hyper cannot send
/// (bad names or values) are dropped with a warning rather than failing the
/// whole response.
pub(super) fn decode_head(d: &mut Decoder<'_>) -> Result<Head, ipc::DecodeError> {
    let status = StatusCode::from_u16(d.u16()?).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let flags = d.u8()?;
    let n = d.u32()?;
    let mut headers = HeaderMap::with_capacity(n as usize + 2);
    for _ in 0..n {
        let line = d.str()?;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            tracing::warn!("dropping a header line without ':' from PHP");
            continue;
        };
        let name = HeaderName::from_bytes(line[..colon].trim_ascii());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        match (name, value) {
            // Spindle frames the response itself (issue 9, item 4) and owns
            // the connection: as nginx, it never passes on PHP's
            // connection-level headers (DokuWiki's task runner sends
            // `Connection: Close`, which closed the client's keep-alive
            // connection on every page view).
            (Ok(n), Ok(_)) if is_hop_by_hop(&n) => {
                tracing::debug!("dropping {n} from PHP");
            }
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(
                "dropping an invalid header from PHP: {}",
                String::from_utf8_lossy(line)
            ),
        }
    }
    Ok(Head {
        status,
        headers,
        default_content_type: flags & ipc::HEAD_DEFAULT_CONTENT_TYPE != 0,
    })
}

/// Headers about one connection (RFC 9110 7.6.1), not the response.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
    [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE].contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn event_boundaries() {
        assert!(ends_event(b"data: x\n\n"));
        assert!(ends_event(b"data: x\r\n\r\n"));
        assert!(ends_event(b"data: x\r\r"));
        assert!(!ends_event(b"data: x\n"));
        assert!(!ends_event(b"data: x\ndata: y"));
    }

    pub(super) fn resp(ct: Option<&'static str>) -> Response<Body> {
        let mut r = Response::new(Body::Empty);
        if let Some(ct) = ct {
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        r
    }

    #[test]
    pub(super) fn sse_detection() {
        let mut r = resp(Some("text/event-stream"));
        assert!(make_sse(&mut r, false, false));
        assert_eq!(r.headers()["cache-control"], "no-cache");
        assert_eq!(r.headers()["x-accel-buffering"], "no");
        // Accept: text/event-stream and PHP's default type: SSE.
        let mut r = resp(Some("text/html; charset=UTF-8"));
        assert!(make_sse(&mut r, true, true));
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        // The script chose text/html itself: respected.
        let mut r = resp(Some("text/html; charset=UTF-8"));
        assert!(!make_sse(&mut r, true, false));
        let mut r = resp(Some("text/html; charset=UTF-8"));
        assert!(!make_sse(&mut r, false, true));
    }
}
