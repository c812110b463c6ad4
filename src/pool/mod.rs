//! The master's side of the workers: a bounded queue of PHP requests, and one
//! task per worker that takes a request, hands it to its process, turns the
//! replies into an HTTP response, and replaces the process when it dies or
//! overruns its deadline.

mod hub;
mod response;
mod slot;
mod supervisor;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::http::body::Body;
use crate::ipc;
use crate::worker::WorkerKind;
use slot::{Slot, WorkerConn, RECV_BATCH};
pub use supervisor::Supervisor;

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
    /// The kind of worker that serves it: the worker script's, or classic.
    pub kind: WorkerKind,
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
    /// Requests for classic workers, and for the worker script's; with
    /// only one kind of worker, both are the same queue.
    classic: async_channel::Sender<Job>,
    script: async_channel::Sender<Job>,
    supervisor: Arc<Supervisor>,
    /// --max-streaming-workers, per kind of worker.
    stream_limits: [usize; 2],
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
    /// Workers of each kind that may hold streaming responses at once;
    /// requests that want `text/event-stream` past it get 503
    /// (--max-streaming-workers). `None`: all but one of each kind, at
    /// least one, so that ordinary requests keep a worker.
    pub max_streaming_workers: Option<usize>,
    /// The hub PHP publishes to and hands subscribers over to (`--hub`).
    pub hub: Option<Arc<crate::hub::Hub>>,
}

impl Pool {
    /// Starts one task per worker. Call from inside the tokio runtime.
    pub fn start(
        supervisor: Arc<Supervisor>,
        workers: Vec<(OwnedFd, Pid, WorkerKind)>,
        config: PoolConfig,
    ) -> io::Result<Pool> {
        let classic = async_channel::bounded(config.queue_size);
        let both_kinds = workers.iter().any(|w| w.2 == WorkerKind::Script)
            && workers.iter().any(|w| w.2 == WorkerKind::Classic);
        let script = if both_kinds {
            async_channel::bounded(config.queue_size)
        } else {
            classic.clone()
        };
        let mut stream_limits = [0; 2];
        for kind in [WorkerKind::Classic, WorkerKind::Script] {
            let n = workers.iter().filter(|w| w.2 == kind).count();
            stream_limits[kind.index()] = config
                .max_streaming_workers
                .unwrap_or_else(|| n.saturating_sub(1).max(1));
        }
        let (zygote, generation) = supervisor.current();
        for (i, (sock, pid, kind)) in workers.into_iter().enumerate() {
            let queue = match kind {
                WorkerKind::Classic => classic.1.clone(),
                WorkerKind::Script => script.1.clone(),
            };
            let slot = Slot {
                id: i as u64 + 1,
                kind,
                stream_limit: stream_limits[kind.index()],
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
            if let (WorkerKind::Script, Some(w)) = (kind, supervisor.metrics.worker_script.get()) {
                w.boots.fetch_add(1, Relaxed);
            }
            tokio::spawn(slot.run(queue));
        }
        tokio::spawn(supervisor.clone().watch_zygote());
        Ok(Pool {
            stream_limits,
            classic: classic.0,
            script: script.0,
            supervisor,
        })
    }

    /// Queues a request for its kind of worker, or refuses it when that
    /// queue is full.
    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        let queue = match job.kind {
            WorkerKind::Classic => &self.classic,
            WorkerKind::Script => &self.script,
        };
        queue.try_send(job).map_err(|_| QueueFull)
    }

    /// Whether a request that wants `text/event-stream` may still get a
    /// worker of `kind`: false once --max-streaming-workers of them hold
    /// streams, so that ordinary requests keep the rest.
    pub fn stream_slots_left(&self, kind: WorkerKind) -> bool {
        self.supervisor.streaming[kind.index()].load(Relaxed) < self.stream_limits[kind.index()]
    }

    /// Requests waiting for a worker.
    pub fn queue_len(&self) -> usize {
        if self.classic.same_channel(&self.script) {
            self.classic.len()
        } else {
            self.classic.len() + self.script.len()
        }
    }

    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }
}
