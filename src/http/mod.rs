//! The HTTP front end: hyper HTTP/1.1 connections, routing, static files,
//! and the hand-off of PHP requests to the worker pool.

pub mod body;
mod route;
mod static_files;
mod vars;

use std::convert::Infallible;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

pub use body::Body;
pub use route::{resolve, Route, RouteCache, Script};
pub use vars::ConnInfo;

use crate::config::Settings;
use crate::ipc;
use crate::pool::{Job, Pool};
use vars::{BodyPlacement, RequestMessage};

const TOO_LARGE: &str = "413 Payload Too Large: the request body exceeds --max-body-size";

/// How long a client may take to send a request head (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by every connection.
pub struct App {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    next_id: AtomicU64,
    routes: RouteCache,
}

impl App {
    pub fn new(settings: Arc<Settings>, pool: Pool) -> App {
        App {
            settings,
            pool,
            next_id: AtomicU64::new(1),
            routes: RouteCache::default(),
        }
    }

    /// Serves HTTP/1.1 on one accepted connection until it closes.
    pub async fn serve_connection<I>(self: Arc<Self>, io: I, conn: ConnInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(conn);
        let app = self.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(app.handle(req, &conn).await) }
        });
        let result = http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(self.settings.max_header_size)
            .serve_connection(TokioIo::new(io), service)
            .await;
        if let Err(e) = result {
            tracing::debug!("connection: {e}");
        }
    }

    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let method = req.method();
        if !is_supported(method) {
            return body::status(StatusCode::NOT_IMPLEMENTED);
        }
        let route = self.routes.resolve(
            &self.settings.docroot,
            req.uri().path(),
            req.uri().query(),
            self.settings.front_controller.as_ref(),
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
                static_files::serve(&path, method, req.headers())
            }
            Route::Script(script) => self.run_php(req, script, conn).await,
        }
    }

    async fn run_php(
        &self,
        req: Request<Incoming>,
        script: Script,
        conn: &ConnInfo,
    ) -> Response<Body> {
        let request_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();

        let max = self.settings.max_body_size;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return body::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Payload Too Large: the request body exceeds --max-body-size",
            );
        }
        let spooled = match spool_body(body, max, id).await {
            Ok(b) => b,
            Err(StatusCode::PAYLOAD_TOO_LARGE) => {
                return body::text(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
            }
            Err(status) => return body::status(status),
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

        let (tx, rx) = oneshot::channel();
        let job = Job {
            id,
            message,
            body_fd,
            reply: tx,
            accepts_sse: parts
                .headers
                .get_all(header::ACCEPT)
                .iter()
                .any(|v| v.as_bytes().windows(17).any(|w| w == b"text/event-stream")),
        };
        if self.pool.submit(job).is_err() {
            let mut r = body::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: all workers are busy",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        match rx.await {
            Ok(resp) => resp,
            Err(_) => body::status(StatusCode::BAD_GATEWAY),
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

enum Spooled {
    Inline(Vec<u8>),
    File(OwnedFd, u64),
}

/// Reads the request body: small ones into memory, larger ones into a memfd
/// that the worker reads directly, so uploads never sit whole in the
/// master's heap. Errors are the status to answer with.
async fn spool_body(mut body: Incoming, max: u64, id: u64) -> Result<Spooled, StatusCode> {
    let mut inline: Vec<u8> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > max {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        match &mut file {
            None if inline.len() + data.len() <= ipc::INLINE_BODY_MAX => {
                inline.extend_from_slice(&data)
            }
            None => {
                let mut f = memfd_file(id).map_err(|e| {
                    tracing::error!(request = id, "memfd_create for the request body: {e}");
                    StatusCode::INTERNAL_SERVER_ERROR
                })?;
                write_all(&mut f, &inline)?;
                write_all(&mut f, &data)?;
                inline = Vec::new();
                file = Some(f);
            }
            Some(f) => write_all(f, &data)?,
        }
    }
    Ok(match file {
        Some(f) => Spooled::File(OwnedFd::from(f), total),
        None => Spooled::Inline(inline),
    })
}

fn memfd_file(id: u64) -> io::Result<std::fs::File> {
    let fd = memfd::MemfdOptions::default()
        .close_on_exec(true)
        .create(format!("spindle-body-{}-{id}", std::process::id()))
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(fd.into_file())
}

fn write_all(f: &mut std::fs::File, data: &[u8]) -> Result<(), StatusCode> {
    f.write_all(data).map_err(|e| {
        tracing::error!("writing the request body to its memfd: {e}");
        StatusCode::INTERNAL_SERVER_ERROR
    })
}
