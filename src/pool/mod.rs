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
    /// The hub PHP publishes to and hands subscribers over to (`--hub`).
    pub hub: Option<Arc<crate::hub::Hub>>,
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
            if let Some(w) = supervisor.metrics.worker_script.get() {
                w.boots.fetch_add(1, Relaxed);
            }
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
