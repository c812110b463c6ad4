//! Command line and settings.
//!
//! Two phases, as ripgrep does it: [`ServeArgs`] is what the user wrote
//! (clap parses and type-checks it), [`Settings`] is what the server runs with
//! (canonical paths, resolved defaults), produced by [`ServeArgs::resolve`],
//! which checks everything that can be checked before anything starts.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Debian's php.ini for the embed SAPI, read by default when it exists.
pub const DEFAULT_PHP_INI: &str = "/etc/php/8.2/embed/php.ini";

#[derive(Debug, Parser)]
#[command(
    name = "spindle",
    version,
    about = "A PHP application server with streaming flush()"
)]
pub struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, value_name = "FORMAT", env = "SPINDLE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a directory of PHP files and static assets over HTTP/1.1.
    Serve(Box<ServeArgs>),
    /// Print the effective PHP configuration (phpinfo() as text, like `php -i`)
    /// for the php.ini and -d entries `serve` would use.
    PhpInfo(PhpInfoArgs),
    /// Internal: the process that starts PHP and forks workers.
    #[command(name = "__zygote", hide = true)]
    Zygote(crate::worker::ZygoteArgs),
}

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

    /// Threads of the master's HTTP runtime [default: one per 4 CPUs, at least 1].
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

/// Parses the command line, with `serve --config FILE` merged in: built-in
/// defaults < the TOML file < `SPINDLE_*` environment variables < flags.
///
/// The file is not parsed by hand: each key becomes the flag of the same
/// name (added only where neither a flag nor the environment set it) and
/// clap parses it, so a file value is checked exactly like a flag.
pub fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};

    let matches = Cli::command().try_get_matches_from(&args)?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Cli::from_arg_matches(&matches);
    };
    // One line, like every other configuration error (no usage block).
    let config_error = |msg: String| {
        clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!("--config {}: {msg}\n", path.display()),
        )
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Err(config_error(e.to_string())),
    };
    let table: toml::Table = match text.parse::<toml::Table>() {
        Ok(t) => t,
        // toml's Display draws the line with a caret over several lines.
        Err(e) => {
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            let msg: Vec<&str> = e.message().lines().map(str::trim).collect();
            return Err(config_error(format!("{at}{}", msg.join("; "))));
        }
    };
    let serve_cmd = Cli::command();
    let serve_cmd = serve_cmd.find_subcommand("serve").expect("serve exists");
    // (id, the flag to pass it with; None for the positional document root)
    let known: Vec<(String, Option<String>)> = serve_cmd
        .get_arguments()
        .filter(|a| a.get_id() != "config" && a.get_id() != "help")
        .map(|a| {
            let flag = a
                .get_long()
                .map(|l| format!("--{l}"))
                .or_else(|| a.get_short().map(|c| format!("-{c}")));
            (a.get_id().to_string(), flag)
        })
        .collect();
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some((_, long)) = known.iter().find(|(k, _)| *k == id) else {
            let mut names: Vec<String> = known.iter().map(|(k, _)| k.replace('_', "-")).collect();
            names.sort();
            return Err(config_error(format!(
                "unknown key '{key}'; the keys are: {}",
                names.join(", ")
            )));
        };
        if matches!(
            serve.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items.iter().map(toml_scalar).collect::<Option<_>>(),
            v => toml_scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| {
            config_error(format!(
                "'{key}' must be a string, number, boolean or a list of them"
            ))
        })?;
        for v in values {
            match long {
                // `--flag=value`, so switches that take an optional value
                // (`--hub`, `--hub=off`) read it too.
                Some(flag) if flag.starts_with("--") => extra.push(format!("{flag}={v}").into()),
                Some(flag) => {
                    extra.push(flag.into());
                    extra.push(v.into());
                }
                None => extra.push(v.into()), // the positional document root
            }
        }
    }
    let mut all = args;
    all.extend(extra);
    Cli::try_parse_from(all).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        config_error(first.trim_start_matches("error: ").to_string())
    })
}

fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "on" } else { "off" }.to_string()),
        _ => None,
    }
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

/// A setting that cannot be used; names the option and why.
#[derive(Debug)]
pub struct ConfigError {
    option: &'static str,
    detail: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.detail)
    }
}

impl std::error::Error for ConfigError {}

impl ServeArgs {
    fn resolve_acme(&self) -> Result<Option<crate::http::acme::AcmeConfig>, ConfigError> {
        if self.acme_domain.is_empty() {
            if self.acme_directory.is_some() {
                return Err(bad("--acme-directory", "needs --acme-domain"));
            }
            return Ok(None);
        }
        if self.tls_cert.is_some() {
            return Err(bad(
                "--acme-domain",
                "use either --acme-domain or --tls-cert",
            ));
        }
        if matches!(self.listen, Listen::Unix(_)) {
            return Err(bad("--acme-domain", "TLS needs a TCP --listen address"));
        }
        for d in &self.acme_domain {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(bad("--acme-domain", format!("{d:?} is not a DNS name")));
            }
        }
        let directory = self
            .acme_directory
            .clone()
            .unwrap_or_else(|| crate::http::acme::LETS_ENCRYPT.to_string());
        if !directory.starts_with("https://") {
            return Err(bad("--acme-directory", "must be an https:// URL"));
        }
        Ok(Some(crate::http::acme::AcmeConfig {
            domains: self
                .acme_domain
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            directory,
            cache: self.acme_cache.clone(),
            email: self.acme_email.clone(),
        }))
    }

    fn resolve_tls(&self) -> Result<Option<crate::http::tls::TlsFiles>, ConfigError> {
        let files = match (&self.tls_cert, &self.tls_key) {
            (None, None) => {
                if self.redirect_http.is_some() && self.acme_domain.is_empty() {
                    return Err(bad(
                        "--redirect-http",
                        "needs --tls-cert and --tls-key, or --acme-domain",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => return Err(bad("--tls-key", "--tls-cert needs --tls-key too")),
            (None, Some(_)) => return Err(bad("--tls-cert", "--tls-key needs --tls-cert too")),
            (Some(cert), Some(key)) => crate::http::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        };
        if matches!(self.listen, Listen::Unix(_)) {
            return Err(bad("--tls-cert", "TLS needs a TCP --listen address"));
        }
        crate::http::tls::load(&files).map_err(|e| bad("--tls-cert", e))?;
        Ok(Some(files))
    }

    fn resolve_hub(&self) -> Result<Option<crate::hub::HubConfig>, ConfigError> {
        use crate::hub::transport::TransportConfig;
        if !self.hub {
            if self.hub_transport != "local" || !self.hub_pg_channel.is_empty() {
                return Err(bad(
                    "--hub-transport",
                    "--hub-transport and --hub-pg-channel need --hub",
                ));
            }
            return Ok(None);
        }
        let key = |option: &'static str, v: &Option<String>| match v {
            None => Ok(None),
            Some(v) => crate::hub::protocol::Key::parse(v)
                .map(Some)
                .map_err(|e| bad(option, e)),
        };
        if self.hub_max_subscribers == 0 {
            return Err(bad("--hub-max-subscribers", "must be at least 1"));
        }
        if self.hub_cookie_name.is_empty() {
            return Err(bad("--hub-cookie-name", "must not be empty"));
        }
        let transport = TransportConfig::parse(&self.hub_transport)
            .map_err(|why| bad("--hub-transport", &why))?;
        let mut pg_channels = Vec::new();
        for c in &self.hub_pg_channel {
            match c.split_once('=') {
                Some((channel, topic)) if !channel.is_empty() && !topic.is_empty() => {
                    pg_channels.push((channel.to_string(), topic.to_string()))
                }
                _ => return Err(bad("--hub-pg-channel", "expected CHANNEL=TOPIC")),
            }
        }
        if let Some(url) = &self.hub_pg_url {
            match TransportConfig::parse(url) {
                Ok(TransportConfig::Postgres(_)) => {}
                Ok(_) => return Err(bad("--hub-pg-url", "expected a postgres:// URL")),
                Err(why) => return Err(bad("--hub-pg-url", &why)),
            }
        }
        if !pg_channels.is_empty()
            && self.hub_pg_url.is_none()
            && transport.postgres_url().is_none()
        {
            return Err(bad(
                "--hub-pg-channel",
                "needs a PostgreSQL database: --hub-transport postgres://... or --hub-pg-url",
            ));
        }
        Ok(Some(crate::hub::HubConfig {
            transport,
            pg_channels,
            pg_url: self.hub_pg_url.clone(),
            history: self.hub_history,
            max_subscribers: self.hub_max_subscribers,
            keepalive: (self.sse_keepalive > 0).then(|| Duration::from_secs(self.sse_keepalive)),
            subscription_events: self.hub_subscriptions,
            auth: crate::hub::protocol::AuthConfig {
                publisher_key: key("--hub-publisher-key", &self.hub_publisher_key)?,
                subscriber_key: key("--hub-subscriber-key", &self.hub_subscriber_key)?,
                anonymous: self.hub_anonymous,
                cors_origins: self.hub_cors_origin.clone(),
                cookie_name: self.hub_cookie_name.clone(),
            },
            ..crate::hub::HubConfig::default()
        }))
    }
}

impl ConfigError {
    /// A configuration error found outside this module (`php-info`).
    pub fn new(option: &'static str, detail: impl Into<String>) -> ConfigError {
        bad(option, detail)
    }
}

fn bad(option: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        detail: detail.into(),
    }
}

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Canonical, absolute.
    pub docroot: PathBuf,
    pub listen: Listen,
    pub workers: usize,
    pub threads: usize,
    pub php: PhpSettings,
    pub front_controller: Option<FrontController>,
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
    pub max_streaming_workers: usize,
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
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
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
            None => std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(4)),
        };
        let ini_path = resolve_php_ini(self.php_ini.as_deref())?;
        let worker = self
            .worker
            .as_deref()
            .map(|w| resolve_worker(&docroot, w))
            .transpose()?;
        let front_controller = match (&self.front_controller, &worker) {
            (Some(rel), _) => Some(resolve_front_controller(&docroot, rel, self.symlinks)?),
            // Worker mode is front-controller style: every PHP request goes
            // to the worker script, whatever script the URL names.
            (None, Some(w)) => Some(FrontController {
                filename: w.clone(),
                script_name: match w.strip_prefix(&docroot) {
                    Ok(rel) => format!("/{}", rel.to_string_lossy()),
                    Err(_) => format!("/{}", w.file_name().unwrap_or_default().to_string_lossy()),
                },
            }),
            (None, None) => None,
        };
        if self.max_header_size < 8192 {
            return Err(bad("--max-header-size", "must be at least 8K"));
        }
        if self.queue_size == 0 {
            return Err(bad("--queue-size", "must be at least 1"));
        }
        let max_streaming_workers = match self.max_streaming_workers {
            Some(0) => return Err(bad("--max-streaming-workers", "must be at least 1")),
            Some(n) => n,
            None => workers.saturating_sub(1).max(1),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:80".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:8080".parse::<Listen>(),
            Ok(Listen::Tcp("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/s.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/s.sock".into()))
        );
        assert!("localhost".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }

    #[test]
    fn defines() {
        assert_eq!(parse_define("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_define("memory_limit").is_err());
        assert_eq!(parse_define("a="), Ok(("a".into(), "".into())));
        assert!(parse_define("=x").is_err());
    }
}
