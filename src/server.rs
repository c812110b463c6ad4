//! Start-up order and the accept loop.
//!
//! 1. Start the zygote (an exec of this binary); it starts PHP.
//! 2. Bind the listener (the zygote never holds it: it is close-on-exec).
//! 3. Ask the zygote for the workers.
//! 4. Start tokio, and serve.

use std::fmt;
use std::io;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixListener};

use crate::config::{Listen, Settings};
use crate::http::{App, ConnInfo, Protocol};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig, Supervisor};
use crate::worker::{WorkerKind, Zygote, ZygoteError};

/// Why the server could not start or stopped with an error.
#[derive(Debug)]
pub struct Error {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<ZygoteError> for Error {
    fn from(e: ZygoteError) -> Self {
        Error::new("cannot start PHP", e)
    }
}

enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
}

fn bind(listen: &Listen, socket_mode: u32) -> Result<Bound, Error> {
    match listen {
        Listen::Tcp(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| Error::new(format!("cannot listen on {addr}"), e))?;
            l.set_nonblocking(true)
                .map_err(|e| Error::new("listener", e))?;
            Ok(Bound::Tcp(l))
        }
        Listen::Unix(path) => {
            // A socket file left by a crashed run would block the bind; one
            // that still answers belongs to a live server and stays.
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(Error::new(
                        format!("cannot listen on unix:{}", path.display()),
                        io::Error::from(io::ErrorKind::AddrInUse),
                    ));
                }
                let _ = std::fs::remove_file(path);
            }
            let l = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| Error::new(format!("cannot listen on unix:{}", path.display()), e))?;
            l.set_nonblocking(true)
                .map_err(|e| Error::new("listener", e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode))
                .map_err(|e| Error::new(format!("cannot chmod {}", path.display()), e))?;
            Ok(Bound::Unix(l, path.clone()))
        }
    }
}

/// Runs the server until SIGINT or SIGTERM; SIGHUP replaces every worker.
pub fn run(settings: Settings) -> Result<(), Error> {
    let zygote = Zygote::start(&settings.php)?;
    let bound = bind(&settings.listen, settings.socket_mode)?;
    let admin = match settings.admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|e| Error::new(format!("cannot listen on {addr} (--admin-listen)"), e))?,
        ),
        None => None,
    };
    let redirect = match settings.redirect_http {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|e| Error::new(format!("cannot listen on {addr} (--redirect-http)"), e))?,
        ),
        None => None,
    };
    // Worker mode: the first `processes` workers run the worker script (all
    // of them without --worker-match), the rest serve classic requests.
    let script_workers = settings.worker_route.as_ref().map_or(0, |w| w.processes);
    let mut workers = Vec::with_capacity(settings.workers);
    for id in 1..=settings.workers as u64 {
        let kind = if id as usize <= script_workers {
            WorkerKind::Script
        } else {
            WorkerKind::Classic
        };
        let (sock, pid) = zygote.spawn_worker(id, kind)?;
        workers.push((sock, pid, kind));
    }

    // One runtime thread is a current_thread runtime: no cross-thread
    // wake-ups at all, which on a 2-core machine cut the master's CPU per
    // hello-world request from ~20 to ~15 µs (docs/architecture.md).
    let mut builder = if settings.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(settings.threads);
        b
    };
    let runtime = builder
        .enable_all()
        .thread_name("spindle")
        .build()
        .map_err(|e| Error::new("cannot start the runtime", e))?;
    // The signal handlers go in before the pid file and the "listening"
    // line exist: a deploy script that sends SIGHUP as soon as it sees
    // either would otherwise kill the master (default action).
    let signals = {
        let _in_runtime = runtime.enter();
        Signals::install().map_err(|e| Error::new("cannot install signal handlers", e))?
    };
    let _pid_file = match &settings.pid_file {
        Some(path) => {
            std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
                Error::new(format!("cannot write --pid-file {}", path.display()), e)
            })?;
            Some(RemoveOnDrop(path.clone()))
        }
        None => None,
    };
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::default());
    let result = runtime.block_on(async move {
        let supervisor = Supervisor::new(zygote, settings.php.clone(), metrics.clone());
        let hub = settings.hub.clone().map(|config| {
            let hub = crate::hub::Hub::new(config);
            let _ = metrics.hub.set(hub.metrics.clone());
            hub.start();
            hub
        });
        let pool = Pool::start(
            supervisor.clone(),
            workers,
            PoolConfig {
                queue_size: settings.queue_size,
                request_timeout: settings.request_timeout,
                sse_keepalive: settings.sse_keepalive,
                max_requests: settings.max_requests,
                max_worker_rss: settings.max_worker_rss,
                max_streaming_workers: settings.max_streaming_workers,
                hub: hub.clone(),
            },
        )
        .map_err(|e| Error::new("cannot register the workers", e))?;
        let app = Arc::new(App::new(settings.clone(), pool.clone(), hub.clone()));
        let certs = match (&settings.tls, &settings.acme) {
            (Some(files), _) => Some(
                crate::http::tls::Certificates::new(files.clone())
                    .map_err(|e| Error::new("TLS", io::Error::other(e)))?,
            ),
            (None, Some(acme)) => {
                let initial = crate::http::acme::initial(acme)
                    .map_err(|e| Error::new("TLS (ACME)", io::Error::other(e)))?;
                let certs = crate::http::tls::Certificates::managed(initial);
                tokio::spawn(crate::http::acme::run(acme.clone(), certs.clone()));
                Some(certs)
            }
            (None, None) => None,
        };
        let tls = match &certs {
            None => None,
            Some(c) => Some(
                crate::http::tls::acceptor(c.clone())
                    .map_err(|e| Error::new("TLS", io::Error::other(e)))?,
            ),
        };
        if let Some(listener) = redirect {
            let https_port = match &bound {
                Bound::Tcp(l) => l.local_addr().map(|a| a.port()).unwrap_or(443),
                Bound::Unix(..) => 443,
            };
            let listener =
                TcpListener::from_std(listener).map_err(|e| Error::new("redirect listener", e))?;
            if let Ok(a) = listener.local_addr() {
                tracing::info!("redirecting http://{a} to HTTPS");
            }
            tokio::spawn(redirect_loop(listener, https_port));
        }
        let local = match &bound {
            Bound::Tcp(l) => l.local_addr().ok().map_or_else(
                || settings.listen.to_string(),
                |a| {
                    let scheme = if settings.tls.is_some() || settings.acme.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    format!("{scheme}://{a}")
                },
            ),
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        };
        let ready = Arc::new(AtomicBool::new(true));
        if let Some(admin) = admin {
            let admin =
                TcpListener::from_std(admin).map_err(|e| Error::new("admin listener", e))?;
            tracing::info!(
                "admin (health, metrics) on http://{}",
                admin
                    .local_addr()
                    .map_err(|e| Error::new("admin listener", e))?
            );
            tokio::spawn(crate::admin::serve(admin, pool.clone(), ready.clone()));
        }
        let Signals { hup, term, int } = signals;
        tokio::spawn(reload_on_sighup(hup, supervisor.clone(), certs.clone()));
        tracing::info!(
            docroot = %settings.docroot.display(),
            workers = settings.workers,
            sapi = crate::php::sapi_name(),
            "listening on {local}"
        );
        let graceful = GracefulShutdown::new();
        tokio::select! {
            r = accept_loop(bound, app, tls, &graceful) => r?,
            _ = shutdown_signal(term, int) => {}
        }
        // Stop accepting (the listener is gone with accept_loop), let
        // in-flight requests finish, close idle keep-alive connections.
        ready.store(false, Ordering::Relaxed);
        supervisor.begin_shutdown();
        if let Some(hub) = &hub {
            hub.close();
        }
        tracing::info!(
            "shutting down: waiting up to {:?} for in-flight requests",
            settings.shutdown_timeout
        );
        let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
        match tokio::time::timeout_at(deadline, graceful.shutdown()).await {
            Ok(()) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!("shutdown timeout reached; ending the remaining requests"),
        }
        // Scripts still running with no client (an ended event stream
        // finishing its shutdown functions, work after
        // tokio_finish_request()) get the rest of the grace period.
        while metrics.busy_workers.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    });
    // Dropping the runtime closes every worker socket; workers and the
    // zygote exit on EOF (and by PR_SET_PDEATHSIG if we crash).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// The signals the master acts on, registered before it says it is ready.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    supervisor: Arc<Supervisor>,
    certs: Option<Arc<crate::http::tls::Certificates>>,
) {
    while hup.recv().await.is_some() {
        if let Some(c) = &certs {
            c.reload();
        }
        tracing::info!("SIGHUP: starting fresh workers (php.ini and code are read again)");
        match supervisor.reload().await {
            Ok(()) => {
                tracing::info!("reload: new PHP started; workers are replaced as they become idle")
            }
            Err(e) => tracing::error!("reload failed, keeping the current workers: {e}"),
        }
    }
}

async fn accept_loop(
    bound: Bound,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    graceful: &GracefulShutdown,
) -> Result<(), Error> {
    match bound {
        Bound::Tcp(l) => {
            let l = TcpListener::from_std(l).map_err(|e| Error::new("listener", e))?;
            loop {
                let (stream, peer) = match l.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = ConnInfo {
                    peer: Some(peer),
                    local: stream.local_addr().ok(),
                    tls: tls.is_some(),
                };
                match &tls {
                    None => spawn_tcp_connection(&app, graceful, stream, conn),
                    Some(acceptor) => spawn_tls_connection(&app, graceful, acceptor, stream, conn),
                }
            }
        }
        Bound::Unix(l, path) => {
            let l = UnixListener::from_std(l).map_err(|e| Error::new("listener", e))?;
            let _cleanup = RemoveOnDrop(path);
            loop {
                let (stream, _) = match l.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let conn = ConnInfo {
                    peer: None,
                    local: None,
                    tls: false,
                };
                spawn_connection(&app, graceful, stream, conn);
            }
        }
    }
}

/// Serves one accepted connection on its own task.
fn spawn_connection<I>(app: &Arc<App>, graceful: &GracefulShutdown, io: I, conn: ConnInfo)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = app.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        app.serve_connection(io, conn, Protocol::Either, watcher)
            .await
    });
}

/// A plain TCP connection: HTTP/1.1, or h2c when it starts with the
/// HTTP/2 preface (peeked, so nothing is consumed).
fn spawn_tcp_connection(
    app: &Arc<App>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    conn: ConnInfo,
) {
    let app = app.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let protocol = crate::http::sniff(&stream).await;
        app.serve_connection(stream, conn, protocol, watcher).await
    });
}

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Does the TLS handshake on its own task, then serves the connection. A
/// failed handshake (garbage, a plain-HTTP client, a timeout) only closes
/// this connection.
fn spawn_tls_connection(
    app: &Arc<App>,
    graceful: &GracefulShutdown,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    conn: ConnInfo,
) {
    let app = app.clone();
    let watcher = graceful.watcher();
    let accept = acceptor.accept(stream);
    tokio::spawn(async move {
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => {
                let protocol = match tls.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Protocol::Http2,
                    _ => Protocol::Http1,
                };
                app.serve_connection(tls, conn, protocol, watcher).await
            }
            Ok(Err(e)) => tracing::debug!(peer = ?conn.peer, "TLS handshake: {e}"),
            Err(_) => tracing::debug!(peer = ?conn.peer, "TLS handshake timed out"),
        }
    });
}

/// `--redirect-http`: every request gets a 308 to the same host and path
/// over HTTPS on `https_port`.
async fn redirect_loop(listener: TcpListener, https_port: u16) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let r = redirect_to_https(&req, https_port);
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn redirect_to_https(
    req: &http::Request<hyper::body::Incoming>,
    https_port: u16,
) -> http::Response<crate::http::Body> {
    use crate::http::body;
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            // Strip the port (IPv6 literals keep their brackets).
            let host = match h.rsplit_once(':') {
                Some((name, port))
                    if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') =>
                {
                    name
                }
                _ => h,
            };
            Some(host.to_string())
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        });
    let Some(host) = host else {
        return body::status(http::StatusCode::BAD_REQUEST);
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let mut r = body::status(http::StatusCode::PERMANENT_REDIRECT);
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// EMFILE and friends: log, back off briefly instead of spinning.
async fn accept_error(e: io::Error) {
    tracing::error!("accept: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
