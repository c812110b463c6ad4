//! The response body type every route returns.
//!
//! One enum instead of a boxed body: a PHP response that finished in one
//! message is `Full` (hyper sends Content-Length), a streamed one is fed by
//! the request's bounded mpsc channel (hyper sends chunked encoding and the
//! channel's capacity is the backpressure), a large static file streams from
//! disk.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::io::ReaderStream;

/// A chunk of a streamed response, or the error that cuts the stream.
pub type Chunk = Result<Bytes, io::Error>;

#[derive(Debug)]
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Chunk>),
    /// A hub subscriber's stream.
    Queue(crate::hub::queue::Receiver),
    File(ReaderStream<tokio::io::Take<tokio::fs::File>>),
    /// A streamed body whose end (or abandonment) is reported.
    Tracked(Box<Tracked>),
}

/// Counts a body's bytes and calls `done` once with the total when it ends
/// or is dropped (the client went away).
pub struct Tracked {
    inner: Body,
    bytes: u64,
    done: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl Tracked {
    pub fn new(inner: Body, done: impl FnOnce(u64) + Send + 'static) -> Tracked {
        Tracked {
            inner,
            bytes: 0,
            done: Some(Box::new(done)),
        }
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes);
        }
    }
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(b))
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel(rx) => rx.poll_recv(cx).map(|c| c.map(|c| c.map(Frame::data))),
            Body::Queue(rx) => rx.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c)))),
            Body::File(s) => Pin::new(s)
                .poll_next(cx)
                .map(|c| c.map(|c| c.map(Frame::data))),
            Body::Tracked(t) => {
                let polled = Pin::new(&mut t.inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    if let Some(data) = frame.data_ref() {
                        t.bytes += data.len() as u64;
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Tracked(t) => t.inner.is_end_stream(),
            _ => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Tracked(t) => t.inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// A plain-text response for errors and redirects the server itself makes.
pub fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(format!("{msg}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 503 for a request that wants a stream while --max-streaming-workers
/// workers hold streams already.
pub fn too_many_streams() -> Response<Body> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: too many open streams (--max-streaming-workers)",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// `text()` with the status's own reason as the message.
pub fn status(status: StatusCode) -> Response<Body> {
    text(
        status,
        &format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
}
