//! What every slot shares: the current zygote and its generation, reloads
//! and revivals, the streaming-worker count, the shutdown signal.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::PhpSettings;
use crate::ipc;
use crate::metrics::Metrics;
use crate::worker::{WorkerKind, Zygote, ZygoteError};

use super::response::StreamPlace;

/// What every slot shares: the current zygote, its generation, the metrics.
#[derive(Debug)]
pub struct Supervisor {
    pub(super) zygote: RwLock<Arc<Zygote>>,
    pub(super) generation: watch::Sender<u64>,
    pub(super) php: PhpSettings,
    pub metrics: Arc<Metrics>,
    pub(super) reviving: tokio::sync::Mutex<()>,
    /// Workers holding a streaming response, or taken for a request that
    /// wants one, per kind of worker; bounded by `max_streaming_workers`.
    pub(super) streaming: [AtomicUsize; 2],
    /// Set once shutdown begins: Server-Sent Events streams end cleanly.
    pub(super) shutdown: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(zygote: Zygote, php: PhpSettings, metrics: Arc<Metrics>) -> Arc<Supervisor> {
        if php.worker.is_some() {
            let _ = metrics.worker_script.set(Default::default());
        }
        record_boot_time(&metrics, &zygote);
        Arc::new(Supervisor {
            zygote: RwLock::new(Arc::new(zygote)),
            generation: watch::Sender::new(0),
            php,
            metrics,
            reviving: tokio::sync::Mutex::new(()),
            streaming: Default::default(),
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

    pub(super) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Watches the current zygote and starts a new one as soon as it exits
    /// (an operator's kill, the OOM killer), reaping the old one. Its
    /// workers keep serving meanwhile; without a zygote none could be
    /// replaced, so a later crash or recycle would wait for the revival.
    pub(super) async fn watch_zygote(self: Arc<Self>) {
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

    pub(super) fn current(&self) -> (Arc<Zygote>, u64) {
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
        record_boot_time(&self.metrics, &z);
        *self.zygote.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(z);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Starts a new zygote when the one of generation `seen` cannot fork
    /// any more (killed by an operator or the OOM killer): without it no
    /// worker could ever be replaced again. Once per generation, however
    /// many slots notice at the same time.
    /// Returns false when starting it failed.
    pub(super) async fn revive(&self, seen: u64) -> bool {
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

    /// Takes a streaming place among the workers of `kind` for a request
    /// that wants a stream; `None` when `max` of them hold streams already.
    pub(super) fn reserve_stream(
        self: &Arc<Self>,
        kind: WorkerKind,
        max: usize,
    ) -> Option<StreamPlace> {
        self.streaming[kind.index()]
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| StreamPlace {
                supervisor: self.clone(),
                kind,
            })
    }
}

/// Worker mode: the boot time `zygote` measured, for `/metrics`.
fn record_boot_time(metrics: &Metrics, zygote: &Zygote) {
    if let (Some(w), Some(took)) = (metrics.worker_script.get(), zygote.boot_time()) {
        w.boot_us.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}
