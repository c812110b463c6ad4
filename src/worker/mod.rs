//! What runs inside a worker process: receive a request, run PHP, send the
//! output back, repeat.
//!
//! A worker is single-threaded: PHP (NTS) owns the thread, and the control
//! socket is only read between requests (blocking) and, during a request,
//! polled without blocking for an abort whenever output is sent.

mod hub;
mod script;
mod zygote;

pub use zygote::{zygote_process, Zygote, ZygoteArgs, ZygoteError};

/// What a worker process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Each request runs its own script.
    Classic,
    /// Requests go to the worker script's handler (`--worker`).
    Script,
}

impl WorkerKind {
    /// For arrays with one entry per kind.
    pub fn index(self) -> usize {
        match self {
            WorkerKind::Classic => 0,
            WorkerKind::Script => 1,
        }
    }
}

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use crate::ipc::{self, Decoder, Encoder};
use crate::php;

/// Serves requests on `sock` until the master closes it; never returns.
/// With a worker script (`--worker`), requests go to its handler.
pub fn run(sock: OwnedFd, worker_id: u64, worker_script: Option<&std::path::Path>) -> ! {
    if let Some(script) = worker_script {
        script::run(sock, worker_id, script)
    }
    let fd = sock.as_raw_fd();
    let mut buf = vec![0u8; ipc::MAX_MESSAGE];
    let mut out = Encoder::with_capacity(ipc::OUTPUT_CHUNK + 8192);
    loop {
        let received = match ipc::recv_msg(fd, &mut buf, false) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(worker = worker_id, "recvmsg on the control socket: {e}");
                exit(1);
            }
        };
        if received.len == 0 {
            // The master is gone (or replaced us): nothing left to do.
            exit(0);
        }
        let msg = &buf[..received.len];
        match msg[0] {
            ipc::MSG_REQUEST => {
                out = serve(fd, worker_id, &msg[1..], received.fd, out);
            }
            // An abort for a request that has already finished.
            ipc::MSG_ABORT => {}
            other => tracing::warn!(worker = worker_id, "unknown message type {other}"),
        }
    }
}

/// Ends the worker without running PHP's or Rust's exit handlers: PHP's
/// shared state (OPcache) belongs to the whole pool, not to this process.
fn exit(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

fn serve(sock: RawFd, worker_id: u64, msg: &[u8], fd: Option<OwnedFd>, out: Encoder) -> Encoder {
    serve_with(sock, worker_id, msg, fd, out, php::execute)
}

/// Decodes one request message and runs it with `run` (the script as a
/// classic request, or the worker script's handler), then answers.
fn serve_with(
    sock: RawFd,
    worker_id: u64,
    msg: &[u8],
    fd: Option<OwnedFd>,
    out: Encoder,
    run: impl FnOnce(&php::Request<'_>, &mut dyn php::Handler) -> php::Outcome,
) -> Encoder {
    let mut d = Decoder::new(msg);
    let req = match decode_request(&mut d) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(worker = worker_id, "bad request message: {e}");
            exit(1);
        }
    };
    let (head, vars, inline) = req;
    let body = if head.flags & ipc::REQ_BODY_FD != 0 {
        match fd {
            Some(fd) => Body::File(File::from(fd), 0),
            None => Body::None,
        }
    } else if head.flags & ipc::REQ_BODY_INLINE != 0 {
        Body::Inline(inline, 0)
    } else {
        Body::None
    };
    let request = php::Request {
        method: head.method,
        request_uri: head.request_uri,
        query_string: head.query_string,
        script_filename: head.script_filename,
        content_type: head.content_type,
        content_length: head.content_length,
        cookie: head.cookie,
        authorization: head.authorization,
        server_vars: vars,
        request_time: head.request_time,
    };
    let mut ex = Exchange::new(sock, head.id, worker_id, head.heartbeat_max, body, out);
    ex.hub = head.flags & ipc::REQ_HUB != 0;
    let outcome = run(&request, &mut ex);
    ex.finish(outcome);
    ex.out
}

struct Head<'a> {
    flags: u8,
    id: u64,
    request_time: f64,
    content_length: i64,
    heartbeat_max: u32,
    method: &'a [u8],
    request_uri: &'a [u8],
    query_string: &'a [u8],
    script_filename: &'a [u8],
    content_type: Option<&'a [u8]>,
    cookie: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
}

type Decoded<'a> = (Head<'a>, Vec<(&'a [u8], &'a [u8])>, &'a [u8]);

fn decode_request<'a>(d: &mut Decoder<'a>) -> Result<Decoded<'a>, ipc::DecodeError> {
    let head = Head {
        flags: d.u8()?,
        id: d.u64()?,
        request_time: d.f64()?,
        content_length: d.i64()?,
        heartbeat_max: d.u32()?,
        method: d.str_nul()?,
        request_uri: d.str_nul()?,
        query_string: d.str_nul()?,
        script_filename: d.str_nul()?,
        content_type: d.opt_str_nul()?,
        cookie: d.opt_str_nul()?,
        authorization: d.opt_str_nul()?,
    };
    let n = d.u32()? as usize;
    let mut vars = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        vars.push((d.str_nul()?, d.str_nul()?));
    }
    Ok((head, vars, d.rest()))
}

enum Body<'a> {
    None,
    Inline(&'a [u8], usize),
    File(File, u64),
}

/// Offset of the flags byte in an output message.
const FLAGS_AT: usize = 1;
/// `MSG_OUTPUT`, flags, request id.
const PREFIX_LEN: usize = 10;

/// One request's conversation with the master, seen from PHP's callbacks.
///
/// Output accumulates in `out`, already laid out as the next `MSG_OUTPUT`
/// message (prefix, then the head while it has not been sent, then body
/// bytes), so sending is one `sendmsg` with no copy. A short response leaves
/// as a single message: head, body, end and done together.
struct Exchange<'a> {
    sock: RawFd,
    id: u64,
    worker_id: u64,
    heartbeat_max: u32,
    body: Body<'a>,
    out: Encoder,
    /// Where the body bytes start in `out`.
    body_at: usize,
    /// Offset of the status in `out` (head flags and header count follow),
    /// while the head is being written or waits to be sent.
    head_at: Option<usize>,
    head_flags: u8,
    header_count: u32,
    status: u16,
    head_done: bool,
    head_sent: bool,
    /// The response is complete for the client (tokio_finish_request()).
    ended: bool,
    aborted: bool,
    last_abort_poll: Option<std::time::Instant>,
    /// The hub is on (`--hub`).
    hub: bool,
    /// What `spindle_subscribe()` recorded, encoded as the hand-off part of
    /// the final output message.
    handoff: Option<Vec<u8>>,
}

/// How often a streaming script checks for a client that went away. A
/// disconnected client is noticed at the first flush after this much time.
const ABORT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

impl<'a> Exchange<'a> {
    fn new(
        sock: RawFd,
        id: u64,
        worker_id: u64,
        heartbeat_max: u32,
        body: Body<'a>,
        out: Encoder,
    ) -> Self {
        let mut ex = Exchange {
            sock,
            id,
            worker_id,
            heartbeat_max,
            body,
            out,
            body_at: PREFIX_LEN,
            head_at: None,
            head_flags: 0,
            header_count: 0,
            status: 200,
            head_done: false,
            head_sent: false,
            ended: false,
            aborted: false,
            last_abort_poll: None,
            hub: false,
            handoff: None,
        };
        ex.reset_out();
        ex
    }

    fn reset_out(&mut self) {
        self.out.truncate(0);
        self.out.u8(ipc::MSG_OUTPUT).u8(0).u64(self.id);
        self.body_at = PREFIX_LEN;
    }

    fn start_head(&mut self) {
        if self.head_at.is_none() && !self.head_sent {
            let status_at = self.out.len();
            self.out.u16(0).u8(0).u32(0);
            self.head_at = Some(status_at);
            self.body_at = self.out.len();
        }
    }

    fn patch_head(&mut self) {
        if let Some(at) = self.head_at {
            let status = self.status.to_le_bytes();
            let count = self.header_count.to_le_bytes();
            let flags = self.head_flags;
            let buf = self.out.as_mut_slice();
            buf[at..at + 2].copy_from_slice(&status);
            buf[at + 2] = flags;
            buf[at + 3..at + 7].copy_from_slice(&count);
        }
    }

    /// Sends what `out` holds with `flags` (plus OUT_HEAD when the head goes
    /// with it), then starts the next message.
    fn send(&mut self, mut flags: u8) {
        if self.head_at.is_some() {
            self.patch_head();
            flags |= ipc::OUT_HEAD;
        }
        self.out.as_mut_slice()[FLAGS_AT] = flags;
        if let Err(e) = ipc::send_msg(self.sock, &[self.out.as_slice()], None, false) {
            // The master is gone; there is nobody to answer.
            tracing::error!(worker = self.worker_id, "sendmsg to the master: {e}");
            exit(1);
        }
        if self.head_at.take().is_some() {
            self.head_sent = true;
        }
        self.reset_out();
    }

    fn body_len(&self) -> usize {
        self.out.len() - self.body_at
    }

    /// Reads an abort the master may have sent, without waiting. At most
    /// once per [`ABORT_POLL_INTERVAL`]: a script flushing tiny events in a
    /// tight loop would otherwise pay a second syscall per flush (measured:
    /// events/s went from 0.44x to 0.50x of php-fpm + nginx).
    fn poll_abort(&mut self) {
        let now = std::time::Instant::now();
        if self
            .last_abort_poll
            .is_some_and(|t| now.duration_since(t) < ABORT_POLL_INTERVAL)
        {
            return;
        }
        self.last_abort_poll = Some(now);
        let mut small = [0u8; 64];
        loop {
            match ipc::recv_msg(self.sock, &mut small, true) {
                Ok(r) if r.len == 0 => exit(0),
                Ok(r) => {
                    let mut d = Decoder::new(&small[..r.len]);
                    if d.u8() == Ok(ipc::MSG_ABORT) && d.u64() == Ok(self.id) {
                        self.aborted = true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::error!(
                        worker = self.worker_id,
                        "recvmsg on the control socket: {e}"
                    );
                    exit(1);
                }
            }
        }
    }

    /// After the script: send the rest, mark the worker idle.
    fn finish(&mut self, outcome: php::Outcome) {
        if outcome.startup_failed && !self.head_sent && !self.head_done {
            tracing::error!(
                worker = self.worker_id,
                request = self.id,
                "PHP could not start the request"
            );
            self.start_head();
            self.status = 500;
            self.push_header(b"Content-Type: text/plain; charset=utf-8");
            self.out.raw(b"PHP could not start the request\n");
            self.head_done = true;
        }
        if outcome.fatal && !self.head_sent && self.status == 200 {
            // PHP answers a fatal error with 500 only when display_errors is
            // off and nothing was output; nothing has left this process yet,
            // so the client still gets the truth.
            self.status = 500;
        }
        if !self.head_done && !self.head_sent && !self.ended {
            // No headers were ever sent (cannot normally happen: PHP sends
            // them at request shutdown at the latest).
            self.start_head();
            self.head_done = true;
        }
        let mut flags = ipc::OUT_DONE;
        if !self.ended {
            flags |= ipc::OUT_END;
        }
        // A script that died after spindle_subscribe() answers its error,
        // not a stream; a client that left needs neither.
        if let Some(h) = self.handoff.take() {
            if !outcome.fatal && !self.ended && !self.aborted {
                self.insert_handoff(&h);
                flags |= ipc::OUT_HANDOFF;
            }
        }
        self.send(flags);
    }

    fn push_header(&mut self, line: &[u8]) {
        self.out.str(line);
        self.header_count += 1;
        self.body_at = self.out.len();
    }
}

impl php::Handler for Exchange<'_> {
    fn write(&mut self, mut data: &[u8]) -> bool {
        if self.aborted {
            return false;
        }
        if self.ended {
            return true;
        }
        while !data.is_empty() {
            let room = ipc::OUTPUT_CHUNK.saturating_sub(self.body_len());
            if room == 0 {
                self.send(0);
                self.poll_abort();
                if self.aborted {
                    return false;
                }
                continue;
            }
            let n = room.min(data.len());
            self.out.raw(&data[..n]);
            data = &data[n..];
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.ended {
            return !self.aborted;
        }
        if self.head_at.is_some() || self.body_len() > 0 {
            self.send(0);
        }
        self.poll_abort();
        !self.aborted
    }

    fn header(&mut self, line: &[u8]) {
        if self.head_sent || self.ended {
            return;
        }
        self.start_head();
        self.push_header(line);
    }

    fn headers_done(&mut self, status: u16, default_content_type: bool) {
        if self.head_sent || self.ended {
            return;
        }
        self.start_head();
        self.status = status;
        if default_content_type {
            self.head_flags |= ipc::HEAD_DEFAULT_CONTENT_TYPE;
        }
        self.head_done = true;
    }

    fn read_body(&mut self, buf: &mut [u8]) -> usize {
        match &mut self.body {
            Body::None => 0,
            Body::Inline(data, pos) => {
                let n = buf.len().min(data.len() - *pos);
                buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                *pos += n;
                n
            }
            Body::File(file, pos) => loop {
                match file.read_at(buf, *pos) {
                    Ok(n) => {
                        *pos += n as u64;
                        break n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!(
                            worker = self.worker_id,
                            request = self.id,
                            "reading the request body: {e}"
                        );
                        break 0;
                    }
                }
            },
        }
    }

    fn log(&mut self, msg: &[u8], level: i32) {
        let msg = String::from_utf8_lossy(msg);
        let (worker, request) = (self.worker_id, self.id);
        match level {
            0..=3 => tracing::error!(target: "php", worker, request, "{msg}"),
            4 => tracing::warn!(target: "php", worker, request, "{msg}"),
            5 | 6 => tracing::info!(target: "php", worker, request, "{msg}"),
            _ => tracing::debug!(target: "php", worker, request, "{msg}"),
        }
    }

    fn heartbeat(&mut self, secs: i64) -> bool {
        if self.heartbeat_max == 0 || secs <= 0 || secs > i64::from(self.heartbeat_max) {
            return false;
        }
        let mut m = Encoder::with_capacity(16);
        m.u8(ipc::MSG_HEARTBEAT).u64(self.id).u32(secs as u32);
        if let Err(e) = ipc::send_msg(self.sock, &[m.as_slice()], None, false) {
            tracing::error!(worker = self.worker_id, "sendmsg to the master: {e}");
            exit(1);
        }
        true
    }

    fn finish_request(&mut self) -> bool {
        if self.ended {
            return false;
        }
        if !self.head_done && !self.head_sent {
            self.start_head();
            self.head_done = true;
        }
        self.send(ipc::OUT_END);
        self.ended = true;
        true
    }

    fn request_id(&self) -> u64 {
        self.id
    }

    fn worker_id(&self) -> u64 {
        self.worker_id
    }

    fn publish(&mut self, u: &php::Update<'_>) -> Result<String, String> {
        self.publish_update(u)
    }

    fn subscribe(&mut self, h: &php::Handoff<'_>) -> Result<(), String> {
        self.record_handoff(h)
    }
}
