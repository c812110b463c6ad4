//! The admin listener (`--admin-listen`): `/health` and `/metrics`.
//! Kept off the main listener so it can be firewalled separately.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::http::body::{self, Body};
use crate::pool::Pool;

pub async fn serve(listener: TcpListener, pool: Pool, ready: Arc<AtomicBool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let pool = pool.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let r = answer(&req, &pool, &ready);
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, pool: &Pool, ready: &AtomicBool) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return body::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = &pool.supervisor().metrics;
    match req.uri().path() {
        // Ready while accepting requests; 503 once shutdown has begun, so a
        // load balancer stops sending before the listener closes.
        "/health" | "/health/ready" => {
            let workers = metrics.workers.load(Ordering::Relaxed);
            // No live worker (all crashed, the zygote cannot fork): not ready.
            let ok = ready.load(Ordering::Relaxed) && workers > 0;
            let busy = metrics.busy_workers.load(Ordering::Relaxed);
            // A shared hub transport that is down degrades the node but
            // leaves it ready: PHP is served, subscribers stay connected,
            // and every node shares the same engine, so taking them out of
            // the balancer would turn a publishing outage into a full one.
            let transport = metrics.hub.get().and_then(|h| h.transport.get());
            let degraded = transport.is_some_and(|t| !t.is_up());
            let hub = transport.map_or(String::new(), |t| {
                format!(
                    ",\"hub_transport\":{{\"kind\":\"{}\",\"up\":{}}}",
                    t.kind,
                    t.is_up()
                )
            });
            let text = format!(
                "{{\"status\":\"{}\",\"workers\":{workers},\"busy\":{busy},\"queue\":{}{hub}}}\n",
                if !ready.load(Ordering::Relaxed) {
                    "shutting_down"
                } else if !ok {
                    "no_workers"
                } else if degraded {
                    "degraded"
                } else {
                    "ok"
                },
                pool.queue_len()
            );
            let mut r = Response::new(Body::full(text));
            *r.status_mut() = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        // Alive as long as the master answers at all.
        "/health/live" => body::text(StatusCode::OK, "alive"),
        "/metrics" => {
            let mut r = Response::new(Body::full(metrics.render(pool.queue_len())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => body::status(StatusCode::NOT_FOUND),
    }
}
