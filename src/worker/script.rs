//! Worker mode (`--worker SCRIPT`): the worker process runs one long-lived
//! PHP script that boots the application once and then loops on
//! `spindle_handle_request($handler)`. Each call waits here for the master's
//! next request (the same message a classic request arrives in) and runs the
//! handler for it inside PHP's per-request state (ext/spindle.c resets it
//! around the call); the answer leaves as a classic request's does.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{exit, serve_with};
use crate::ipc::{self, Encoder};
use crate::php;

/// How long a worker whose script ended before serving anything waits
/// before exiting, so a script that cannot boot (a database that is down,
/// a bug deployed by a reload) is retried a few times a second per worker
/// instead of in a tight fork loop.
const EARLY_END_DELAY: Duration = Duration::from_secs(1);

/// The worker script's own request: what `$_SERVER` holds while it boots
/// and between requests.
struct BootRequest {
    filename: Vec<u8>,
    name: Vec<u8>,
}

impl BootRequest {
    fn new(script: &Path) -> BootRequest {
        let mut filename = script.as_os_str().as_bytes().to_vec();
        filename.push(0);
        let mut name = b"/".to_vec();
        name.extend_from_slice(
            script
                .file_name()
                .map_or(&b"worker.php"[..], |n| n.as_bytes()),
        );
        name.push(0);
        BootRequest { filename, name }
    }

    fn request(&self) -> php::Request<'_> {
        php::Request {
            method: b"GET\0",
            request_uri: &self.name,
            query_string: b"\0",
            script_filename: &self.filename,
            content_type: None,
            content_length: -1,
            cookie: None,
            authorization: None,
            server_vars: vec![
                (&b"SCRIPT_FILENAME\0"[..], &self.filename[..]),
                (&b"SCRIPT_NAME\0"[..], &self.name[..]),
                (&b"PHP_SELF\0"[..], &self.name[..]),
                // Symfony Runtime's FrankenPHP runner chooses its worker
                // loop by this variable.
                (&b"FRANKENPHP_WORKER\0"[..], &b"1\0"[..]),
            ],
            request_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

/// Runs the worker script on `sock`'s requests; never returns.
pub(super) fn run(sock: OwnedFd, worker_id: u64, script: &Path) -> ! {
    let boot = BootRequest::new(script);
    let mut lp = Loop {
        sock: sock.as_raw_fd(),
        worker_id,
        buf: vec![0u8; ipc::MAX_MESSAGE],
        out: Some(Encoder::with_capacity(ipc::OUTPUT_CHUNK + 8192)),
        served: 0,
        closed: false,
    };
    let started = Instant::now();
    let outcome = php::execute_worker(&boot.request(), &mut lp);
    if lp.closed {
        // The master closed our socket (recycling, reload, shutdown).
        exit(0);
    }
    let script = script.display();
    if lp.served == 0 {
        tracing::error!(
            worker = worker_id,
            "the worker script {script} ended before handling a request{}",
            if outcome.fatal { " (fatal error)" } else { "" }
        );
        std::thread::sleep(EARLY_END_DELAY.saturating_sub(started.elapsed()));
    } else {
        tracing::info!(
            worker = worker_id,
            requests = lp.served,
            "the worker script {script} ended{}; starting a fresh one",
            if outcome.fatal { " (fatal error)" } else { "" }
        );
    }
    exit(i32::from(outcome.fatal))
}

/// The worker script's side of PHP's callbacks: what it writes outside a
/// request goes to the log, and `spindle_handle_request()` lands here.
struct Loop {
    sock: RawFd,
    worker_id: u64,
    buf: Vec<u8>,
    /// The reply encoder, reused from request to request.
    out: Option<Encoder>,
    served: u64,
    /// The master closed the socket: the script was told to stop.
    closed: bool,
}

impl php::Handler for Loop {
    fn write(&mut self, data: &[u8]) -> bool {
        // Output outside a request has no client: keep it for the operator.
        let text = String::from_utf8_lossy(data);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(target: "php", worker = self.worker_id, "worker script output: {text}");
        }
        true
    }

    fn flush(&mut self) -> bool {
        true
    }

    fn header(&mut self, _line: &[u8]) {}

    fn headers_done(&mut self, _status: u16, _default_content_type: bool) {}

    fn read_body(&mut self, _buf: &mut [u8]) -> usize {
        0
    }

    fn log(&mut self, msg: &[u8], level: i32) {
        log_php(self.worker_id, msg, level);
    }

    fn heartbeat(&mut self, _secs: i64) -> bool {
        false
    }

    fn finish_request(&mut self) -> bool {
        false
    }

    fn request_id(&self) -> u64 {
        0
    }

    fn worker_id(&self) -> u64 {
        self.worker_id
    }

    fn next_request(&mut self, runner: &mut php::Runner) -> bool {
        loop {
            let received = match ipc::recv_msg(self.sock, &mut self.buf, false) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(
                        worker = self.worker_id,
                        "recvmsg on the control socket: {e}"
                    );
                    exit(1);
                }
            };
            if received.len == 0 {
                self.closed = true;
                return false;
            }
            let msg = &self.buf[..received.len];
            match msg[0] {
                ipc::MSG_REQUEST => {
                    let out = self.out.take().unwrap_or_default();
                    let out = serve_with(
                        self.sock,
                        self.worker_id,
                        &msg[1..],
                        received.fd,
                        out,
                        |req, handler| runner.run(req, handler),
                    );
                    self.out = Some(out);
                    self.served += 1;
                    return true;
                }
                // An abort for a request that has already finished.
                ipc::MSG_ABORT => {}
                other => tracing::warn!(worker = self.worker_id, "unknown message type {other}"),
            }
        }
    }
}

fn log_php(worker: u64, msg: &[u8], level: i32) {
    let msg = String::from_utf8_lossy(msg);
    match level {
        0..=3 => tracing::error!(target: "php", worker, "{msg}"),
        4 => tracing::warn!(target: "php", worker, "{msg}"),
        5 | 6 => tracing::info!(target: "php", worker, "{msg}"),
        _ => tracing::debug!(target: "php", worker, "{msg}"),
    }
}

/// Boots the worker script once in a throwaway process, up to its first
/// `spindle_handle_request()`, so that a script that cannot boot stops
/// startup (or a reload) with its error instead of failing every worker.
/// Runs in a child of the zygote; `Err` holds PHP's error lines.
pub(super) fn probe(script: &Path) -> Result<(), String> {
    struct Probe {
        reached: bool,
        errors: Vec<String>,
    }
    impl php::Handler for Probe {
        fn write(&mut self, _data: &[u8]) -> bool {
            true
        }
        fn flush(&mut self) -> bool {
            true
        }
        fn header(&mut self, _line: &[u8]) {}
        fn headers_done(&mut self, _status: u16, _default_content_type: bool) {}
        fn read_body(&mut self, _buf: &mut [u8]) -> usize {
            0
        }
        fn log(&mut self, msg: &[u8], level: i32) {
            if level <= 3 {
                self.errors
                    .push(String::from_utf8_lossy(msg).trim().to_string());
            }
        }
        fn heartbeat(&mut self, _secs: i64) -> bool {
            false
        }
        fn finish_request(&mut self) -> bool {
            false
        }
        fn request_id(&self) -> u64 {
            0
        }
        fn worker_id(&self) -> u64 {
            0
        }
        fn next_request(&mut self, _runner: &mut php::Runner) -> bool {
            // Booted: tell the script to stop, as a closing master would.
            self.reached = true;
            false
        }
    }
    let boot = BootRequest::new(script);
    let mut p = Probe {
        reached: false,
        errors: Vec::new(),
    };
    php::execute_worker(&boot.request(), &mut p);
    if p.reached {
        return Ok(());
    }
    let mut why = format!(
        "worker script {} ended without calling spindle_handle_request()",
        script.display()
    );
    if !p.errors.is_empty() {
        why.push_str(": ");
        why.push_str(&p.errors.join("; "));
    }
    Err(why)
}
