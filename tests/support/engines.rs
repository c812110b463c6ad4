//! Real Redis and PostgreSQL servers for the hub's transports (issue 12),
//! each private to one test, on a free loopback port, stopped on drop.
//! `scripts/deps.sh test` installs them (redis-server, postgresql).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `ready` holds; panics after `timeout` with `what`.
fn wait(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < end, "{what} did not start in {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis-server` without persistence.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: TempDir::new("redis"),
        };
        r.launch();
        r
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/deps.sh test installs it)");
        self.child = Some(child);
        wait("redis-server", Duration::from_secs(10), || {
            self.cli(&["PING"]).is_some_and(|o| o == "PONG")
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli` against this server: its output, or `None` on failure.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|o| !o.starts_with("Could not connect"))
    }

    /// SIGKILL, as a crash: the stream is lost with the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait(
            "redis-server's port to close",
            Duration::from_secs(10),
            || TcpStream::connect(("127.0.0.1", self.port)).is_err(),
        );
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.launch();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A private PostgreSQL cluster (initdb), trust authentication on
/// loopback. Run as the `postgres` user when the test runs as root
/// (PostgreSQL refuses to run as root).
pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    data: PathBuf,
}

fn as_postgres(program: &str) -> Command {
    let path = Path::new(PG_BIN).join(program);
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = TempDir::new("pg");
        let data: PathBuf = dir.path().join("data");
        if nix::unistd::geteuid().is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb (scripts/deps.sh test installs postgresql)");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            child: None,
            port: free_port(),
            dir,
            data,
        };
        pg.launch();
        pg
    }

    fn launch(&mut self) {
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait("postgres", Duration::from_secs(30), || {
            self.psql("SELECT 1").is_ok_and(|o| o == "1")
        });
    }

    /// An immediate shutdown (as a crash: clients are cut, no checkpoint).
    pub fn stop(&mut self) {
        let out = as_postgres("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql; its unaligned output, or the error.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(Path::new(PG_BIN).join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // pg_ctl, not a signal to our child: that child is runuser, which
        // does not pass signals on, and the server would outlive the test.
        if self.child.is_some() {
            let _ = as_postgres("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&self.data)
                .output();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private MariaDB server (tests/apps_debian.rs): its own data directory
/// (`mariadb-install-db`), socket and loopback port, no binary log, no
/// fsync. Root has no password on the socket and on 127.0.0.1; `database`
/// adds a database and a user that owns it, as Debian's setup scripts do.
/// `scripts/deps.sh test` installs mariadb-server.
pub struct MariaDb {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl MariaDb {
    pub fn start() -> MariaDb {
        let dir = TempDir::new("mariadb");
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        // mariadbd refuses to run as root unless told to; as another user
        // it runs as that user.
        if nix::unistd::geteuid().is_root() {
            install.arg("--user=root");
        }
        let out = install
            .output()
            .expect("mariadb-install-db (scripts/deps.sh test installs mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut server = Command::new("/usr/sbin/mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
            .args([
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .args([
                "--skip-innodb-doublewrite",
                "--character-set-server=utf8mb4",
            ]);
        if nix::unistd::geteuid().is_root() {
            server.arg("--user=root");
        }
        let child = server
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd (scripts/deps.sh test installs mariadb-server)");
        let db = MariaDb {
            child: Some(child),
            port,
            dir,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while db.sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < end,
                "mariadbd did not start in 30s: {}",
                std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        db
    }

    /// Creates `name` and a user `name`@127.0.0.1 with `password` and every
    /// right on it (applications connect over TCP).
    pub fn database(&self, name: &str, password: &str) {
        self.sql(&format!(
            "CREATE DATABASE `{name}`; \
             CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT ALL ON `{name}`.* TO '{name}'@'127.0.0.1'"
        ))
        .unwrap();
    }

    /// Runs `sql` as root over the socket; its tab-separated output, or the
    /// error.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args([
                "-uroot",
                "--connect-timeout=5",
                "--batch",
                "--skip-column-names",
            ])
            .args(["-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGKILL: nothing here is worth a clean shutdown, and the data
        // directory goes with the TempDir.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
