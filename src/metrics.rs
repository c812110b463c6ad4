//! Counters for the admin listener's `/metrics` (Prometheus text format).
//! Plain atomics: updating them costs a few nanoseconds on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// It died during a request (signal, exit, OOM kill).
    Crash,
    /// Its request overran the deadline.
    Timeout,
    /// It sent something the master could not understand.
    Protocol,
    /// It served --max-requests requests.
    MaxRequests,
    /// Its memory passed --max-worker-rss.
    Rss,
    /// A reload (SIGHUP) asked for fresh workers.
    Reload,
}

impl Restart {
    const ALL: [Restart; 6] = [
        Restart::Crash,
        Restart::Timeout,
        Restart::Protocol,
        Restart::MaxRequests,
        Restart::Rss,
        Restart::Reload,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Restart::Crash => "crash",
            Restart::Timeout => "timeout",
            Restart::Protocol => "protocol",
            Restart::MaxRequests => "max_requests",
            Restart::Rss => "rss",
            Restart::Reload => "reload",
        }
    }
    /// Whether the old process is killed (it may be stuck) rather than
    /// let go between requests.
    pub fn kills(self) -> bool {
        matches!(self, Restart::Crash | Restart::Timeout | Restart::Protocol)
    }
}

#[derive(Debug)]
pub struct Metrics {
    by_status: Vec<AtomicU64>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    restarts: [AtomicU64; Restart::ALL.len()],
    pub busy_workers: AtomicI64,
    pub workers: AtomicI64,
    pub open_streams: AtomicI64,
    pub bytes_streamed: AtomicU64,
    pub rejected_queue_full: AtomicU64,
    pub rejected_queue_timeout: AtomicU64,
    pub rejected_streams: AtomicU64,
    /// The hub's counters, with `--hub`.
    pub hub: std::sync::OnceLock<std::sync::Arc<crate::hub::HubMetrics>>,
    /// Worker mode's counters, with `--worker`.
    pub worker_script: std::sync::OnceLock<WorkerScriptMetrics>,
}

/// Worker mode (`--worker`): how often the script booted, and how much each
/// boot served.
#[derive(Debug, Default)]
pub struct WorkerScriptMetrics {
    /// Worker processes started, each booting the script once.
    pub boots: AtomicU64,
    /// Requests the worker script's handler served.
    pub requests: AtomicU64,
    /// Microseconds the worker script took to boot in the current zygote's
    /// trial run (at startup or the last reload).
    pub boot_us: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            duration_count: AtomicU64::new(0),
            duration_sum_us: AtomicU64::new(0),
            restarts: Default::default(),
            busy_workers: AtomicI64::new(0),
            workers: AtomicI64::new(0),
            open_streams: AtomicI64::new(0),
            bytes_streamed: AtomicU64::new(0),
            rejected_queue_full: AtomicU64::new(0),
            rejected_queue_timeout: AtomicU64::new(0),
            rejected_streams: AtomicU64::new(0),
            hub: std::sync::OnceLock::new(),
            worker_script: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// A finished request: its status and how long it took, end to end.
    pub fn request(&self, status: u16, took: Duration) {
        if let Some(c) = self.by_status.get(status as usize) {
            c.fetch_add(1, Relaxed);
        }
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Relaxed);
                break;
            }
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_sum_us
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub fn restart(&self, why: Restart) {
        let i = Restart::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.restarts[i].fetch_add(1, Relaxed);
    }

    pub fn restarts(&self, why: Restart) -> u64 {
        let i = Restart::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.restarts[i].load(Relaxed)
    }

    /// The Prometheus text exposition; `queue_depth` is sampled by the caller.
    pub fn render(&self, queue_depth: usize) -> String {
        let mut o = String::with_capacity(4096);
        o.push_str("# HELP spindle_requests_total Requests answered, by HTTP status.\n");
        o.push_str("# TYPE spindle_requests_total counter\n");
        for (code, c) in self.by_status.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(o, "spindle_requests_total{{code=\"{code}\"}} {n}");
            }
        }
        o.push_str("# HELP spindle_request_duration_seconds Time from request to the end of the response.\n");
        o.push_str("# TYPE spindle_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(
                o,
                "spindle_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Relaxed);
        let _ = writeln!(
            o,
            "spindle_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.duration_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "spindle_request_duration_seconds_sum {sum}");
        let _ = writeln!(o, "spindle_request_duration_seconds_count {count}");
        gauge(
            &mut o,
            "spindle_queue_depth",
            "PHP requests waiting for a worker.",
            queue_depth as i64,
        );
        let busy = self.busy_workers.load(Relaxed);
        let total = self.workers.load(Relaxed);
        gauge(
            &mut o,
            "spindle_workers_busy",
            "Workers running a request.",
            busy,
        );
        gauge(
            &mut o,
            "spindle_workers_idle",
            "Workers waiting for a request.",
            (total - busy).max(0),
        );
        o.push_str("# HELP spindle_worker_restarts_total Workers replaced, by cause.\n");
        o.push_str("# TYPE spindle_worker_restarts_total counter\n");
        for r in Restart::ALL {
            let _ = writeln!(
                o,
                "spindle_worker_restarts_total{{cause=\"{}\"}} {}",
                r.name(),
                self.restarts(r)
            );
        }
        gauge(
            &mut o,
            "spindle_open_streams",
            "Streamed (flushed) responses in progress.",
            self.open_streams.load(Relaxed),
        );
        counter(
            &mut o,
            "spindle_streamed_bytes_total",
            "Body bytes sent in streamed responses.",
            self.bytes_streamed.load(Relaxed),
        );
        counter(
            &mut o,
            "spindle_rejected_queue_full_total",
            "Requests answered 503 because the queue was full.",
            self.rejected_queue_full.load(Relaxed),
        );
        counter(
            &mut o,
            "spindle_rejected_queue_timeout_total",
            "Requests answered 503 after waiting --queue-timeout.",
            self.rejected_queue_timeout.load(Relaxed),
        );
        counter(
            &mut o,
            "spindle_rejected_streams_total",
            "Requests for text/event-stream answered 503 because --max-streaming-workers workers held streams.",
            self.rejected_streams.load(Relaxed),
        );
        if let Some(w) = self.worker_script.get() {
            let boots = w.boots.load(Relaxed);
            let requests = w.requests.load(Relaxed);
            counter(
                &mut o,
                "spindle_worker_script_boots_total",
                "Worker processes started in worker mode, each booting the worker script once.",
                boots,
            );
            counter(
                &mut o,
                "spindle_worker_script_requests_total",
                "Requests served by the worker script's handler.",
                requests,
            );
            let _ = writeln!(
                o,
                "# HELP spindle_worker_script_boot_seconds How long the worker script took to boot in its trial run at startup or the last reload.\n# TYPE spindle_worker_script_boot_seconds gauge\nspindle_worker_script_boot_seconds {}",
                w.boot_us.load(Relaxed) as f64 / 1e6
            );
            let per_boot = if boots == 0 {
                0.0
            } else {
                requests as f64 / boots as f64
            };
            let _ = writeln!(
                o,
                "# HELP spindle_worker_script_requests_per_boot Requests served per boot of the worker script, on average.\n# TYPE spindle_worker_script_requests_per_boot gauge\nspindle_worker_script_requests_per_boot {per_boot}"
            );
        }
        if let Some(h) = self.hub.get() {
            gauge(
                &mut o,
                "spindle_hub_subscribers",
                "Subscribers the hub holds.",
                h.subscribers.load(Relaxed) as i64,
            );
            for (name, help, v) in [
                (
                    "spindle_hub_updates_total",
                    "Updates published to the hub.",
                    &h.published,
                ),
                (
                    "spindle_hub_deliveries_total",
                    "Updates handed to subscribers.",
                    &h.deliveries,
                ),
                (
                    "spindle_hub_dropped_slow_total",
                    "Subscribers dropped because they could not keep up.",
                    &h.dropped_slow,
                ),
                (
                    "spindle_hub_replays_total",
                    "Subscriptions that asked for a replay (Last-Event-ID).",
                    &h.replays,
                ),
                (
                    "spindle_hub_rejected_full_total",
                    "Subscriptions refused at --hub-max-subscribers.",
                    &h.rejected_full,
                ),
            ] {
                counter(&mut o, name, help, v.load(Relaxed));
            }
            if let Some(t) = h.transport.get() {
                gauge(
                    &mut o,
                    "spindle_hub_transport_up",
                    "1 while the hub's transport is connected (always 1 for local).",
                    i64::from(t.is_up()),
                );
                counter(
                    &mut o,
                    "spindle_hub_transport_errors_total",
                    "Hub transport connection losses, failed connection attempts and failed publishes.",
                    t.errors.load(Relaxed),
                );
                counter(
                    &mut o,
                    "spindle_hub_transport_received_total",
                    "Updates read from the hub's shared transport (published by any node).",
                    t.received.load(Relaxed),
                );
                let _ = writeln!(
                    o,
                    "# HELP spindle_hub_transport_lag_seconds From an update stored in the transport to this node reading it (the newest read).\n# TYPE spindle_hub_transport_lag_seconds gauge\nspindle_hub_transport_lag_seconds {:.3}",
                    t.lag_ms.load(Relaxed) as f64 / 1000.0
                );
            }
        }
        o
    }
}

fn gauge(o: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request(200, Duration::from_millis(3));
        m.request(200, Duration::from_millis(300));
        m.request(502, Duration::from_secs(100));
        m.restart(Restart::Crash);
        let t = m.render(4);
        assert!(
            t.contains("spindle_requests_total{code=\"200\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("spindle_requests_total{code=\"502\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("spindle_request_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("spindle_request_duration_seconds_bucket{le=\"30\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("spindle_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("spindle_worker_restarts_total{cause=\"crash\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("spindle_queue_depth 4\n"), "{t}");
    }
}
