//! The flags of `spindle serve` and `spindle php-info` (clap parses and
//! type-checks them), and the types and parsers of their values.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Document root: the directory whose .php files run and whose other
    /// files are served as static files (or `docroot` in the config file).
    pub docroot: Option<PathBuf>,

    /// A TOML file of settings: keys are these options' long names
    /// (`workers = 4`, `max-body-size = "128M"`, `define = ["memory_limit=256M"]`).
    /// Environment variables and flags override it.
    #[arg(long, value_name = "FILE", env = "SPINDLE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where to listen: ADDR:PORT (IPv4 or [IPv6]) or unix:/path/to.sock.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SPINDLE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: Listen,

    /// Number of PHP worker processes [default: number of CPUs].
    #[arg(long, value_name = "N", env = "SPINDLE_WORKERS")]
    pub workers: Option<usize>,

    /// Threads of the master's HTTP runtime [default: one per 4 CPUs, at
    /// least 1; with --hub at least 2].
    #[arg(long, value_name = "N", env = "SPINDLE_THREADS")]
    pub threads: Option<usize>,

    /// Run PHP workers as this user (when started as root).
    #[arg(long, value_name = "USER", env = "SPINDLE_USER")]
    pub user: Option<String>,

    /// Set a php.ini entry, KEY=VALUE, as the php CLI's -d (repeatable).
    #[arg(short = 'd', value_name = "KEY=VALUE", value_parser = parse_define)]
    pub define: Vec<(String, String)>,

    /// php.ini to read instead of Debian's embed php.ini
    /// (/etc/php/8.2/embed/php.ini; its conf.d is scanned either way).
    #[arg(long, value_name = "FILE", env = "SPINDLE_PHP_INI")]
    pub php_ini: Option<PathBuf>,

    /// Run this script (relative to the document root) for every path that is
    /// not an existing file, as Laravel and Symfony expect.
    #[arg(long, value_name = "SCRIPT", env = "SPINDLE_FRONT_CONTROLLER")]
    pub front_controller: Option<PathBuf>,

    /// Worker mode: each worker process runs this script (relative to the
    /// document root, or absolute) once; it boots the application and serves
    /// every PHP request in a loop on spindle_handle_request(). Paths that
    /// are not files go to it too, unless --front-controller says otherwise.
    #[arg(long, value_name = "SCRIPT", env = "SPINDLE_WORKER")]
    pub worker: Option<PathBuf>,

    /// Worker mode: only PHP requests whose path matches this glob go to the
    /// worker script (`*` matches any characters, `/` included: `/api/*`);
    /// the others run classic, each script on its own. Repeatable.
    #[arg(long, value_name = "GLOB", env = "SPINDLE_WORKER_MATCH")]
    pub worker_match: Vec<String>,

    /// Worker mode with --worker-match: how many of the --workers processes
    /// run the worker script; the others serve classic requests
    /// [default: half of them, rounded up].
    #[arg(long, value_name = "N", env = "SPINDLE_WORKER_PROCESSES")]
    pub worker_processes: Option<usize>,

    /// Largest request body accepted; larger ones get 413 and never reach PHP.
    /// Suffixes K, M, G (powers of 1024).
    #[arg(long, value_name = "SIZE", env = "SPINDLE_MAX_BODY_SIZE", default_value = "64M", value_parser = parse_size)]
    pub max_body_size: u64,

    /// Seconds a request body may go without a byte arriving (between two
    /// reads, as nginx's client_body_timeout) before the request gets 408.
    /// 0 disables.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_BODY_TIMEOUT",
        default_value_t = 60
    )]
    pub body_timeout: u64,

    /// Memory that request bodies being received and run may hold in total
    /// (K, M, G); past it, bodies are spooled to --body-spool-dir. Bodies over
    /// 1M always go to disk.
    #[arg(long, value_name = "SIZE", env = "SPINDLE_MAX_BODY_MEMORY", default_value = "32M", value_parser = parse_size)]
    pub max_body_memory: u64,

    /// Directory for request bodies spooled to disk; the files are unnamed
    /// (O_TMPFILE) or unlinked at once [default: $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR", env = "SPINDLE_BODY_SPOOL_DIR")]
    pub body_spool_dir: Option<PathBuf>,

    /// Bytes of small static files kept in memory (K, M, G); the least
    /// recently used go first. 0 turns the cache off.
    #[arg(long, value_name = "SIZE", env = "SPINDLE_STATIC_CACHE_SIZE", default_value = "64M", value_parser = parse_size)]
    pub static_cache_size: u64,

    /// Largest request head (request line and headers); larger ones get 431.
    #[arg(long, value_name = "SIZE", env = "SPINDLE_MAX_HEADER_SIZE", default_value = "64K", value_parser = parse_size)]
    pub max_header_size: u64,

    /// Seconds a PHP request may run before it is ended (504 if nothing was
    /// sent yet); tokio_request_heartbeat() extends it. 0 disables.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_REQUEST_TIMEOUT",
        default_value_t = 60
    )]
    pub request_timeout: u64,

    /// Largest extension one tokio_request_heartbeat() call may ask for.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_MAX_HEARTBEAT",
        default_value_t = 300
    )]
    pub max_heartbeat: u64,

    /// Send a `: keep-alive` comment on a Server-Sent Events stream that has
    /// been quiet this long (only between events). 0 disables.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_SSE_KEEPALIVE",
        default_value_t = 15
    )]
    pub sse_keepalive: u64,

    /// Replace a worker after it served this many requests (as FPM's
    /// pm.max_requests). 0 never.
    #[arg(
        long,
        value_name = "N",
        env = "SPINDLE_MAX_REQUESTS",
        default_value_t = 0
    )]
    pub max_requests: u64,

    /// Replace a worker, between requests, once its resident memory passes
    /// this size (K, M, G). Off by default.
    #[arg(long, value_name = "SIZE", env = "SPINDLE_MAX_WORKER_RSS", value_parser = parse_size)]
    pub max_worker_rss: Option<u64>,

    /// Workers that may hold streaming responses (Server-Sent Events, long
    /// flushed output) at once. Past it, requests that accept
    /// text/event-stream get 503 with Retry-After at once, so ordinary
    /// requests keep a worker [default: workers - 1, at least 1].
    #[arg(long, value_name = "N", env = "SPINDLE_MAX_STREAMING_WORKERS")]
    pub max_streaming_workers: Option<usize>,

    /// Seconds a request may wait in the queue for a worker before it gets
    /// 503 with Retry-After. 0 waits as long as it takes.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_QUEUE_TIMEOUT",
        default_value_t = 30
    )]
    pub queue_timeout: u64,

    /// On SIGTERM/SIGINT, seconds to let in-flight requests finish before
    /// workers are stopped.
    #[arg(
        long,
        value_name = "SECS",
        env = "SPINDLE_SHUTDOWN_TIMEOUT",
        default_value_t = 30
    )]
    pub shutdown_timeout: u64,

    /// Serve /health and /metrics (Prometheus) on this address. Off by default.
    #[arg(long, value_name = "ADDR", env = "SPINDLE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// One log line per request (target "access").
    #[arg(long, value_name = "on|off", env = "SPINDLE_ACCESS_LOG", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Write the master's pid here (for `kill -HUP $(cat FILE)` to reload).
    #[arg(long, value_name = "FILE", env = "SPINDLE_PID_FILE")]
    pub pid_file: Option<PathBuf>,

    /// Believe Forwarded / X-Forwarded-For/-Proto/-Host/-Port from this peer: an address,
    /// a CIDR network, or `unix` (a Unix socket listener). Repeatable.
    #[arg(
        long,
        value_name = "CIDR",
        env = "SPINDLE_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<TrustedProxy>,

    /// Permissions of the Unix socket file (octal), for `--listen unix:`.
    #[arg(long, value_name = "MODE", env = "SPINDLE_SOCKET_MODE", default_value = "0660", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Symlinks in the document root: `follow` them anywhere (as nginx does;
    /// Debian's packaged applications link into /var/lib), only where link and
    /// target have the same `owner` (nginx's disable_symlinks if_not_owner),
    /// or only to targets `inside` the document root. In every mode a static
    /// file whose target is PHP source or a dotfile is refused.
    #[arg(
        long,
        value_name = "MODE",
        env = "SPINDLE_SYMLINKS",
        default_value = "follow",
        value_enum
    )]
    pub symlinks: Symlinks,

    /// Requests that may wait for a busy worker; beyond that, 503.
    #[arg(
        long,
        value_name = "N",
        env = "SPINDLE_QUEUE_SIZE",
        default_value_t = 1024
    )]
    pub queue_size: usize,

    /// Serve HTTPS on --listen with this certificate chain (PEM); needs --tls-key.
    /// HTTP/2 and HTTP/1.1 are offered by ALPN. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", env = "SPINDLE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", env = "SPINDLE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Also listen for plain HTTP here and redirect every request to HTTPS
    /// (308, same host and path). Needs --tls-cert.
    #[arg(long, value_name = "ADDR", env = "SPINDLE_REDIRECT_HTTP")]
    pub redirect_http: Option<SocketAddr>,

    /// Obtain and renew a certificate for this domain over ACME (TLS-ALPN-01,
    /// answered on --listen, which must then be reachable on port 443 for the
    /// ACME server). Repeatable: one certificate for all. Instead of --tls-cert.
    #[arg(
        long,
        value_name = "DOMAIN",
        env = "SPINDLE_ACME_DOMAIN",
        value_delimiter = ','
    )]
    pub acme_domain: Vec<String>,

    /// The ACME server's directory URL [default: Let's Encrypt production].
    #[arg(long, value_name = "URL", env = "SPINDLE_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,

    /// Where the ACME account and certificates are kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "SPINDLE_ACME_CACHE",
        default_value = "/var/lib/spindle/acme"
    )]
    pub acme_cache: PathBuf,

    /// A contact e-mail for the ACME account (expiry notices).
    #[arg(long, value_name = "EMAIL", env = "SPINDLE_ACME_EMAIL")]
    pub acme_email: Option<String>,

    /// Run the Mercure hub at /.well-known/mercure (Server-Sent Events
    /// subscribers held by the master, spindle_publish() from PHP).
    #[arg(long, value_name = "on|off", env = "SPINDLE_HUB", default_value = "off", default_missing_value = "on", num_args = 0..=1, require_equals = true, value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub hub: bool,

    /// Key that verifies publishers' JWTs: an HS256 secret, or @/path/key.pem
    /// for an RS256/ES256 public key. Without it nobody publishes over HTTP
    /// (PHP's spindle_publish() needs no token).
    #[arg(long, value_name = "KEY", env = "SPINDLE_HUB_PUBLISHER_KEY")]
    pub hub_publisher_key: Option<String>,

    /// Key that verifies subscribers' JWTs (as --hub-publisher-key). Without
    /// it, only public updates, to anyone.
    #[arg(long, value_name = "KEY", env = "SPINDLE_HUB_SUBSCRIBER_KEY")]
    pub hub_subscriber_key: Option<String>,

    /// Subscribers without a token receive public updates.
    #[arg(long, value_name = "on|off", env = "SPINDLE_HUB_ANONYMOUS", default_value = "off", default_missing_value = "on", num_args = 0..=1, require_equals = true, value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub hub_anonymous: bool,

    /// Updates the hub keeps for replay to reconnecting subscribers.
    #[arg(
        long,
        value_name = "N",
        env = "SPINDLE_HUB_HISTORY",
        default_value_t = 1000
    )]
    pub hub_history: usize,

    /// An origin allowed to use the hub from a browser (CORS), or `*`. Repeatable.
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "SPINDLE_HUB_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub hub_cors_origin: Vec<String>,

    /// The cookie a subscriber's JWT may come in.
    #[arg(
        long,
        value_name = "NAME",
        env = "SPINDLE_HUB_COOKIE_NAME",
        default_value = "mercureAuthorization"
    )]
    pub hub_cookie_name: String,

    /// Subscribers the hub holds at most; beyond that, 503.
    #[arg(
        long,
        value_name = "N",
        env = "SPINDLE_HUB_MAX_SUBSCRIBERS",
        default_value_t = 100_000
    )]
    pub hub_max_subscribers: usize,

    /// Publish subscription events (/.well-known/mercure/subscriptions/...)
    /// when subscribers come and go, as private updates.
    #[arg(long, value_name = "on|off", env = "SPINDLE_HUB_SUBSCRIPTIONS", default_value = "off", default_missing_value = "on", num_args = 0..=1, require_equals = true, value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub hub_subscriptions: bool,

    /// Where updates travel between Spindle nodes: `local` (this process
    /// only), `redis://host:port/db` (also rediss://, redis+unix://) or
    /// `postgres://user@host/db`.
    #[arg(
        long,
        value_name = "URL",
        env = "SPINDLE_HUB_TRANSPORT",
        default_value = "local"
    )]
    pub hub_transport: String,

    /// Publish each NOTIFY on a PostgreSQL channel to a topic:
    /// CHANNEL=TOPIC. Repeatable.
    #[arg(
        long,
        value_name = "CHANNEL=TOPIC",
        env = "SPINDLE_HUB_PG_CHANNEL",
        value_delimiter = ','
    )]
    pub hub_pg_channel: Vec<String>,

    /// The PostgreSQL database --hub-pg-channel listens to, when
    /// --hub-transport is not PostgreSQL.
    #[arg(long, value_name = "URL", env = "SPINDLE_HUB_PG_URL")]
    pub hub_pg_url: Option<String>,
}

/// A peer whose X-Forwarded-* headers are believed: an address or network
/// (`10.0.0.0/8`, `127.0.0.1`, `::1`), or `unix` for connections on a Unix
/// socket listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxy {
    Unix,
    Net(ipnet::IpNet),
}

impl FromStr for TrustedProxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "unix" {
            return Ok(TrustedProxy::Unix);
        }
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            return Ok(TrustedProxy::Net(n.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| TrustedProxy::Net(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("'{s}' is not an address, a CIDR network (10.0.0.0/8) or 'unix'"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct PhpInfoArgs {
    /// php.ini to read instead of Debian's embed php.ini.
    #[arg(long, value_name = "FILE", env = "SPINDLE_PHP_INI")]
    pub php_ini: Option<PathBuf>,
    /// Set a php.ini entry, KEY=VALUE, as the php CLI's -d (repeatable).
    #[arg(short = 'd', value_name = "KEY=VALUE", value_parser = parse_define)]
    pub define: Vec<(String, String)>,
}

/// How far symlinks in the document root are followed (`--symlinks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Symlinks {
    /// Wherever they point.
    #[default]
    Follow,
    /// When the link and its target have the same owner.
    Owner,
    /// Only to targets inside the document root.
    Inside,
}

/// A listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, as in unix:/run/spindle.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
            format!("'{s}' is not ADDR:PORT (127.0.0.1:8080, [::1]:8080) or unix:/path/to.sock")
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "http://{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `KEY=VALUE`. Unlike the php CLI, a bare `KEY` is refused: php reads it
/// as `KEY=1`, which for `-d memory_limit` meant a limit of one byte and a
/// startup warning instead of an error (issue 9, item 12).
pub fn parse_define(s: &str) -> Result<(String, String), String> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' has no value: write {s}=VALUE (for a switch, {s}=1)"
        ));
    };
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("'{s}' is not KEY=VALUE"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("'{s}' is not an octal file mode such as 0660"))
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("'{s}': expected on or off")),
    }
}

/// `64M`, `512K`, `1G` or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("'{s}': the size suffix must be K, M or G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size such as 65536, 512K or 64M"))
}
