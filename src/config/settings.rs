//! What the server runs with, checked and resolved from the flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{bad, ConfigError, Listen, ServeArgs, Symlinks, TrustedProxy, DEFAULT_PHP_INI};

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Canonical, absolute.
    pub docroot: PathBuf,
    pub listen: Listen,
    pub workers: usize,
    pub threads: usize,
    pub php: PhpSettings,
    /// What classic requests for paths that are not files run (`--front-controller`).
    pub front_controller: Option<FrontController>,
    /// Worker mode: which PHP requests go to the worker script.
    pub worker_route: Option<WorkerRoute>,
    pub max_body_size: u64,
    pub body_timeout: Option<Duration>,
    pub max_body_memory: u64,
    /// Canonical, absolute; a writable directory.
    pub body_spool_dir: PathBuf,
    pub static_cache_size: u64,
    pub max_header_size: usize,
    pub request_timeout: Option<Duration>,
    pub max_heartbeat: u32,
    pub sse_keepalive: Option<Duration>,
    pub queue_size: usize,
    pub max_requests: Option<u64>,
    pub max_worker_rss: Option<u64>,
    /// `None`: all but one worker of each kind (at least one).
    pub max_streaming_workers: Option<usize>,
    pub queue_timeout: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub admin_listen: Option<SocketAddr>,
    pub access_log: bool,
    /// TLS on the listener, when --tls-cert and --tls-key are given.
    pub tls: Option<crate::http::tls::TlsFiles>,
    /// Certificates over ACME, when --acme-domain is given.
    pub acme: Option<crate::http::acme::AcmeConfig>,
    pub redirect_http: Option<SocketAddr>,
    /// The hub's settings, when `--hub` is on.
    pub hub: Option<crate::hub::HubConfig>,
    pub pid_file: Option<PathBuf>,
    pub trusted_proxies: Vec<TrustedProxy>,
    pub socket_mode: u32,
    pub symlinks: Symlinks,
}

/// How PHP's module layer starts.
#[derive(Debug, Clone)]
pub struct PhpSettings {
    pub ini_path: Option<PathBuf>,
    pub defines: Vec<(String, String)>,
    /// The user workers run as.
    pub user: Option<String>,
    /// Worker mode's script (`--worker`), absolute.
    pub worker: Option<PathBuf>,
}

/// Worker mode's routing: which PHP requests the worker script serves, and
/// how many processes run it.
#[derive(Debug, Clone)]
pub struct WorkerRoute {
    /// What a path that is not a file runs when it goes to the worker script:
    /// `--front-controller`, else the worker script itself.
    pub front: FrontController,
    /// `--worker-match`: the paths whose PHP requests go to the worker
    /// script; `None`: all of them.
    pub matcher: Option<globset::GlobSet>,
    /// Processes that run the worker script; the other `workers` are classic.
    pub processes: usize,
}

impl WorkerRoute {
    /// Whether PHP requests for `raw_path` (as received, percent-encoded)
    /// go to the worker script. Matched decoded, so `/%61pi/x` is `/api/x`.
    pub fn takes(&self, raw_path: &str) -> bool {
        self.matcher.as_ref().is_none_or(|m| {
            let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
            m.is_match(decoded.as_ref())
        })
    }
}

/// The script that answers every path that is not a file.
#[derive(Debug, Clone)]
pub struct FrontController {
    /// Absolute path of the script.
    pub filename: PathBuf,
    /// Its URL path, as SCRIPT_NAME: `/index.php`.
    pub script_name: String,
}

impl ServeArgs {
    /// Checks and resolves the arguments.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let given = self.docroot.as_ref().ok_or_else(|| {
            bad(
                "document root",
                "missing: give it as an argument or as `docroot` in --config",
            )
        })?;
        let docroot = given
            .canonicalize()
            .map_err(|e| bad("document root", format!("{}: {e}", given.display())))?;
        if !docroot.is_dir() {
            return Err(bad(
                "document root",
                format!("{} is not a directory", docroot.display()),
            ));
        }
        let workers = match self.workers {
            Some(0) => return Err(bad("--workers", "must be at least 1")),
            Some(n) if n > 1024 => return Err(bad("--workers", format!("{n} is more than 1024"))),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(if self.worker_match.is_empty() { 1 } else { 2 }),
        };
        if let Some(name) = &self.user {
            match nix::unistd::User::from_name(name) {
                Ok(Some(_)) => {}
                _ => return Err(bad("--user", format!("{name}: no such user"))),
            }
            if !nix::unistd::geteuid().is_root() {
                return Err(bad("--user", "only works when spindle starts as root"));
            }
        }
        let threads = match self.threads {
            Some(0) => return Err(bad("--threads", "must be at least 1")),
            Some(n) if n > 256 => return Err(bad("--threads", format!("{n} is more than 256"))),
            Some(n) => n,
            None => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                // A hub fanning updates out on one thread answers each
                // subscriber once per update; with two, intake and fan-out
                // overlap and subscribers find several updates per write:
                // 3.4x the deliveries/s for the same CPU
                // (docs/benchmarks.md), for ~5% of hello.php's req/s; on
                // one CPU too (that was measured on one).
                let floor = if self.hub { 2 } else { 1 };
                cpus.div_ceil(4).max(floor)
            }
        };
        let ini_path = resolve_php_ini(self.php_ini.as_deref())?;
        let worker = self
            .worker
            .as_deref()
            .map(|w| resolve_worker(&docroot, w))
            .transpose()?;
        let front_controller = self
            .front_controller
            .as_deref()
            .map(|rel| resolve_front_controller(&docroot, rel, self.symlinks))
            .transpose()?;
        let worker_route =
            self.resolve_worker_route(&docroot, worker.as_deref(), &front_controller, workers)?;
        if self.max_header_size < 8192 {
            return Err(bad("--max-header-size", "must be at least 8K"));
        }
        if self.queue_size == 0 {
            return Err(bad("--queue-size", "must be at least 1"));
        }
        let max_streaming_workers = match self.max_streaming_workers {
            Some(0) => return Err(bad("--max-streaming-workers", "must be at least 1")),
            n => n,
        };
        let body_spool_dir = resolve_spool_dir(self.body_spool_dir.as_deref())?;
        let max_heartbeat =
            u32::try_from(self.max_heartbeat).map_err(|_| bad("--max-heartbeat", "too large"))?;
        Ok(Settings {
            docroot,
            listen: self.listen.clone(),
            workers,
            threads,
            php: PhpSettings {
                ini_path,
                defines: self.define.clone(),
                user: self.user.clone(),
                worker,
            },
            front_controller,
            worker_route,
            max_body_size: self.max_body_size,
            body_timeout: (self.body_timeout > 0).then(|| Duration::from_secs(self.body_timeout)),
            max_body_memory: self.max_body_memory,
            body_spool_dir,
            static_cache_size: self.static_cache_size,
            max_header_size: self.max_header_size.min(1 << 30) as usize,
            request_timeout: (self.request_timeout > 0)
                .then(|| Duration::from_secs(self.request_timeout)),
            max_heartbeat,
            sse_keepalive: (self.sse_keepalive > 0)
                .then(|| Duration::from_secs(self.sse_keepalive)),
            queue_size: self.queue_size,
            max_requests: (self.max_requests > 0).then_some(self.max_requests),
            max_worker_rss: self.max_worker_rss.filter(|n| *n > 0),
            max_streaming_workers,
            queue_timeout: (self.queue_timeout > 0)
                .then(|| Duration::from_secs(self.queue_timeout)),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            admin_listen: self.admin_listen,
            access_log: self.access_log,
            hub: self.resolve_hub()?,
            tls: self.resolve_tls()?,
            acme: self.resolve_acme()?,
            redirect_http: self.redirect_http,
            pid_file: self.pid_file.clone(),
            trusted_proxies: self.trusted_proxy.clone(),
            socket_mode: self.socket_mode,
            symlinks: self.symlinks,
        })
    }
}

impl ServeArgs {
    /// Worker mode's routing: `--worker-match` and `--worker-processes`.
    fn resolve_worker_route(
        &self,
        docroot: &Path,
        worker: Option<&Path>,
        front_controller: &Option<FrontController>,
        workers: usize,
    ) -> Result<Option<WorkerRoute>, ConfigError> {
        let Some(script) = worker else {
            if !self.worker_match.is_empty() {
                return Err(bad("--worker-match", "needs --worker"));
            }
            if self.worker_processes.is_some() {
                return Err(bad(
                    "--worker-processes",
                    "needs --worker and --worker-match",
                ));
            }
            return Ok(None);
        };
        // Worker mode is front-controller style: a path that is not a file
        // goes to the worker script too, unless --front-controller is given.
        let front = front_controller.clone().unwrap_or_else(|| FrontController {
            filename: script.to_path_buf(),
            script_name: match script.strip_prefix(docroot) {
                Ok(rel) => format!("/{}", rel.to_string_lossy()),
                Err(_) => format!(
                    "/{}",
                    script.file_name().unwrap_or_default().to_string_lossy()
                ),
            },
        });
        if self.worker_match.is_empty() {
            if self.worker_processes.is_some() {
                return Err(bad(
                    "--worker-processes",
                    "only with --worker-match: without it every worker runs the worker script",
                ));
            }
            return Ok(Some(WorkerRoute {
                front,
                matcher: None,
                processes: workers,
            }));
        }
        if workers < 2 {
            return Err(bad(
                "--workers",
                "--worker-match needs at least 2: one runs the worker script, one classic requests",
            ));
        }
        let mut set = globset::GlobSetBuilder::new();
        for pattern in &self.worker_match {
            if !pattern.starts_with('/') && !pattern.starts_with('*') {
                return Err(bad(
                    "--worker-match",
                    format!("{pattern}: a path pattern starts with / (or *)"),
                ));
            }
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| bad("--worker-match", format!("{pattern}: {}", e.kind())))?;
            set.add(glob);
        }
        let matcher = set
            .build()
            .map_err(|e| bad("--worker-match", e.to_string()))?;
        let processes = match self.worker_processes {
            None => workers.div_ceil(2),
            Some(n) if n >= 1 && n < workers => n,
            Some(n) => {
                return Err(bad(
                    "--worker-processes",
                    format!(
                        "{n}: must be between 1 and {} (--workers minus one, for classic requests)",
                        workers - 1
                    ),
                ))
            }
        };
        Ok(Some(WorkerRoute {
            front,
            matcher: Some(matcher),
            processes,
        }))
    }
}

/// The php.ini PHP reads: `--php-ini` (which must exist), else Debian's embed
/// php.ini when present, else none (PHP's built-in defaults).
pub fn resolve_php_ini(given: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match given {
        Some(p) if p.is_dir() => Err(bad(
            "--php-ini",
            format!("{} is a directory; give the php.ini file", p.display()),
        )),
        Some(p) if !p.is_file() => Err(bad("--php-ini", format!("{}: no such file", p.display()))),
        Some(p) => Ok(Some(p.to_path_buf())),
        None => Ok(Some(PathBuf::from(DEFAULT_PHP_INI)).filter(|p| p.is_file())),
    }
}

/// The spool directory, checked by creating (and at once dropping) an
/// unnamed file in it, so a read-only or missing directory stops startup
/// instead of failing uploads later.
fn resolve_spool_dir(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let dir = given.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let dir = dir
        .canonicalize()
        .map_err(|e| bad("--body-spool-dir", format!("{}: {e}", dir.display())))?;
    tempfile::tempfile_in(&dir)
        .map_err(|e| bad("--body-spool-dir", format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// The worker script: relative to the document root, or absolute; it need
/// not be inside the document root (Laravel's and Symfony's are not).
fn resolve_worker(docroot: &Path, given: &Path) -> Result<PathBuf, ConfigError> {
    let path = docroot.join(given);
    let path = path
        .canonicalize()
        .map_err(|e| bad("--worker", format!("{}: {e}", path.display())))?;
    if !path.is_file() {
        return Err(bad("--worker", format!("{} is not a file", path.display())));
    }
    Ok(path)
}

/// The front controller named relative to the document root. `..` may not
/// climb out of it; a symlink is followed as `--symlinks` says, as for the
/// scripts a URL names (Debian's WordPress is served from a directory of
/// links into /usr/share/wordpress, index.php included). SCRIPT_NAME is the
/// name given, not the link's target.
fn resolve_front_controller(
    docroot: &Path,
    rel: &Path,
    symlinks: Symlinks,
) -> Result<FrontController, ConfigError> {
    let rel_str = rel.to_string_lossy();
    let trimmed = rel_str.trim_start_matches('/');
    let filename = docroot.join(trimmed).canonicalize().map_err(|e| {
        bad(
            "--front-controller",
            format!("{}: {e}", docroot.join(trimmed).display()),
        )
    })?;
    let mut script_name = String::new();
    let mut inside = true;
    for c in Path::new(trimmed).components() {
        match c {
            std::path::Component::Normal(s) => {
                script_name.push('/');
                script_name.push_str(&s.to_string_lossy());
            }
            std::path::Component::CurDir => {}
            _ => inside = false,
        }
    }
    if symlinks == Symlinks::Inside && !filename.starts_with(docroot) {
        inside = false;
    }
    if !inside || !filename.is_file() {
        return Err(bad(
            "--front-controller",
            format!("{rel_str} must be a file inside the document root"),
        ));
    }
    Ok(FrontController {
        filename,
        script_name,
    })
}
