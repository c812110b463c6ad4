//! One worker slot: a task that takes a request from the queue, hands it to
//! its worker process, relays the replies, and replaces the process when it
//! dies, overruns its deadline or is due for recycling.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::http::body::{self, Body};
use crate::ipc::{self, Channel, Decoder, Encoder};
use crate::metrics::Restart;
use crate::worker::{WorkerKind, Zygote};

use super::response::{
    cut, cut_after_sent, declared_length, decode_head, ends_event, make_sse, InFlight, Reply,
    StreamGauge, StreamPlace, STREAM_CHANNEL_CAPACITY,
};
use super::{Job, PoolConfig, ServedBy, Supervisor};

/// Why a request ended without its worker finishing it normally.
pub(super) enum Failure {
    /// The worker must be replaced; the response was answered or cut.
    Replace(Restart),
    /// The worker died without reading the request: it may go to another.
    Undelivered(Job, Option<StreamPlace>),
}

impl From<Restart> for Failure {
    fn from(r: Restart) -> Failure {
        Failure::Replace(r)
    }
}

/// Messages taken from a worker in one `recvmmsg`.
pub(super) const RECV_BATCH: usize = 16;

/// A worker process as the master sees it.
#[derive(Debug)]
pub(super) struct WorkerConn {
    pub(super) channel: Channel,
    pub(super) pid: Pid,
}

impl WorkerConn {
    pub(super) fn new(sock: OwnedFd, pid: Pid) -> io::Result<Self> {
        Ok(WorkerConn {
            channel: Channel::new(sock)?,
            pid,
        })
    }

    pub(super) async fn send(&self, msg: &[u8], fd: Option<&OwnedFd>) -> io::Result<()> {
        self.channel.send(msg, fd).await
    }

    pub(super) fn kill(&self) {
        // The process may be gone already; ESRCH is fine.
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Resident memory, from /proc.
    pub(super) fn rss(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
}

pub(super) enum Event {
    Message(io::Result<usize>),
    Timeout,
    KeepAlive,
    ClientGone,
    Shutdown,
}

/// The comment sent on quiet Server-Sent Events streams, so that proxies
/// (nginx's proxy_read_timeout is 60 s) do not cut them.
pub(super) const SSE_KEEPALIVE: &[u8] = b": keep-alive\n\n";

pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) kind: WorkerKind,
    /// Workers of this kind that may hold streams at once.
    pub(super) stream_limit: usize,
    pub(super) conn: WorkerConn,
    /// The zygote that forked this slot's worker, and its generation: kept
    /// alive until the worker is replaced.
    pub(super) zygote: Arc<Zygote>,
    pub(super) generation: u64,
    /// Requests the current worker has served.
    pub(super) served: u64,
    /// Receive buffers for one `recvmmsg` (only touched pages become resident).
    pub(super) bufs: Vec<Vec<u8>>,
    pub(super) lens: [usize; RECV_BATCH],
    pub(super) config: PoolConfig,
    pub(super) supervisor: Arc<Supervisor>,
}

impl Slot {
    pub(super) async fn run(mut self, queue: async_channel::Receiver<Job>) {
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
            let mut job = job;
            if self.config.hub.is_some() {
                // The flags byte follows the message type (see ipc::MSG_REQUEST).
                job.message[1] |= ipc::REQ_HUB;
            }
            job.dispatched.store(true, Relaxed);
            if job.reply.is_closed() {
                // The client left, or gave up, while the request waited.
                continue;
            }
            // With the hub on, a request for an event stream may well hand
            // off and hold no worker at all: its place among
            // --max-streaming-workers is taken only once its response really
            // streams (in `output`). Reserving at dispatch refused 38 of 40
            // tabs connecting at once with 2 workers, though none would
            // have held a worker.
            let stream_place = if job.accepts_sse && self.config.hub.is_none() {
                let place = self.supervisor.reserve_stream(self.kind, self.stream_limit);
                if place.is_none() {
                    self.supervisor
                        .metrics
                        .rejected_streams
                        .fetch_add(1, Relaxed);
                    let _ = job.reply.send(body::too_many_streams());
                    continue;
                }
                place
            } else {
                None
            };
            let (mut job, mut stream_place) = (job, stream_place);
            for attempt in 1.. {
                if !self.deliver(&job).await {
                    let _ = job.reply.send(body::status(StatusCode::BAD_GATEWAY));
                    break;
                }
                let metrics = self.supervisor.metrics.clone();
                metrics.busy_workers.fetch_add(1, Relaxed);
                let result = self.serve(job, stream_place).await;
                metrics.busy_workers.fetch_sub(1, Relaxed);
                self.served += 1;
                if let (WorkerKind::Script, Some(w)) = (self.kind, metrics.worker_script.get()) {
                    w.requests.fetch_add(1, Relaxed);
                }
                match result {
                    Err(Failure::Undelivered(j, place)) if attempt < 3 => {
                        self.replace(Restart::Crash).await;
                        (job, stream_place) = (j, place);
                        continue;
                    }
                    Err(Failure::Undelivered(j, _)) => {
                        let _ = j.reply.send(body::status(StatusCode::BAD_GATEWAY));
                        self.replace(Restart::Crash).await;
                    }
                    Err(Failure::Replace(why)) => self.replace(why).await,
                    Ok(()) => {
                        if let Some(why) = self.recycle_reason() {
                            self.replace(why).await;
                        }
                    }
                }
                break;
            }
        }
    }

    /// Resolves when the idle worker's socket turns readable: it died
    /// (end of file) or sent something unasked.
    pub(super) async fn idle_worker_trouble(&mut self) -> Restart {
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
    pub(super) async fn deliver(&mut self, job: &Job) -> bool {
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
    pub(super) fn recycle_reason(&self) -> Option<Restart> {
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

    pub(super) async fn replace(&mut self, why: Restart) {
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
            let (id, kind) = (self.id, self.kind);
            let z = zygote.clone();
            let spawned = tokio::task::spawn_blocking(move || z.spawn_worker(id, kind)).await;
            match spawned {
                Ok(Ok((sock, pid))) => match WorkerConn::new(sock, pid) {
                    Ok(conn) => {
                        self.conn = conn;
                        self.zygote = zygote;
                        self.generation = generation;
                        self.served = 0;
                        self.supervisor.metrics.workers.fetch_add(1, Relaxed);
                        if let (WorkerKind::Script, Some(w)) =
                            (self.kind, self.supervisor.metrics.worker_script.get())
                        {
                            w.boots.fetch_add(1, Relaxed);
                        }
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
    pub(super) async fn serve(
        &mut self,
        job: Job,
        stream_place: Option<StreamPlace>,
    ) -> Result<(), Failure> {
        let Job {
            id,
            message,
            body_fd,
            reply,
            accepts_sse,
            head,
            script,
            dispatched,
            kind,
        } = job;
        // Kept until the worker answers, in case it never read the request.
        let mut undelivered = Some((message, body_fd, dispatched));
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
                    return Err(Restart::Timeout.into());
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
                // ECONNRESET: the worker died with unread messages in its
                // queue (the kernel says so only then). Before any answer
                // and with no abort sent, the unread one is this request:
                // PHP never saw it, so a fresh worker gets it (issue 9,
                // item 2: the kill can land between our send and its read).
                Event::Message(Err(e))
                    if e.raw_os_error() == Some(libc::ECONNRESET)
                        && matches!(req.reply, Reply::Waiting(_))
                        && undelivered.is_some() =>
                {
                    tracing::warn!(
                        worker = self.id,
                        request = id,
                        "the worker died before reading the request; giving it to a fresh one"
                    );
                    let (message, body_fd, dispatched) = undelivered.take().expect("checked above");
                    let script = std::mem::take(&mut req.script);
                    let Reply::Waiting(reply) = std::mem::replace(&mut req.reply, Reply::Aborted)
                    else {
                        unreachable!("checked above")
                    };
                    let job = Job {
                        id,
                        message,
                        body_fd,
                        reply,
                        accepts_sse,
                        head,
                        script,
                        dispatched,
                        kind,
                    };
                    return Err(Failure::Undelivered(job, req.stream_place.take()));
                }
                Event::Message(Err(e)) => {
                    tracing::error!(
                        worker = self.id,
                        request = id,
                        "receiving from the worker: {e}"
                    );
                    req.reply.fail(StatusCode::BAD_GATEWAY, "worker failed");
                    return Err(Restart::Crash.into());
                }
                Event::Message(Ok(count)) if count == 0 || self.lens[0] == 0 => {
                    tracing::error!(
                        worker = self.id,
                        request = id,
                        "worker process died during the request"
                    );
                    req.reply.fail(StatusCode::BAD_GATEWAY, "worker died");
                    return Err(Restart::Crash.into());
                }
                Event::Message(Ok(count)) => {
                    // The worker read the request: nothing to give back.
                    undelivered = None;
                    let mut next = 0;
                    while next < count {
                        let msg = self.take_message(&mut next, count);
                        if msg.is_empty() {
                            // The worker closed its socket after these messages.
                            req.reply.fail(StatusCode::BAD_GATEWAY, "worker died");
                            return Err(Restart::Crash.into());
                        }
                        match msg[0] {
                            ipc::MSG_OUTPUT => {
                                let done =
                                    match self.output(&mut req, msg, &mut sleep, deadline).await {
                                        Ok(done) => done,
                                        Err(why) => {
                                            req.reply
                                                .fail(StatusCode::BAD_GATEWAY, "worker failed");
                                            return Err(why.into());
                                        }
                                    };
                                if done {
                                    return Ok(());
                                }
                                if let Some(every) = keepalive_every {
                                    keepalive.as_mut().reset(Instant::now() + every);
                                }
                            }
                            ipc::MSG_PUBLISH => {
                                let Ok(answer) =
                                    super::hub::publish(self.config.hub.as_deref(), &msg[1..])
                                        .await
                                else {
                                    req.reply.fail(StatusCode::BAD_GATEWAY, "worker failed");
                                    return Err(Restart::Protocol.into());
                                };
                                // The worker waits for this; if it died, the
                                // next receive says so.
                                if let Err(e) = self.conn.send(&answer, None).await {
                                    tracing::debug!(worker = self.id, "answering a publish: {e}");
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
                                return Err(Restart::Protocol.into());
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
    pub(super) fn take_message(&self, next: &mut usize, count: usize) -> Bytes {
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
    pub(super) async fn output(
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
        let handoff = if flags & ipc::OUT_HANDOFF != 0 {
            if flags & ipc::OUT_DONE == 0 {
                return Err(Restart::Protocol);
            }
            Some(super::hub::decode_handoff(&mut d).map_err(|_| Restart::Protocol)?)
        } else {
            None
        };
        let body_at = 1 + d.position();
        let data = msg.slice(body_at..);
        if let Some(h) = handoff {
            self.hand_off(req, head, data, h)?;
            return Ok(true);
        }
        let end = flags & ipc::OUT_END != 0;
        if !data.is_empty() {
            req.at_event_boundary = ends_event(&data);
        }

        match std::mem::replace(&mut req.reply, Reply::Complete) {
            Reply::Waiting(tx) => {
                let Some(head) = head else {
                    return Err(Restart::Protocol);
                };
                // A request for a stream that took no place at dispatch
                // (with the hub on, it might have been a hand-off) is
                // refused now, before a byte went out, if it would stream
                // past --max-streaming-workers; its script is told the
                // client left and ends at its next flush.
                if !end && req.accepts_sse && req.stream_place.is_none() {
                    if let Some(place) =
                        self.supervisor.reserve_stream(self.kind, self.stream_limit)
                    {
                        req.stream_place = Some(place);
                    } else {
                        self.supervisor
                            .metrics
                            .rejected_streams
                            .fetch_add(1, Relaxed);
                        let _ = tx.send(body::too_many_streams());
                        req.reply = Reply::Aborted;
                        self.send_abort(req.id).await;
                        return Ok(flags & ipc::OUT_DONE != 0);
                    }
                }
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
                            req.stream_place = Some(StreamPlace::take(&self.supervisor, self.kind));
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

    /// The script ended after `spindle_subscribe()`: its response becomes a
    /// hub stream held here, and the worker is free.
    fn hand_off(
        &mut self,
        req: &mut InFlight,
        head: Option<super::response::Head>,
        data: Bytes,
        h: crate::hub::Handoff,
    ) -> Result<(), Restart> {
        let Some(hub) = self.config.hub.clone() else {
            // Workers are told the hub is off (REQ_HUB) and refuse at call time.
            tracing::error!(request = req.id, "a hand-off without --hub");
            std::mem::replace(&mut req.reply, Reply::Complete)
                .fail(StatusCode::INTERNAL_SERVER_ERROR, "hub is off");
            return Ok(());
        };
        match std::mem::replace(&mut req.reply, Reply::Complete) {
            Reply::Waiting(tx) => {
                let Some(head) = head else {
                    let _ = tx.send(body::status(StatusCode::BAD_GATEWAY));
                    return Err(Restart::Protocol);
                };
                let mut resp = super::hub::response(&hub, head, data, h);
                resp.extensions_mut().insert(ServedBy(self.id));
                let _ = tx.send(resp);
            }
            Reply::Streaming(tx) => super::hub::continue_stream(&hub, data, h, tx),
            // The client left, or tokio_finish_request() ended the response.
            other => req.reply = other,
        }
        Ok(())
    }

    pub(super) async fn send_abort(&self, id: u64) {
        let mut m = Encoder::with_capacity(9);
        m.u8(ipc::MSG_ABORT).u64(id);
        if let Err(e) = self.conn.send(m.as_slice(), None).await {
            tracing::debug!(worker = self.id, "sending an abort: {e}");
        }
    }
}

pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}
