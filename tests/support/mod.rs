//! Shared helpers for the integration tests: start the real `spindle` binary
//! on a free loopback port, talk to it over real sockets.
#![allow(dead_code)]

pub mod engines;
pub mod fpm;
pub mod sse;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The fixtures directory, `php-tests/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("php-tests")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_spindle")
}

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `spindle serve php-tests --listen 127.0.0.1:0 --workers 2` plus `extra`.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_in(&fixtures(), extra)
    }

    /// Listens on the Unix socket `sock`; `addr` is then meaningless until
    /// the caller sets it (for example to a proxy in front).
    pub fn start_unix(docroot: &Path, sock: &Path, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            docroot.to_string_lossy().into_owned(),
            "--listen".into(),
            format!("unix:{}", sock.display()),
            "--workers".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, log, _) = spawn(&args, &[], None, "listening on unix:");
        Server {
            child,
            addr: "127.0.0.1:9".parse().unwrap(),
            log,
        }
    }

    pub fn start_in(docroot: &Path, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            docroot.to_string_lossy().into_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        if !extra.contains(&"--workers") {
            args.extend(["--workers".into(), "2".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start_args(&args, &[])
    }

    /// `spindle` with exactly `args` and extra environment variables; the
    /// server must listen on TCP.
    pub fn start_args(args: &[String], env: &[(&str, &str)]) -> Server {
        Server::start_args_as(args, env, None)
    }

    /// As `start_args`, with the process started as user id `uid` (the
    /// test runs as root) when given.
    pub fn start_args_as(args: &[String], env: &[(&str, &str)], uid: Option<u32>) -> Server {
        let (child, log, rest) = spawn(args, env, uid, "listening on http://");
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        let addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("listen address in {rest:?}"));
        Server { child, addr, log }
    }

    /// `spindle` with exactly `args`, listening on TCP with TLS: `addr` is
    /// the bound address (URLs from `url()` still say http; build https
    /// ones from `addr`).
    pub fn start_tls_args(args: &[String]) -> Server {
        Server::start_tls_env(args, &[])
    }

    /// `start_tls_args` with extra environment variables.
    pub fn start_tls_env(args: &[String], env: &[(&str, &str)]) -> Server {
        let (child, log, rest) = spawn(args, env, None, "listening on https://");
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        let addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("listen address in {rest:?}"));
        Server { child, addr, log }
    }

    /// Sends `sig` to the master.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the master to exit; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The admin listener's address, from the log.
    pub fn admin_url(&self, path: &str) -> String {
        assert!(self.wait_for_log(
            "admin (health, metrics) on http://",
            Duration::from_secs(10)
        ));
        let log = self.log();
        let addr = log
            .split("admin (health, metrics) on http://")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                    .collect::<String>()
            })
            .unwrap();
        format!("http://{addr}{path}")
    }

    /// One sample from the admin listener's `/metrics` (needs
    /// `--admin-listen`): the value of the line starting with `series`,
    /// e.g. `spindle_queue_depth` or `spindle_requests_total{code="200"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = client()
            .get(self.admin_url("/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find(|l| l.split(' ').next() == Some(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Polls `series` until it equals `value`; panics after `timeout`.
    pub fn wait_for_metric(&self, series: &str, value: f64, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            let now = self.metric(series);
            if now == Some(value) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{series} is {now:?}, never {value}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every stderr line so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until `n` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let seen = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if seen >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `request` as raw bytes on a new connection, returns everything
    /// the server sent until it closed the connection or went quiet.
    pub fn raw(&self, request: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Starts `spindle` and waits for a log line containing `marker`; returns
/// the process, its log so far (kept up to date) and what followed `marker`.
fn spawn(
    args: &[String],
    env: &[(&str, &str)],
    uid: Option<u32>,
    marker: &'static str,
) -> (Child, Arc<Mutex<Vec<String>>>, String) {
    let mut cmd = Command::new(binary());
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .env("SPINDLE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spindle");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Logged before the caller is told, so it can see the line too.
            let rest = line.split(marker).nth(1).map(str::to_string);
            log2.lock().unwrap().push(line);
            if let Some(rest) = rest {
                let _ = tx.send(rest);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(rest) => (child, log, rest),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "spindle did not start; log:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A response body parsed as JSON; the body is shown when it is not JSON.
pub fn json(resp: reqwest::blocking::Response) -> serde_json::Value {
    let text = resp.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs `spindle` with `args` and returns (exit success, stderr), bounded in time.
pub fn run_to_exit(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("spindle {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "spindle-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A request whose response has begun: the raw connection, once the body
/// has shown `marker` (e.g. the `first` line of slow.php, flushed before it
/// sleeps). Lets a test act while a request is known to be inside PHP,
/// instead of sleeping and hoping (issue 10, item 6).
pub fn in_flight(addr: SocketAddr, path: &str, marker: &str) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(marker) {
        let n = tcp
            .read(&mut buf)
            .expect("response of the in-flight request");
        assert!(
            n > 0,
            "closed before {marker:?}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    (tcp, seen)
}

/// Reads until the server ends the connection, by a close (FIN) or a reset,
/// and returns what arrived. A read timeout (set by the caller on the socket)
/// fails the test: a connection that merely hangs is neither a cut nor an end,
/// so "the stream was cut" must not pass on it (issue 10, item 2).
pub fn read_until_closed(r: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "the connection was neither closed nor reset ({e}) after {} bytes: {:?}",
                out.len(),
                String::from_utf8_lossy(&out[out.len().saturating_sub(200)..])
            ),
        }
    }
}

/// Debian's chromium, headless, with a fresh profile in `profile`, opening
/// `url`; `extra` flags are added (e.g. `--ignore-certificate-errors`).
/// Kill it before asserting, so a failure leaves no browser behind.
pub fn chromium(url: &str, profile: &TempDir, extra: &[&str]) -> Child {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is installed by scripts/deps.sh test")
}

/// Worker mode's "booted once": three answers of `boot` (a page printing
/// `PID BOOT-ID`) from the worker-mode server are one process and one boot;
/// from the classic server, one process but a new boot each time.
pub fn assert_booted_once(worker: &Server, classic: &Server, boot: impl Fn(&Server) -> String) {
    let boots = |s: &Server| -> Vec<(String, String)> {
        (0..3)
            .map(|_| {
                let body = boot(s);
                let (pid, id) = body.split_once(' ').expect("pid and boot id");
                (pid.to_string(), id.to_string())
            })
            .collect()
    };
    let w = boots(worker);
    assert!(w.iter().all(|b| *b == w[0]), "worker mode: {w:?}");
    let k = boots(classic);
    assert!(k.iter().all(|b| b.0 == k[0].0), "classic mode: {k:?}");
    assert!(k[0].1 != k[1].1 && k[1].1 != k[2].1, "classic mode: {k:?}");
}
