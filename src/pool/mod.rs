//! The master's side of the workers: a bounded queue of PHP requests, and one
//! task per worker that takes a request, hands it to its process, turns the
//! replies into an HTTP response, and replaces the process when it dies or
//! overruns its deadline.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use crate::config::PhpSettings;
use crate::http::body::{self, Body, Chunk};
use crate::ipc::{self, Channel, Decoder, Encoder};
use crate::metrics::{Metrics, Restart};
use crate::worker::{Zygote, ZygoteError};

/// Messages taken from a worker in one `recvmmsg`.
const RECV_BATCH: usize = 16;

/// Chunks that may wait between a worker and a slow client, per request.
/// With the socket buffers this bounds a streaming request's memory.
const STREAM_CHANNEL_CAPACITY: usize = 8;

/// One PHP request, ready for a worker.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    /// The encoded `MSG_REQUEST`.
    pub message: Vec<u8>,
    /// The spooled request body, when it did not fit the message.
    pub body_fd: Option<OwnedFd>,
    /// Where the response goes; dropped by the HTTP side when the client
    /// leaves before the response starts.
    pub reply: oneshot::Sender<Response<Body>>,
    /// The request's Accept header includes `text/event-stream`.
    pub accepts_sse: bool,
    /// A HEAD request: PHP's Content-Length describes a body never sent.
    pub head: bool,
    /// The script, for log lines about what it did wrong.
    pub script: Box<str>,
    /// Set when a worker takes the job: until then the HTTP side may give
    /// up on it (--queue-timeout).
    pub dispatched: Arc<AtomicBool>,
}

/// The queue was full.
#[derive(Debug)]
pub struct QueueFull;

/// The worker slot that answered a request; in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ServedBy(pub u64);

/// The master's handle on its workers.
#[derive(Debug, Clone)]
pub struct Pool {
    queue: async_channel::Sender<Job>,
    supervisor: Arc<Supervisor>,
    max_streaming_workers: usize,
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub queue_size: usize,
    pub request_timeout: Option<Duration>,
    /// Quiet time after which an SSE stream gets a keep-alive comment.
    pub sse_keepalive: Option<Duration>,
    /// Replace a worker after this many requests (pm.max_requests).
    pub max_requests: Option<u64>,
    /// Replace a worker, between requests, once its RSS passes this (bytes).
    pub max_worker_rss: Option<u64>,
    /// Workers that may hold streaming responses at once; requests that
    /// want `text/event-stream` past it get 503 (--max-streaming-workers).
    pub max_streaming_workers: usize,
}

/// What every slot shares: the current zygote, its generation, the metrics.
#[derive(Debug)]
pub struct Supervisor {
    zygote: RwLock<Arc<Zygote>>,
    generation: watch::Sender<u64>,
    php: PhpSettings,
    pub metrics: Arc<Metrics>,
    reviving: tokio::sync::Mutex<()>,
    /// Workers holding a streaming response, or taken for a request that
    /// wants one; bounded by `max_streaming_workers`.
    streaming: AtomicUsize,
    /// Set once shutdown begins: Server-Sent Events streams end cleanly.
    shutdown: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(zygote: Zygote, php: PhpSettings, metrics: Arc<Metrics>) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            zygote: RwLock::new(Arc::new(zygote)),
            generation: watch::Sender::new(0),
            php,
            metrics,
            reviving: tokio::sync::Mutex::new(()),
            streaming: AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
        })
    }

    /// Begins shutdown: every Server-Sent Events stream is ended cleanly
    /// (its script is told the client left, so it ends at its next flush
    /// and its shutdown functions run), since a reconnecting `EventSource`
    /// loses nothing, while plain requests keep the grace period.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Watches the current zygote and starts a new one as soon as it exits
    /// (an operator's kill, the OOM killer), reaping the old one. Its
    /// workers keep serving meanwhile; without a zygote none could be
    /// replaced, so a later crash or recycle would wait for the revival.
    async fn watch_zygote(self: Arc<Self>) {
        let mut generations = self.generation.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            let (zygote, generation) = self.current();
            let exited = match zygote.exit_fd() {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!("cannot watch the zygote (pidfd_open): {e}");
                    return;
                }
            };
            tokio::select! {
                r = ipc::readable(exited) => {
                    if r.is_err() {
                        return;
                    }
                    zygote.reap();
                    drop(zygote);
                    if self.shutting_down() {
                        return;
                    }
                    if self.revive(generation).await {
                        backoff = Duration::from_millis(100);
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn current(&self) -> (Arc<Zygote>, u64) {
        let z = self
            .zygote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (z, *self.generation.borrow())
    }

    /// Starts a new zygote (php.ini read again, a fresh OPcache) and has
    /// every worker replaced by one of its children, each slot between two
    /// of its requests, so no request fails. The old zygote goes away with
    /// its last worker. On error the old workers stay.
    pub async fn reload(&self) -> Result<(), ZygoteError> {
        let php = self.php.clone();
        let z = tokio::task::spawn_blocking(move || Zygote::start(&php))
            .await
            .map_err(|e| ZygoteError::from(io::Error::other(e)))??;
        *self.zygote.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(z);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Starts a new zygote when the one of generation `seen` cannot fork
    /// any more (killed by an operator or the OOM killer): without it no
    /// worker could ever be replaced again. Once per generation, however
    /// many slots notice at the same time.
    /// Returns false when starting it failed.
    async fn revive(&self, seen: u64) -> bool {
        let _one_at_a_time = self.reviving.lock().await;
        if *self.generation.borrow() != seen {
            return true; // another slot already did it
        }
        tracing::warn!("the zygote is gone; starting a new one");
        match self.reload().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("starting a new zygote: {e}");
                false
            }
        }
    }

    /// Takes a streaming place for a request that wants a stream; false
    /// when `max` workers hold streams already.
    fn reserve_stream(&self, max: usize) -> bool {
        self.streaming
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }
}

impl Pool {
    /// Starts one task per worker. Call from inside the tokio runtime.
    pub fn start(
        supervisor: Arc<Supervisor>,
        workers: Vec<(OwnedFd, Pid)>,
        config: PoolConfig,
    ) -> io::Result<Pool> {
        let (tx, rx) = async_channel::bounded(config.queue_size);
        let (zygote, generation) = supervisor.current();
        for (i, (sock, pid)) in workers.into_iter().enumerate() {
            let slot = Slot {
                id: i as u64 + 1,
                conn: WorkerConn::new(sock, pid)?,
                zygote: zygote.clone(),
                generation,
                served: 0,
                bufs: (0..RECV_BATCH)
                    .map(|_| vec![0u8; ipc::MAX_MESSAGE])
                    .collect(),
                lens: [0; RECV_BATCH],
                config: config.clone(),
                supervisor: supervisor.clone(),
            };
            supervisor.metrics.workers.fetch_add(1, Relaxed);
            tokio::spawn(slot.run(rx.clone()));
        }
        tokio::spawn(supervisor.clone().watch_zygote());
        Ok(Pool {
            max_streaming_workers: config.max_streaming_workers,
            queue: tx,
            supervisor,
        })
    }

    /// Queues a request, or refuses it when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        self.queue.try_send(job).map_err(|_| QueueFull)
    }

    /// Whether a request that wants `text/event-stream` may still get a
    /// worker: false once --max-streaming-workers workers hold streams, so
    /// that ordinary requests keep the rest.
    pub fn stream_slots_left(&self) -> bool {
        self.supervisor.streaming.load(Relaxed) < self.max_streaming_workers
    }

    /// Requests waiting for a worker.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }
}

/// A worker process as the master sees it.
#[derive(Debug)]
struct WorkerConn {
    channel: Channel,
    pid: Pid,
}

impl WorkerConn {
    fn new(sock: OwnedFd, pid: Pid) -> io::Result<Self> {
        Ok(WorkerConn {
            channel: Channel::new(sock)?,
            pid,
        })
    }

    async fn send(&self, msg: &[u8], fd: Option<&OwnedFd>) -> io::Result<()> {
        self.channel.send(msg, fd).await
    }

    fn kill(&self) {
        // The process may be gone already; ESRCH is fine.
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Resident memory, from /proc.
    fn rss(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
}

/// Where the response of the current request stands.
enum Reply {
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
    async fn client_gone(&mut self) {
        match self {
            Reply::Waiting(tx) => tx.closed().await,
            Reply::Streaming(tx) => tx.closed().await,
            _ => std::future::pending().await,
        }
    }
    fn is_open(&self) -> bool {
        matches!(self, Reply::Waiting(_) | Reply::Streaming(_))
    }
    /// Ends the response with `status` when nothing was sent, or cuts the
    /// stream so the client sees an incomplete response, never a complete one.
    fn fail(self, status: StatusCode, why: &str) {
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
fn cut(tx: mpsc::Sender<Chunk>, why: &str) {
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
fn cut_after_sent(tx: mpsc::Sender<Chunk>, why: &'static str) {
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

enum Event {
    Message(io::Result<usize>),
    Timeout,
    KeepAlive,
    ClientGone,
    Shutdown,
}

/// The comment sent on quiet Server-Sent Events streams, so that proxies
/// (nginx's proxy_read_timeout is 60 s) do not cut them.
const SSE_KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// One request's progress on a worker.
struct InFlight {
    id: u64,
    reply: Reply,
    /// The request accepts `text/event-stream`.
    accepts_sse: bool,
    /// The response is a Server-Sent Events stream.
    sse: bool,
    /// The last bytes sent ended an event (or nothing was sent yet): a
    /// keep-alive comment here cannot split an event.
    at_event_boundary: bool,
    /// Counts this response in `open_streams` while it streams.
    stream_gauge: Option<StreamGauge>,
    /// Holds this worker's place among --max-streaming-workers.
    stream_place: Option<StreamPlace>,
    /// A HEAD request.
    head: bool,
    /// The script, for log lines.
    script: Box<str>,
    /// Body bytes still owed when the script declared a Content-Length.
    remaining: Option<u64>,
    /// The Content-Length the script declared.
    declared: u64,
    /// More than `declared` was sent (logged once).
    overran: bool,
}

/// One worker's place among those that hold streams; given back on drop.
struct StreamPlace(Arc<Supervisor>);

impl StreamPlace {
    /// Counts a response that turned into a stream though its request did
    /// not ask for one: it cannot be refused any more, but it holds a worker.
    fn take(supervisor: &Arc<Supervisor>) -> StreamPlace {
        supervisor.streaming.fetch_add(1, Relaxed);
        StreamPlace(supervisor.clone())
    }
}

impl InFlight {
    /// Cuts `data` to what the script's Content-Length still allows: the
    /// bytes past it would reach the client as the start of the next
    /// response on a keep-alive connection (response splitting, issue 9,
    /// item 4).
    fn clip(&mut self, data: Bytes) -> Bytes {
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

    fn owes_bytes(&self) -> bool {
        self.remaining.is_some_and(|r| r > 0)
    }

    fn log_short(&self) {
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
fn declared_length(resp: &mut Response<Body>, script: &str) -> Option<u64> {
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
        self.0.streaming.fetch_sub(1, Relaxed);
    }
}

/// One open stream in the metrics, for as long as it lives.
struct StreamGauge(Arc<Metrics>);

impl StreamGauge {
    fn new(m: &Arc<Metrics>) -> StreamGauge {
        m.open_streams.fetch_add(1, Relaxed);
        StreamGauge(m.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Relaxed);
    }
}

struct Slot {
    id: u64,
    conn: WorkerConn,
    /// The zygote that forked this slot's worker, and its generation: kept
    /// alive until the worker is replaced.
    zygote: Arc<Zygote>,
    generation: u64,
    /// Requests the current worker has served.
    served: u64,
    /// Receive buffers for one `recvmmsg` (only touched pages become resident).
    bufs: Vec<Vec<u8>>,
    lens: [usize; RECV_BATCH],
    config: PoolConfig,
    supervisor: Arc<Supervisor>,
}

impl Slot {
    async fn run(mut self, queue: async_channel::Receiver<Job>) {
        let mut generations = self.supervisor.generation.subscribe();
        loop {
            let job = tokio::select! {
                job = queue.recv() => match job {
                    Ok(job) => job,
                    Err(_) => return,
                },
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *generations.borrow_and_update() != self.generation {
                        self.replace(Restart::Reload).await;
                    }
                    continue;
                }
                // An idle worker sends nothing: a readable socket means it
                // died (or misbehaves). Replace it now, so the next request
                // finds a live worker and /health counts only live ones.
                why = self.idle_worker_trouble() => {
                    self.replace(why).await;
                    continue;
                }
            };
            job.dispatched.store(true, Relaxed);
            if job.reply.is_closed() {
                // The client left, or gave up, while the request waited.
                continue;
            }
            let stream_place = if job.accepts_sse {
                if !self
                    .supervisor
                    .reserve_stream(self.config.max_streaming_workers)
                {
                    self.supervisor
                        .metrics
                        .rejected_streams
                        .fetch_add(1, Relaxed);
                    let _ = job.reply.send(body::too_many_streams());
                    continue;
                }
                Some(StreamPlace(self.supervisor.clone()))
            } else {
                None
            };
            if !self.deliver(&job).await {
                let _ = job.reply.send(body::status(StatusCode::BAD_GATEWAY));
                continue;
            }
            let metrics = self.supervisor.metrics.clone();
            metrics.busy_workers.fetch_add(1, Relaxed);
            let result = self.serve(job, stream_place).await;
            metrics.busy_workers.fetch_sub(1, Relaxed);
            self.served += 1;
            match result {
                Err(why) => self.replace(why).await,
                Ok(()) => {
                    if let Some(why) = self.recycle_reason() {
                        self.replace(why).await;
                    }
                }
            }
        }
    }

    /// Resolves when the idle worker's socket turns readable: it died
    /// (end of file) or sent something unasked.
    async fn idle_worker_trouble(&mut self) -> Restart {
        match self
            .conn
            .channel
            .recv_many(&mut self.bufs, &mut self.lens)
            .await
        {
            Ok(n) if n > 0 && self.lens[0] > 0 => {
                tracing::error!(worker = self.id, "an idle worker sent a message");
                Restart::Protocol
            }
            Ok(_) => {
                tracing::warn!(
                    worker = self.id,
                    pid = self.conn.pid.as_raw(),
                    "an idle worker died"
                );
                Restart::Crash
            }
            Err(e) => {
                tracing::error!(worker = self.id, "receiving from an idle worker: {e}");
                Restart::Crash
            }
        }
    }

    /// Hands the job to this slot's worker. A worker that died since its
    /// last request cannot have started it, so the job goes to a fresh
    /// worker instead of failing (issue 9, item 2). False after three
    /// workers in a row could not take it.
    async fn deliver(&mut self, job: &Job) -> bool {
        for _ in 0..3 {
            match self.conn.send(&job.message, job.body_fd.as_ref()).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(
                        worker = self.id,
                        request = job.id,
                        "the worker cannot take the request ({e}); starting a fresh one"
                    );
                    self.replace(Restart::Crash).await;
                }
            }
        }
        tracing::error!(request = job.id, "no worker could take the request");
        false
    }

    /// Whether the worker should be replaced now, between requests.
    fn recycle_reason(&self) -> Option<Restart> {
        if *self.supervisor.generation.borrow() != self.generation {
            return Some(Restart::Reload);
        }
        if self
            .config
            .max_requests
            .is_some_and(|max| self.served >= max)
        {
            return Some(Restart::MaxRequests);
        }
        if let Some(max) = self.config.max_worker_rss {
            if self.conn.rss().is_some_and(|rss| rss > max) {
                return Some(Restart::Rss);
            }
        }
        None
    }

    async fn replace(&mut self, why: Restart) {
        let pid = self.conn.pid.as_raw();
        if why.kills() {
            tracing::warn!(worker = self.id, pid, "replacing worker ({})", why.name());
            self.conn.kill();
        } else {
            // An idle worker exits by itself when its socket closes below.
            tracing::info!(worker = self.id, pid, "recycling worker ({})", why.name());
        }
        self.supervisor.metrics.restart(why);
        // /health counts live workers only: this one is gone until the
        // replacement is up.
        self.supervisor.metrics.workers.fetch_sub(1, Relaxed);
        let mut delay = Duration::from_millis(10);
        loop {
            let (zygote, generation) = self.supervisor.current();
            let id = self.id;
            let z = zygote.clone();
            let spawned = tokio::task::spawn_blocking(move || z.spawn_worker(id)).await;
            match spawned {
                Ok(Ok((sock, pid))) => match WorkerConn::new(sock, pid) {
                    Ok(conn) => {
                        self.conn = conn;
                        self.zygote = zygote;
                        self.generation = generation;
                        self.served = 0;
                        self.supervisor.metrics.workers.fetch_add(1, Relaxed);
                        return;
                    }
                    Err(e) => tracing::error!(worker = self.id, "registering the new worker: {e}"),
                },
                Ok(Err(e)) => {
                    tracing::error!(worker = self.id, "spawning a worker: {e}");
                    self.supervisor.revive(generation).await;
                }
                Err(e) => tracing::error!(worker = self.id, "spawning a worker: {e}"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs one request on this slot's worker. `Err` means the worker must be
    /// replaced (the response has been answered or cut already).
    async fn serve(&mut self, job: Job, stream_place: Option<StreamPlace>) -> Result<(), Restart> {
        let Job {
            id,
            message: _,
            body_fd,
            reply,
            accepts_sse,
            head,
            script,
            dispatched: _,
        } = job;
        drop(body_fd);
        let mut req = InFlight {
            id,
            reply: Reply::Waiting(reply),
            accepts_sse,
            head,
            script,
            sse: false,
            at_event_boundary: true,
            stream_gauge: None,
            stream_place,
            remaining: None,
            declared: 0,
            overran: false,
        };
        let mut shutdown = self.supervisor.shutdown.subscribe();

        let mut deadline = self.config.request_timeout.map(|t| Instant::now() + t);
        let sleep = sleep_until(deadline.unwrap_or_else(far_future));
        tokio::pin!(sleep);
        let keepalive_every = self.config.sse_keepalive;
        let keepalive = sleep_until(far_future());
        tokio::pin!(keepalive);

        loop {
            let streaming_sse =
                req.sse && matches!(req.reply, Reply::Streaming(_)) && keepalive_every.is_some();
            let event = tokio::select! {
                biased;
                r = self.conn.channel.recv_many(&mut self.bufs, &mut self.lens) => Event::Message(r),
                _ = &mut sleep, if deadline.is_some() => Event::Timeout,
                _ = req.reply.client_gone(), if req.reply.is_open() => Event::ClientGone,
                _ = &mut keepalive, if streaming_sse => Event::KeepAlive,
                _ = shutdown.wait_for(|&down| down), if streaming_sse => Event::Shutdown,
            };
            match event {
                Event::Timeout => {
                    tracing::warn!(worker = self.id, request = id, "request timed out");
                    req.reply
                        .fail(StatusCode::GATEWAY_TIMEOUT, "request timed out");
                    return Err(Restart::Timeout);
                }
                Event::ClientGone => {
                    req.reply = Reply::Aborted;
                    self.send_abort(id).await;
                }
                Event::Shutdown => {
                    // A clean end: the EventSource reconnects (elsewhere, or
                    // here after a restart) with Last-Event-ID. The script
                    // sees the client gone and ends at its next flush.
                    tracing::info!(
                        worker = self.id,
                        request = id,
                        "shutdown: ending an event stream"
                    );
                    req.reply = Reply::Aborted;
                    self.send_abort(id).await;
                }
                Event::KeepAlive => {
                    if let (Reply::Streaming(tx), true) = (&req.reply, req.at_event_boundary) {
                        // Never waits: a full channel means the stream is not quiet.
                        let _ = tx.try_send(Ok(Bytes::from_static(SSE_KEEPALIVE)));
                    }
                    if let Some(every) = keepalive_every {
                        keepalive.as_mut().reset(Instant::now() + every);
                    }
                }
                Event::Message(Err(e)) => {
                    tracing::error!(
                        worker = self.id,
                        request = id,
                        "receiving from the worker: {e}"
                    );
                    req.reply.fail(StatusCode::BAD_GATEWAY, "worker failed");
                    return Err(Restart::Crash);
                }
                Event::Message(Ok(count)) if count == 0 || self.lens[0] == 0 => {
                    tracing::error!(
                        worker = self.id,
                        request = id,
                        "worker process died during the request"
                    );
                    req.reply.fail(StatusCode::BAD_GATEWAY, "worker died");
                    return Err(Restart::Crash);
                }
                Event::Message(Ok(count)) => {
                    let mut next = 0;
                    while next < count {
                        let msg = self.take_message(&mut next, count);
                        if msg.is_empty() {
                            // The worker closed its socket after these messages.
                            req.reply.fail(StatusCode::BAD_GATEWAY, "worker died");
                            return Err(Restart::Crash);
                        }
                        match msg[0] {
                            ipc::MSG_OUTPUT => {
                                let done =
                                    match self.output(&mut req, msg, &mut sleep, deadline).await {
                                        Ok(done) => done,
                                        Err(why) => {
                                            req.reply
                                                .fail(StatusCode::BAD_GATEWAY, "worker failed");
                                            return Err(why);
                                        }
                                    };
                                if done {
                                    return Ok(());
                                }
                                if let Some(every) = keepalive_every {
                                    keepalive.as_mut().reset(Instant::now() + every);
                                }
                            }
                            ipc::MSG_HEARTBEAT => {
                                let mut d = Decoder::new(&msg[1..]);
                                if let (Ok(_), Ok(secs), Some(current)) =
                                    (d.u64(), d.u32(), deadline)
                                {
                                    let extended =
                                        Instant::now() + Duration::from_secs(secs.into());
                                    if extended > current {
                                        deadline = Some(extended);
                                        sleep.as_mut().reset(extended);
                                    }
                                }
                            }
                            other => {
                                tracing::error!(
                                    worker = self.id,
                                    "unexpected message type {other}"
                                );
                                req.reply.fail(StatusCode::BAD_GATEWAY, "worker failed");
                                return Err(Restart::Protocol);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The message at `*next` of the batch just received, advancing `*next`.
    /// A run of plain chunks (no head, not the end) is merged into one
    /// message: a script flushing tiny events in a loop then costs the
    /// master one channel send and one write per batch, not per flush.
    fn take_message(&self, next: &mut usize, count: usize) -> Bytes {
        const PREFIX: usize = 10; // type, flags, request id
        let plain = |m: &[u8]| m.len() >= PREFIX && m[0] == ipc::MSG_OUTPUT && m[1] == 0;
        let i = *next;
        let first = &self.bufs[i][..self.lens[i]];
        let mut end = i + 1;
        if plain(first) {
            while end < count && plain(&self.bufs[end][..self.lens[end]]) {
                end += 1;
            }
        }
        *next = end;
        if end == i + 1 {
            return Bytes::copy_from_slice(first);
        }
        let total = PREFIX + (i..end).map(|k| self.lens[k] - PREFIX).sum::<usize>();
        let mut merged = bytes::BytesMut::with_capacity(total);
        merged.extend_from_slice(&first[..PREFIX]);
        for k in i..end {
            merged.extend_from_slice(&self.bufs[k][PREFIX..self.lens[k]]);
        }
        merged.freeze()
    }

    /// Handles one `MSG_OUTPUT`; `Ok(true)` when the worker is idle again.
    async fn output(
        &mut self,
        req: &mut InFlight,
        msg: Bytes,
        sleep: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        deadline: Option<Instant>,
    ) -> Result<bool, Restart> {
        let mut d = Decoder::new(&msg[1..]);
        let flags = d.u8().map_err(|_| Restart::Protocol)?;
        let _id = d.u64().map_err(|_| Restart::Protocol)?;
        let head = if flags & ipc::OUT_HEAD != 0 {
            Some(decode_head(&mut d).map_err(|_| Restart::Protocol)?)
        } else {
            None
        };
        let body_at = 1 + d.position();
        let data = msg.slice(body_at..);
        let end = flags & ipc::OUT_END != 0;
        if !data.is_empty() {
            req.at_event_boundary = ends_event(&data);
        }

        match std::mem::replace(&mut req.reply, Reply::Complete) {
            Reply::Waiting(tx) => {
                let Some(head) = head else {
                    return Err(Restart::Protocol);
                };
                let mut resp = Response::new(Body::Empty);
                *resp.status_mut() = head.status;
                *resp.headers_mut() = head.headers;
                resp.extensions_mut().insert(ServedBy(self.id));
                req.sse = make_sse(&mut resp, req.accepts_sse, head.default_content_type);
                if !req.sse && !req.head {
                    req.remaining = declared_length(&mut resp, &req.script);
                    req.declared = req.remaining.unwrap_or(0);
                }
                let data = req.clip(data);
                let metrics = &self.supervisor.metrics;
                // An SSE response is always streamed, so it never carries a
                // Content-Length, even when the script ended at once.
                *resp.body_mut() = if end && !req.sse && !req.owes_bytes() {
                    Body::full(data)
                } else {
                    let (btx, brx) = mpsc::channel(STREAM_CHANNEL_CAPACITY);
                    metrics.bytes_streamed.fetch_add(data.len() as u64, Relaxed);
                    if !data.is_empty() {
                        let _ = btx.try_send(Ok(data));
                    }
                    if end {
                        // Ended short of its Content-Length.
                        req.log_short();
                        cut_after_sent(btx, "the script sent less than its Content-Length");
                    } else if req.remaining != Some(0) {
                        req.reply = Reply::Streaming(btx);
                        req.stream_gauge = Some(StreamGauge::new(metrics));
                        if req.stream_place.is_none() {
                            req.stream_place = Some(StreamPlace::take(&self.supervisor));
                        }
                    }
                    Body::Channel(brx)
                };
                if tx.send(resp).is_err() && !end {
                    req.reply = Reply::Aborted;
                    self.send_abort(req.id).await;
                }
            }
            Reply::Streaming(tx) => {
                let data = req.clip(data);
                if !data.is_empty() {
                    // Wait for room: this is where a slow client slows the
                    // script (the worker blocks on its full socket meanwhile).
                    let permit = tokio::select! {
                        p = tx.reserve() => p.ok(),
                        _ = sleep.as_mut(), if deadline.is_some() => {
                            cut(tx.clone(), "request timed out");
                            return Err(Restart::Timeout);
                        }
                    };
                    match permit {
                        Some(p) => {
                            self.supervisor
                                .metrics
                                .bytes_streamed
                                .fetch_add(data.len() as u64, Relaxed);
                            p.send(Ok(data));
                        }
                        None => {
                            req.reply = Reply::Aborted;
                            self.send_abort(req.id).await;
                        }
                    }
                }
                if end && req.owes_bytes() && matches!(req.reply, Reply::Complete) {
                    req.log_short();
                    cut_after_sent(tx, "the script sent less than its Content-Length");
                } else if !end && req.remaining != Some(0) && matches!(req.reply, Reply::Complete) {
                    req.reply = Reply::Streaming(tx);
                }
                // Otherwise `tx` drops here: the body ends cleanly, the
                // declared length sent; the script may go on, unheard.
            }
            other => req.reply = other,
        }
        Ok(flags & ipc::OUT_DONE != 0)
    }

    async fn send_abort(&self, id: u64) {
        let mut m = Encoder::with_capacity(9);
        m.u8(ipc::MSG_ABORT).u64(id);
        if let Err(e) = self.conn.send(m.as_slice(), None).await {
            tracing::debug!(worker = self.id, "sending an abort: {e}");
        }
    }
}

/// Turns `resp` into a Server-Sent Events response when the script set
/// `Content-Type: text/event-stream`, or set no Content-Type for a request
/// that accepts `text/event-stream`. Returns whether it did.
fn make_sse(resp: &mut Response<Body>, accepts_sse: bool, default_content_type: bool) -> bool {
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
fn ends_event(data: &[u8]) -> bool {
    data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n") || data.ends_with(b"\r\r")
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

struct Head {
    status: StatusCode,
    headers: HeaderMap,
    default_content_type: bool,
}

/// Status and header lines as PHP produced them. Lines hyper cannot send
/// (bad names or values) are dropped with a warning rather than failing the
/// whole response.
fn decode_head(d: &mut Decoder<'_>) -> Result<Head, ipc::DecodeError> {
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
            // Spindle frames the response itself (issue 9, item 4).
            (Ok(n), Ok(_)) if n == http::header::TRANSFER_ENCODING => {
                tracing::debug!("dropping Transfer-Encoding from PHP");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_boundaries() {
        assert!(ends_event(b"data: x\n\n"));
        assert!(ends_event(b"data: x\r\n\r\n"));
        assert!(ends_event(b"data: x\r\r"));
        assert!(!ends_event(b"data: x\n"));
        assert!(!ends_event(b"data: x\ndata: y"));
    }

    fn resp(ct: Option<&'static str>) -> Response<Body> {
        let mut r = Response::new(Body::Empty);
        if let Some(ct) = ct {
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        r
    }

    #[test]
    fn sse_detection() {
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
