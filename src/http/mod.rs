//! The HTTP front end: hyper HTTP/1.1 connections, routing, static files,
//! and the hand-off of PHP requests to the worker pool.

pub mod acme;
pub mod body;
mod proxy;
mod route;
mod spool;
mod static_files;
pub mod tls;
mod validate;
mod vars;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

pub use body::Body;
pub use route::{resolve, Route, RouteCache, Script};
pub use vars::ConnInfo;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pool::{Job, Pool, ServedBy};
use crate::worker::WorkerKind;
use spool::{MemoryLease, SpoolError, Spooled};
use vars::{BodyPlacement, RequestMessage};

const TOO_LARGE: &str = "413 Payload Too Large: the request body exceeds --max-body-size";

/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 128;

/// How long a client may take to send a request head (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by every connection.
pub struct App {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    next_id: AtomicU64,
    routes: RouteCache,
    files: static_files::FileCache,
    bodies: spool::Spooler,
    /// The Mercure hub, with `--hub`.
    pub hub: Option<Arc<crate::hub::Hub>>,
}

/// What a connection speaks, when the listener already knows (ALPN on TLS,
/// a peek at the first bytes on TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// HTTP/1.1, or HTTP/2 if the client starts with its preface.
    Either,
}

/// Decides between HTTP/1.1 and h2c prior knowledge by peeking at the
/// first bytes without consuming them: the HTTP/2 preface starts with
/// "PRI", which no HTTP/1 method does. A client that sends nothing is left
/// to HTTP/1's header read timeout.
pub async fn sniff(stream: &tokio::net::TcpStream) -> Protocol {
    let mut buf = [0u8; 3];
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return Protocol::Http1,
        };
        if n == 0 || n >= 3 || buf[..n] != b"PRI"[..n] {
            return if n >= 3 && &buf == b"PRI" {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
        }
        // A prefix of "PRI" so far: wait a little for the rest rather
        // than spin on the same bytes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The request id Spindle gave a PHP request; in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub u64);

impl App {
    pub fn new(settings: Arc<Settings>, pool: Pool, hub: Option<Arc<crate::hub::Hub>>) -> App {
        App {
            hub,
            files: static_files::FileCache::new(settings.static_cache_size),
            bodies: spool::Spooler::new(&settings),
            settings,
            metrics: pool.supervisor().metrics.clone(),
            pool,
            next_id: AtomicU64::new(1),
            routes: RouteCache::default(),
        }
    }

    /// Serves one accepted connection until it closes, or until `graceful`
    /// shuts it down after its in-flight request, speaking `protocol`.
    pub async fn serve_connection<I>(
        self: Arc<Self>,
        io: I,
        conn: ConnInfo,
        protocol: Protocol,
        graceful: Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(conn);
        let app = self.clone();
        // Boxed: hyper keeps room for the service's future for as long as the
        // connection lives (3.2 KiB for this one: the PHP and hub handlers'
        // states), even while no request is in flight, as on a hub
        // subscriber's connection. A box lives only while its request does;
        // it costs a request ~1,000 instructions (docs/benchmarks.md, "Hub").
        let service = service_fn(move |req| {
            let app = app.clone();
            let conn = conn.clone();
            Box::pin(async move { Ok::<_, Infallible>(app.handle(req, &conn).await) })
        });
        // HTTP/1.1, or HTTP/2 when the client starts with its preface: chosen
        // by ALPN on TLS, by prior knowledge (h2c) on plain listeners.
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(self.settings.max_header_size);
        builder
            .http2()
            .timer(TokioTimer::new())
            // Enough for a page's streams (every EventSource is one), few
            // enough that one connection cannot queue the whole pool.
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(self.settings.max_header_size as u32)
            // h2's guards against rapid reset (CVE-2023-44487) and
            // CONTINUATION floods stay on: pending resets are bounded and
            // header blocks are bounded by the list size above.
            .max_pending_accept_reset_streams(Some(32))
            .keep_alive_interval(Some(Duration::from_secs(30)));
        // A known protocol skips the auto builder's sniffing read, whose 24
        // handed-back bytes made hyper's read buffer grow to 16 KiB on every
        // connection: 22 KiB per idle hub subscriber instead of 16.
        let builder = match protocol {
            Protocol::Http1 => builder.http1_only(),
            Protocol::Http2 => builder.http2_only(),
            Protocol::Either => builder,
        };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let result = graceful.watch(conn.into_owned()).await;
        if let Err(e) = result {
            tracing::debug!("connection: {e}");
        }
    }

    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = self.respond(req, conn).await;
        let record = AccessRecord {
            metrics: self.metrics.clone(),
            log: self.settings.access_log,
            start,
            method,
            path,
            status: resp.status().as_u16(),
            worker: resp.extensions().get::<ServedBy>().map(|w| w.0),
            request: resp.extensions().get::<RequestId>().map(|r| r.0),
        };
        record.attach(resp)
    }

    async fn respond(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        if let Err(r) = validate::check(&req, self.settings.max_header_size) {
            return rejected(r);
        }
        if let Some(hub) = &self.hub {
            let path = req.uri().path();
            if path
                .strip_prefix(crate::hub::protocol::PATH)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            {
                return crate::hub::protocol::handle(hub, req).await;
            }
        }
        let method = req.method();
        if !is_supported(method) {
            return body::status(StatusCode::NOT_IMPLEMENTED);
        }
        // Worker mode: PHP requests for these paths go to the worker script
        // (all of them, or those --worker-match matches), front-controller
        // style; the others run classic.
        let kind = match &self.settings.worker_route {
            Some(w) if w.takes(req.uri().path()) => WorkerKind::Script,
            _ => WorkerKind::Classic,
        };
        let front = match (kind, &self.settings.worker_route) {
            (WorkerKind::Script, Some(w)) => Some(&w.front),
            _ => self.settings.front_controller.as_ref(),
        };
        let route = self.routes.resolve(
            &self.settings.docroot,
            req.uri().path(),
            req.uri().query(),
            front,
            self.settings.symlinks,
        );
        match route {
            Route::NotFound => body::status(StatusCode::NOT_FOUND),
            Route::BadRequest => body::status(StatusCode::BAD_REQUEST),
            Route::Redirect(location) => {
                let mut r = body::status(StatusCode::MOVED_PERMANENTLY);
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Route::Static(path) => {
                if method != Method::GET && method != Method::HEAD {
                    let mut r = body::status(StatusCode::METHOD_NOT_ALLOWED);
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    return r;
                }
                static_files::serve(&self.files, &path, method, req.headers())
            }
            Route::Script(script) => self.run_php(req, script, kind, conn).await,
        }
    }

    async fn run_php(
        &self,
        req: Request<Incoming>,
        script: Script,
        kind: WorkerKind,
        conn: &ConnInfo,
    ) -> Response<Body> {
        let request_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();

        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.settings.max_body_size) {
            return body_error(SpoolError::TooLarge);
        }
        let (spooled, lease) = match self.bodies.read(body, declared, id).await {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        let has_body = declared.is_some() || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let (placement, body_fd) = match spooled {
            Spooled::Inline(b) if b.is_empty() && !has_body => (BodyPlacement::None, None),
            Spooled::Inline(ref b) => (BodyPlacement::Inline(b), None),
            Spooled::File(fd, len) => (BodyPlacement::Fd(len), Some(fd)),
        };
        let message = RequestMessage {
            id,
            parts: &parts,
            script: &script,
            conn,
            settings: &self.settings,
            body: placement,
            request_time,
        }
        .encode();
        // A worker cannot receive a larger message (and died trying): a head
        // this big gets 431 here, before any worker sees it (item 8).
        if message.len() > crate::ipc::MAX_MESSAGE {
            return rejected(validate::Rejection {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                reason: "431 Request Header Fields Too Large: too large to hand to PHP",
            });
        }

        let accepts_sse = parts
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.as_bytes().windows(17).any(|w| w == b"text/event-stream"));
        // With the hub, a request for a stream may well be a hand-off that
        // frees its worker at once: the slot counts it only if it streams.
        if accepts_sse && self.hub.is_none() && !self.pool.stream_slots_left(kind) {
            self.metrics
                .rejected_streams
                .fetch_add(1, Ordering::Relaxed);
            return body::too_many_streams();
        }
        let (tx, mut rx) = oneshot::channel();
        let dispatched = Arc::new(AtomicBool::new(false));
        let job = Job {
            dispatched: dispatched.clone(),
            id,
            message,
            body_fd,
            reply: tx,
            accepts_sse,
            head: parts.method == Method::HEAD,
            script: script.filename.to_string_lossy().into(),
            kind,
        };
        if self.pool.submit(job).is_err() {
            self.metrics
                .rejected_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return busy("503 Service Unavailable: all workers are busy and the queue is full");
        }
        let mut resp = match self.settings.queue_timeout {
            None => rx.await,
            Some(limit) => {
                tokio::select! {
                    r = &mut rx => r,
                    _ = tokio::time::sleep(limit) => {
                        if dispatched.load(Ordering::Relaxed) {
                            rx.await
                        } else {
                            // Dropping `rx` tells the slot to skip the job.
                            self.metrics.rejected_queue_timeout.fetch_add(1, Ordering::Relaxed);
                            return busy("503 Service Unavailable: no worker became free in time");
                        }
                    }
                }
            }
        }
        .unwrap_or_else(|_| body::status(StatusCode::BAD_GATEWAY));
        resp.extensions_mut().insert(RequestId(id));
        hold_until_end(resp, lease)
    }
}

/// Keeps the body's share of the memory budget until a streamed response
/// ends: the worker holds the body's memfd while the script runs. A full
/// response came in the worker's last message, so the script is done.
fn hold_until_end(resp: Response<Body>, lease: MemoryLease) -> Response<Body> {
    if lease.is_empty() || matches!(resp.body(), Body::Full(_) | Body::Empty) {
        return resp;
    }
    resp.map(|inner| Body::Tracked(Box::new(body::Tracked::new(inner, move |_| drop(lease)))))
}

fn body_error(e: SpoolError) -> Response<Body> {
    let mut r = match e {
        SpoolError::TooLarge => body::text(e.status(), TOO_LARGE),
        SpoolError::Stalled => body::text(
            e.status(),
            "408 Request Timeout: the request body stalled for longer than --body-timeout",
        ),
        _ => body::status(e.status()),
    };
    // The rest of the body is unread: the connection cannot carry another
    // request.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A request refused before routing. The connection closes after the
/// answer: its body, if any, was not read, and its framing may be a lie.
fn rejected(r: validate::Rejection) -> Response<Body> {
    let mut resp = body::text(r.status, r.reason);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn busy(msg: &str) -> Response<Body> {
    let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// What the access log and the metrics need to know about a request once
/// its response is complete.
struct AccessRecord {
    metrics: Arc<Metrics>,
    log: bool,
    start: Instant,
    method: Method,
    path: String,
    status: u16,
    worker: Option<u64>,
    request: Option<u64>,
}

impl AccessRecord {
    /// Records now for a response whose body is already known; otherwise
    /// when the streamed body ends (or the client goes away).
    fn attach(self, resp: Response<Body>) -> Response<Body> {
        use http_body::Body as _;
        if resp.body().is_end_stream() || matches!(resp.body(), Body::Full(_)) {
            let bytes = resp.body().size_hint().exact().unwrap_or(0);
            self.finish(bytes);
            resp
        } else {
            resp.map(|inner| {
                Body::Tracked(Box::new(body::Tracked::new(inner, move |bytes| {
                    self.finish(bytes)
                })))
            })
        }
    }

    fn finish(self, bytes: u64) {
        let took = self.start.elapsed();
        self.metrics.request(self.status, took);
        if self.log {
            tracing::info!(
                target: "access",
                method = %self.method,
                path = %self.path,
                status = self.status,
                bytes,
                duration_ms = took.as_secs_f64() * 1000.0,
                worker = self.worker,
                request = self.request,
            );
        }
    }
}

/// Methods Spindle serves; anything else is 501 Not Implemented. Static
/// files take GET and HEAD only (405 otherwise); PHP sees all of these.
fn is_supported(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    )
}
