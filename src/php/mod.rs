//! Safe Rust over the C SAPI module in `ext/`. All FFI `unsafe` of the
//! project lives here.
//!
//! PHP is non-thread-safe (Debian's NTS build): [`startup`] runs once in a
//! single-threaded process, and [`execute`] only ever runs on the thread that
//! started PHP, in a worker process.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[allow(non_camel_case_types, non_upper_case_globals, dead_code)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/spindle_sys.rs"));
}

/// PHP's module startup failed (bad php.ini, an extension that would not load).
#[derive(Debug)]
pub struct StartupError {
    detail: String,
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PHP module startup failed: {}", self.detail)
    }
}

impl std::error::Error for StartupError {}

/// Starts PHP's module layer: php.ini from `ini_path` (PHP's own search when
/// `None`), then `defines` as `-d key=value` overrides, extensions, OPcache.
///
/// Call once, before any thread exists, in the process that forks workers.
pub fn startup(ini_path: Option<&Path>, defines: &[(String, String)]) -> Result<(), StartupError> {
    // PHP skips a php.ini it cannot open without a word and starts with its
    // defaults; a reload after the file was replaced by a directory or made
    // unreadable would then quietly drop the site's settings.
    if let Some(p) = ini_path {
        let readable = std::fs::File::open(p).and_then(|f| f.metadata());
        match readable {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(StartupError {
                    detail: format!("php.ini {}: not a regular file", p.display()),
                })
            }
            Err(e) => {
                return Err(StartupError {
                    detail: format!("php.ini {}: {e}", p.display()),
                })
            }
        }
    }
    let ini_path = ini_path
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .transpose()
        .map_err(|_| StartupError {
            detail: "php.ini path contains a NUL byte".into(),
        })?;
    let mut entries = String::new();
    for (k, v) in defines {
        entries.push_str(k);
        entries.push('=');
        entries.push_str(v);
        entries.push('\n');
    }
    let entries = CString::new(entries).map_err(|_| StartupError {
        detail: "a -d value contains a NUL byte".into(),
    })?;
    // SAFETY: both pointers are valid C strings for the call (C copies what it
    // keeps); the caller guarantees we are single-threaded and that startup
    // runs once.
    let rc = unsafe {
        sys::spindle_php_startup(
            ini_path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            entries.as_ptr(),
        )
    };
    if rc != 0 {
        // SAFETY: NULL or a pointer to a static NUL-terminated buffer in
        // ext/, written only during the startup call that just returned.
        let known = unsafe { sys::spindle_php_startup_error() };
        let detail = if known.is_null() {
            "see the messages above".into()
        } else {
            // SAFETY: checked non-NULL above; NUL-terminated by snprintf.
            let msg = unsafe { CStr::from_ptr(known) };
            msg.to_string_lossy().trim_end().to_string()
        };
        return Err(StartupError { detail });
    }
    Ok(())
}

/// Makes phpinfo() print plain text. Call before [`startup`].
pub fn set_phpinfo_as_text() {
    // SAFETY: sets one int field of the static module struct; called before
    // startup, single-threaded.
    unsafe { sys::spindle_set_phpinfo_as_text(1) }
}

/// The SAPI name PHP reports (`PHP_SAPI`).
pub fn sapi_name() -> &'static str {
    // SAFETY: returns a pointer to a static NUL-terminated array in ext/.
    unsafe { CStr::from_ptr(sys::spindle_sapi_name()) }
        .to_str()
        .unwrap_or("fpm-fcgi")
}

/// What PHP calls back into while a request runs.
pub trait Handler {
    /// Script output. `false` when the client is gone.
    fn write(&mut self, data: &[u8]) -> bool;
    /// `flush()`: pass what was written to the client now. `false` when the
    /// client is gone.
    fn flush(&mut self) -> bool;
    /// A response header line, `Name: value`.
    fn header(&mut self, line: &[u8]);
    /// The header list is complete; `status` is the response status;
    /// `default_content_type` when the script set no Content-Type.
    fn headers_done(&mut self, status: u16, default_content_type: bool);
    /// Fills `buf` with request body bytes; 0 at the end.
    fn read_body(&mut self, buf: &mut [u8]) -> usize;
    /// A line for the server log; `level` is a syslog priority.
    fn log(&mut self, msg: &[u8], level: i32);
    /// `tokio_request_heartbeat($secs)`.
    fn heartbeat(&mut self, secs: i64) -> bool;
    /// `tokio_finish_request()`.
    fn finish_request(&mut self) -> bool;
    fn request_id(&self) -> u64;
    fn worker_id(&self) -> u64;
    /// `spindle_publish()`: the update's id, or why it was refused.
    fn publish(&mut self, update: &Update<'_>) -> Result<String, String> {
        let _ = update;
        Err("the hub is only reachable from requests".into())
    }
    /// `spindle_subscribe()`: records the hand-off for the end of the
    /// script, or says why it cannot be.
    fn subscribe(&mut self, handoff: &Handoff<'_>) -> Result<(), String> {
        let _ = handoff;
        Err("the hub is only reachable from requests".into())
    }
    /// Worker mode, `spindle_handle_request()`: waits for the next request
    /// and serves it with `runner`. `false` when the worker must stop.
    fn next_request(&mut self, runner: &mut Runner) -> bool {
        let _ = runner;
        false
    }
}

/// An update from `spindle_publish()`, borrowed from PHP.
#[derive(Debug)]
pub struct Update<'a> {
    pub topics: Vec<&'a [u8]>,
    pub data: &'a [u8],
    pub private: bool,
    pub id: Option<&'a [u8]>,
    pub event_type: Option<&'a [u8]>,
    pub retry: Option<i64>,
}

/// A hand-off from `spindle_subscribe()`, borrowed from PHP.
#[derive(Debug)]
pub struct Handoff<'a> {
    pub topics: Vec<&'a [u8]>,
    pub private: Vec<&'a [u8]>,
    /// The option, else the request's Last-Event-ID header.
    pub last_event_id: Option<&'a [u8]>,
    pub retry: Option<i64>,
}

/// A request as PHP sees it. Every string includes its trailing NUL.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub request_uri: &'a [u8],
    pub query_string: &'a [u8],
    pub script_filename: &'a [u8],
    pub content_type: Option<&'a [u8]>,
    pub content_length: i64,
    pub cookie: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub server_vars: Vec<(&'a [u8], &'a [u8])>,
    pub request_time: f64,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// A fatal error (or uncaught exception) ended the script.
    pub fatal: bool,
    /// PHP could not start the request; nothing ran.
    pub startup_failed: bool,
}

fn c_str(s: &[u8]) -> sys::spindle_str {
    debug_assert_eq!(s.last(), Some(&0), "strings passed to PHP carry their NUL");
    sys::spindle_str {
        ptr: s.as_ptr().cast(),
        len: s.len().saturating_sub(1),
    }
}

fn opt_c_str(s: Option<&[u8]>) -> sys::spindle_str {
    s.map_or(
        sys::spindle_str {
            ptr: std::ptr::null(),
            len: 0,
        },
        c_str,
    )
}

/// Runs one request to its end, shutdown functions included, calling back
/// into `handler`. Must run on the thread that called [`startup`].
pub fn execute(req: &Request<'_>, handler: &mut dyn Handler) -> Outcome {
    with_c_request(req, handler, |creq, callbacks| {
        // SAFETY: `creq` and `callbacks` (and everything they point to)
        // outlive the call; the callbacks are removed before they go out of
        // scope. PHP runs on this thread only (NTS).
        unsafe {
            sys::spindle_set_callbacks(callbacks);
            let rc = sys::spindle_execute(creq);
            sys::spindle_set_callbacks(std::ptr::null());
            rc
        }
    })
}

/// Worker mode: runs the worker script `boot.script_filename` until it
/// ends; each `spindle_handle_request()` it calls reaches
/// [`Handler::next_request`] of `handler`, which serves one request through
/// the [`Runner`] it is given. Must run on the thread that called [`startup`].
pub fn execute_worker(boot: &Request<'_>, handler: &mut dyn Handler) -> Outcome {
    with_c_request(boot, handler, |creq, callbacks| {
        // SAFETY: as in `execute`.
        unsafe {
            sys::spindle_set_callbacks(callbacks);
            let rc = sys::spindle_execute_worker(creq);
            sys::spindle_set_callbacks(std::ptr::null());
            rc
        }
    })
}

/// Runs one request inside the worker script, for [`Handler::next_request`].
pub struct Runner {
    run: unsafe extern "C" fn(
        *mut c_void,
        *const sys::spindle_request,
        *const sys::spindle_callbacks,
    ) -> c_int,
    arg: *mut c_void,
    used: bool,
}

impl Runner {
    /// Runs the worker script's handler for `req`, calling back into
    /// `handler` for it. Once per `spindle_handle_request()` call: a second
    /// call does nothing and reports a failed startup.
    pub fn run(&mut self, req: &Request<'_>, handler: &mut dyn Handler) -> Outcome {
        if std::mem::replace(&mut self.used, true) {
            return Outcome {
                fatal: false,
                startup_failed: true,
            };
        }
        let (run, arg) = (self.run, self.arg);
        with_c_request(req, handler, |creq, callbacks| {
            // `run` and `arg` are what ext/spindle.c gave next_request for
            // this call, which has not returned; C restores the worker
            // script's callbacks before returning.
            // SAFETY: valid C function and argument for this call; `creq` and `callbacks` outlive it; PHP's own thread.
            unsafe { run(arg, creq, callbacks) }
        })
    }
}

/// Lays `req` and `handler` out as the C structs of spindle.h for `f`.
fn with_c_request(
    req: &Request<'_>,
    handler: &mut dyn Handler,
    f: impl FnOnce(&sys::spindle_request, &sys::spindle_callbacks) -> c_int,
) -> Outcome {
    for s in [
        req.method,
        req.request_uri,
        req.query_string,
        req.script_filename,
    ] {
        assert_eq!(s.last(), Some(&0), "request strings must be NUL-terminated");
    }
    let vars: Vec<sys::spindle_kv> = req
        .server_vars
        .iter()
        .map(|(k, v)| sys::spindle_kv {
            key: c_str(k),
            value: c_str(v),
        })
        .collect();
    let creq = sys::spindle_request {
        method: c_str(req.method),
        request_uri: c_str(req.request_uri),
        query_string: c_str(req.query_string),
        script_filename: c_str(req.script_filename),
        content_type: opt_c_str(req.content_type),
        content_length: req.content_length,
        cookie: opt_c_str(req.cookie),
        authorization: opt_c_str(req.authorization),
        server_vars: vars.as_ptr(),
        server_vars_len: vars.len(),
        request_time: req.request_time,
    };
    // A thin pointer to the fat `&mut dyn Handler`, which C carries as `ctx`.
    let mut handler_ref: &mut dyn Handler = handler;
    let callbacks = sys::spindle_callbacks {
        ctx: (&mut handler_ref as *mut &mut dyn Handler).cast(),
        write: Some(cb_write),
        flush: Some(cb_flush),
        header: Some(cb_header),
        headers_done: Some(cb_headers_done),
        read_body: Some(cb_read_body),
        log: Some(cb_log),
        heartbeat: Some(cb_heartbeat),
        finish_request: Some(cb_finish_request),
        request_id: Some(cb_request_id),
        worker_id: Some(cb_worker_id),
        publish: Some(cb_publish),
        subscribe: Some(cb_subscribe),
        next_request: Some(cb_next_request),
    };
    let rc = f(&creq, &callbacks) as u32;
    Outcome {
        fatal: rc & sys::SPINDLE_EXEC_FATAL != 0,
        startup_failed: rc & sys::SPINDLE_EXEC_STARTUP_FAILED != 0,
    }
}

extern "C" fn cb_next_request(
    ctx: *mut c_void,
    run: sys::spindle_run_fn,
    arg: *mut c_void,
) -> c_int {
    let Some(run) = run else { return 0 };
    let mut runner = Runner {
        run,
        arg,
        used: false,
    };
    with_handler(ctx, |h| h.next_request(&mut runner)) as c_int
}

/// Runs `f` on the handler behind `ctx`; a panic must not unwind into C, so
/// it ends the worker process (the master answers 502 and replaces it).
fn with_handler<R>(ctx: *mut c_void, f: impl FnOnce(&mut dyn Handler) -> R) -> R {
    // `ctx` is the `&mut &mut dyn Handler` that `with_c_request` installed
    // for this thread, alive for the whole of its C call; C calls back only
    // from within it, never re-entrantly on the same handler (worker mode
    // nests a request's handler inside the worker script's `next_request`:
    // a different handler).
    // SAFETY: a live, unaliased `&mut dyn Handler` for the duration of this callback.
    let handler: &mut &mut dyn Handler = unsafe { &mut *ctx.cast::<&mut dyn Handler>() };
    match catch_unwind(AssertUnwindSafe(|| f(&mut **handler))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("panic in a PHP callback; ending this worker");
            std::process::abort();
        }
    }
}

/// # Safety
/// `buf` must point to `len` readable bytes (or be anything when `len` is 0).
unsafe fn bytes<'a>(buf: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 || buf.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(buf.cast(), len) }
    }
}

extern "C" fn cb_write(ctx: *mut c_void, buf: *const c_char, len: usize) -> c_int {
    // SAFETY: PHP passes its output buffer and its length.
    let data = unsafe { bytes(buf, len) };
    with_handler(ctx, |h| h.write(data)) as c_int
}

extern "C" fn cb_flush(ctx: *mut c_void) -> c_int {
    with_handler(ctx, |h| h.flush()) as c_int
}

extern "C" fn cb_header(ctx: *mut c_void, line: *const c_char, len: usize) {
    // SAFETY: a header line stored by PHP, with its length.
    let line = unsafe { bytes(line, len) };
    with_handler(ctx, |h| h.header(line))
}

extern "C" fn cb_headers_done(ctx: *mut c_void, status: c_int, default_content_type: c_int) {
    let status = u16::try_from(status).unwrap_or(500);
    with_handler(ctx, |h| h.headers_done(status, default_content_type != 0))
}

extern "C" fn cb_read_body(ctx: *mut c_void, buf: *mut c_char, len: usize) -> usize {
    if len == 0 || buf.is_null() {
        return 0;
    }
    // SAFETY: PHP hands us a writable buffer of `len` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    with_handler(ctx, |h| h.read_body(buf))
}

extern "C" fn cb_log(ctx: *mut c_void, msg: *const c_char, len: usize, level: c_int) {
    // SAFETY: PHP's message and its length.
    let msg = unsafe { bytes(msg, len) };
    with_handler(ctx, |h| h.log(msg, level))
}

extern "C" fn cb_heartbeat(ctx: *mut c_void, secs: i64) -> c_int {
    with_handler(ctx, |h| h.heartbeat(secs)) as c_int
}

extern "C" fn cb_finish_request(ctx: *mut c_void) -> c_int {
    with_handler(ctx, |h| h.finish_request()) as c_int
}

extern "C" fn cb_request_id(ctx: *mut c_void) -> u64 {
    with_handler(ctx, |h| h.request_id())
}

extern "C" fn cb_worker_id(ctx: *mut c_void) -> u64 {
    with_handler(ctx, |h| h.worker_id())
}

thread_local! {
    /// The id or reason the last publish/subscribe returned to C, kept
    /// alive until the next one (C copies it at once).
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hands `text` to C through `out`, keeping the bytes in [`RESULT`].
///
/// # Safety
/// `out` must be valid for a write.
unsafe fn give_result(text: &str, out: *mut sys::spindle_str) {
    RESULT.with(|r| {
        let mut r = r.borrow_mut();
        r.clear();
        r.extend_from_slice(text.as_bytes());
        // SAFETY: guaranteed by the caller; the pointer stays valid until
        // RESULT is next written, which the contract in spindle.h allows.
        unsafe {
            *out = sys::spindle_str {
                ptr: r.as_ptr().cast(),
                len: r.len(),
            }
        };
    });
}

/// # Safety
/// `s.ptr` must be NULL or point to `s.len` readable bytes.
unsafe fn opt_bytes<'a>(s: &sys::spindle_str) -> Option<&'a [u8]> {
    if s.ptr.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { bytes(s.ptr, s.len) })
    }
}

/// # Safety
/// `l.ptr` must point to `l.len` strings, each valid as for [`bytes`].
unsafe fn list<'a>(l: &sys::spindle_strs) -> Vec<&'a [u8]> {
    if l.ptr.is_null() || l.len == 0 {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    let items = unsafe { std::slice::from_raw_parts(l.ptr, l.len) };
    // SAFETY: each item is a PHP string, valid for the call.
    items
        .iter()
        .map(|s| unsafe { bytes(s.ptr, s.len) })
        .collect()
}

extern "C" fn cb_publish(
    ctx: *mut c_void,
    update: *const sys::spindle_update,
    result: *mut sys::spindle_str,
) -> c_int {
    // SAFETY: ext/spindle.c passes a valid update whose strings are PHP's,
    // alive for the whole call, and a valid result slot.
    let u = unsafe { &*update };
    // SAFETY: as above.
    let update = unsafe {
        Update {
            topics: list(&u.topics),
            data: bytes(u.data.ptr, u.data.len),
            private: u.is_private != 0,
            id: opt_bytes(&u.id),
            event_type: opt_bytes(&u.type_),
            retry: (u.has_retry != 0).then_some(u.retry),
        }
    };
    let (ok, text) = match with_handler(ctx, |h| h.publish(&update)) {
        Ok(id) => (1, id),
        Err(why) => (0, why),
    };
    // SAFETY: `result` is valid for a write (see above).
    unsafe { give_result(&text, result) };
    ok
}

extern "C" fn cb_subscribe(
    ctx: *mut c_void,
    handoff: *const sys::spindle_handoff,
    result: *mut sys::spindle_str,
) -> c_int {
    // SAFETY: ext/spindle.c passes a valid hand-off whose strings are
    // PHP's (or the request's), alive for the whole call.
    let h = unsafe { &*handoff };
    // SAFETY: as above.
    let handoff = unsafe {
        Handoff {
            topics: list(&h.topics),
            private: list(&h.private_topics),
            last_event_id: opt_bytes(&h.last_event_id),
            retry: (h.has_retry != 0).then_some(h.retry),
        }
    };
    match with_handler(ctx, |hd| hd.subscribe(&handoff)) {
        Ok(()) => 1,
        Err(why) => {
            // SAFETY: `result` is valid for a write.
            unsafe { give_result(&why, result) };
            0
        }
    }
}
