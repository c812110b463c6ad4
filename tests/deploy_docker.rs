//! The Docker image, built and run (issue 15): docker/Dockerfile's runtime
//! image around the binary this suite built (`--target prebuilt`), run with
//! a volume as docs/docker.md says, and docker/compose.yaml's nginx + Spindle
//! pair, run with plain `docker` commands equivalent to the compose file
//! (Debian 12 packages no `docker compose`).
//!
//! No image registry is reachable where this runs, so the base image
//! (`debian:12-slim`, the runtime stage's FROM) is made locally with
//! debootstrap, once: it is cached by tag in the daemon's store. When no
//! Docker daemon runs, the test starts its own `dockerd` (store under
//! target/tmp, sockets under /tmp) and stops it at the end. If dockerd cannot
//! start, the test fails saying why; `SPINDLE_TEST_NO_DOCKER=1` skips it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::client;

const BASE: &str = "debian:12-slim";
const IMAGE: &str = "spindle-test/spindle:latest";
const NGINX_IMAGE: &str = "spindle-test/nginx:1.22";
const LABEL: &str = "spindle-test=deploy_docker";
/// Marks the base image this test made, and how: bump it when that changes.
const BASE_LABEL: &str = "spindle-test-base:2";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's docker CLI (docker.io): it drives BuildKit without the buildx
/// plugin, which a newer CLI elsewhere on PATH may demand.
fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// A Docker daemon to talk to: the machine's own, or one this test started.
struct Daemon {
    host: String,
    started: Option<Child>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Daemon {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_cli());
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "1")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run docker")
    }

    /// `docker args`, which must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn answers(host: &str) -> bool {
        Command::new(docker_cli())
            .env("DOCKER_HOST", host)
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The machine's daemon if one answers, else our own; `Err` says why
    /// none could be had.
    fn get() -> Result<Daemon, String> {
        // One docker test at a time on a machine: two private daemons would
        // share the docker0 bridge and hand out the same addresses.
        let lock = std::fs::File::create("/tmp/spindle-test-docker.lock").unwrap();
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap();
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            if Daemon::answers(&host) {
                return Ok(Daemon {
                    host,
                    started: None,
                    _lock: lock,
                });
            }
            return Err(format!("DOCKER_HOST={host} does not answer"));
        }
        let system = "unix:///var/run/docker.sock".to_string();
        if Daemon::answers(&system) {
            return Ok(Daemon {
                host: system,
                started: None,
                _lock: lock,
            });
        }
        // Our own. The store is kept across runs (the base image is made
        // once); sockets live under /tmp, where their paths stay short.
        let run = PathBuf::from("/tmp/spindle-test-dockerd");
        let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dockerd");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let pidfile = run.join("dockerd.pid");
        // A daemon left by a run that was killed: we hold the lock, so it
        // is nobody's.
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
                let end = Instant::now() + Duration::from_secs(30);
                while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let sock = run.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let log = std::fs::File::create(run.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(run.join("exec"))
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--host")
            .arg(&host)
            .args(["--containerd-namespace", "spindle-test"])
            .args(["--containerd-plugins-namespace", "spindle-test-plugins"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run dockerd: {e}"))?;
        let mut d = Daemon {
            host,
            started: Some(child),
            _lock: lock,
        };
        let end = Instant::now() + Duration::from_secs(60);
        while !Daemon::answers(&d.host) {
            let exited = d.started.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > end {
                let log = std::fs::read_to_string(run.join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "dockerd did not start ({exited:?}); its log ends:\n{}",
                    tail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(d)
    }

    /// Removes what an earlier, killed run may have left. Never panics: it
    /// also runs in `drop`, perhaps while a failed assertion unwinds.
    fn clean(&self) {
        let ids = |args: &[&str]| -> Vec<String> {
            let out = self.run(args);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        };
        let filter = format!("label={LABEL}");
        for id in ids(&["ps", "-aq", "--filter", &filter]) {
            let _ = self.run(&["rm", "-f", "-v", &id]);
        }
        for kind in ["network", "volume"] {
            for id in ids(&[kind, "ls", "-q", "--filter", &filter]) {
                let _ = self.run(&[kind, "rm", &id]);
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.started.take() {
            // `clean` goes through the daemon, which is still up.
            self.clean();
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Installs what the test drives, only what is missing (docker.io,
/// debootstrap and the rest of the test set).
fn deps() {
    let st = Command::new(repo().join("scripts/deps.sh"))
        .arg("test")
        .status()
        .unwrap();
    assert!(st.success(), "scripts/deps.sh test failed");
}

/// `debian:12-slim` made with debootstrap, unless the store has it.
fn base_image(d: &Daemon) {
    let made = d.run(&["image", "inspect", "-f", "{{.Config.Labels}}", BASE]);
    if made.status.success() {
        // One made by an earlier version of this function is made again.
        if String::from_utf8_lossy(&made.stdout).contains(BASE_LABEL) {
            return;
        }
        d.ok(&["rmi", "-f", BASE]);
    }
    let start = Instant::now();
    let dir = support::TempDir::new("rootfs");
    let root = dir.path().join("root");
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .stdin(Stdio::null())
        .output()
        .expect("debootstrap is installed by scripts/deps.sh test");
    assert!(
        out.status.success(),
        "debootstrap failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Slim as Debian's official -slim images are: no documentation, man
    // pages or translations, now or from packages installed later, and no
    // package lists or downloaded packages.
    std::fs::write(
        root.join("etc/dpkg/dpkg.cfg.d/docker-slim"),
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n\
         path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n\
         path-exclude /usr/share/locale/*\npath-exclude /usr/share/groff/*\n\
         path-exclude /usr/share/lintian/*\n",
    )
    .unwrap();
    // The official image's sources: without the security archive, apt
    // would install older PHP packages than the host built against.
    std::fs::write(
        root.join("etc/apt/sources.list"),
        "deb http://deb.debian.org/debian bookworm main\n\
         deb http://deb.debian.org/debian bookworm-updates main\n\
         deb http://deb.debian.org/debian-security bookworm-security main\n",
    )
    .unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(
            "cd \"$1\" && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb \
             usr/share/man/* usr/share/info/* usr/share/locale/* usr/share/groff/* usr/share/lintian/* \
             && find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete",
        )
        .arg("sh")
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = d
        .cmd(&[
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "CMD [\"bash\"]",
            "--change",
            "LABEL spindle-test-base=2",
            "-",
            BASE,
        ])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("made {BASE} with debootstrap in {:?}", start.elapsed());
}

/// docker/Dockerfile's runtime image around the binary this suite built.
fn build_spindle(d: &Daemon) {
    let bin = Path::new(support::binary());
    let rel = bin.strip_prefix(repo()).unwrap_or_else(|_| {
        panic!(
            "{} is outside the build context {} (CARGO_TARGET_DIR elsewhere?): \
             .dockerignore lets only target/{{debug,release}}/spindle through",
            bin.display(),
            repo().display()
        )
    });
    let rel = rel.to_str().unwrap();
    let start = Instant::now();
    d.ok(&[
        "build",
        "-f",
        "docker/Dockerfile",
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("SPINDLE_BINARY={rel}"),
        "-t",
        IMAGE,
        repo().to_str().unwrap(),
    ]);
    eprintln!("built {IMAGE} in {:?}", start.elapsed());
}

/// A stand-in for the official nginx image compose.yaml names: the same
/// base plus Debian's nginx, reading conf.d/*.conf, in the foreground.
fn build_nginx(d: &Daemon) {
    let dockerfile = format!(
        "FROM {BASE}\n\
         RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/* \
         /etc/nginx/sites-enabled/default \
         && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log\n\
         EXPOSE 80\nSTOPSIGNAL SIGQUIT\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n"
    );
    let mut child = d
        .cmd(&["build", "-t", NGINX_IMAGE, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nginx image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls until `url` answers at all.
fn wait_http(url: &str, what: &str, logs: impl Fn() -> String) {
    let end = Instant::now() + Duration::from_secs(30);
    while client().get(url).send().is_err() {
        assert!(
            Instant::now() < end,
            "{what} never answered; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on `addr` as an SSE client: the arrival time of each event.
fn sse_times(addr: &str, path: &str) -> Vec<Duration> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let start = Instant::now();
    let mut times = Vec::new();
    let mut headers = String::new();
    for line in BufReader::new(tcp).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("data:") {
            times.push(start.elapsed());
        } else if times.is_empty() {
            headers.push_str(&line.to_lowercase());
            headers.push('\n');
        }
    }
    assert!(
        headers.contains("content-type: text/event-stream"),
        "{headers}"
    );
    times
}

/// Three events 700 ms apart arrive one by one, not all at the end.
fn assert_streamed(times: &[Duration]) {
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[0] < Duration::from_millis(500), "buffered: {times:?}");
    assert!(
        times[1] - times[0] > Duration::from_millis(400),
        "{times:?}"
    );
    assert!(
        times[2] - times[1] > Duration::from_millis(400),
        "{times:?}"
    );
}

fn host_port(d: &Daemon, container: &str, port: &str) -> String {
    let p = d.ok(&["port", container, port]);
    p.lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no 127.0.0.1 mapping in {p:?}"))
        .to_string()
}

#[test]
fn docker_image_and_compose_pair() {
    if std::env::var_os("SPINDLE_TEST_NO_DOCKER").is_some() {
        eprintln!("SPINDLE_TEST_NO_DOCKER set: the Docker image is not tested");
        return;
    }
    let start = Instant::now();
    deps();
    let d = Daemon::get().unwrap_or_else(|why| {
        panic!("no Docker daemon: {why}\nset SPINDLE_TEST_NO_DOCKER=1 to skip this test")
    });
    d.clean();
    base_image(&d);
    std::thread::scope(|s| {
        s.spawn(|| build_nginx(&d));
        build_spindle(&d);
    });
    eprintln!("images ready after {:?}", start.elapsed());
    let size = d.ok(&["image", "inspect", "-f", "{{.Size}}", IMAGE]);
    eprintln!("{IMAGE}: {} MB", size.parse::<u64>().unwrap() / 1_000_000);

    single_container(&d);
    compose_pair(&d);
    d.clean();
    eprintln!("deploy_docker took {:?}", start.elapsed());
}

/// `docker run -p ... -v "$PWD/public:/srv/www:ro" spindle` as docs/docker.md
/// shows, with `spindle serve` options after the image name.
fn single_container(d: &Daemon) {
    let name = format!("spindle-test-{}", std::process::id());
    let www = format!("{}:/srv/www:ro", support::fixtures().display());
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        LABEL,
        "-p",
        "127.0.0.1::8080",
        "-v",
        &www,
        IMAGE,
        "/srv/www",
        "-d",
        "upload_max_filesize=32M",
        "-d",
        "post_max_size=64M",
    ]);
    let logs = || {
        let o = d.run(&["logs", &name]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let addr = host_port(d, &name, "8080/tcp");
    let base = format!("http://{addr}");
    wait_http(&format!("{base}/hello.php"), "the container", logs);
    let c = client();

    // A PHP page, from the volume.
    let r = c.get(format!("{base}/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "Hello, World!");

    // An SSE stream, event by event, through Docker's port mapping.
    assert_streamed(&sse_times(&addr, "/sse/counter.php?n=3&ms=700"));

    // An upload into the container, larger than PHP's default limit: the
    // options after the image name reached spindle serve.
    let big: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::blocking::multipart::Form::new().part(
        "big",
        reqwest::blocking::multipart::Part::bytes(big.clone()).file_name("big.bin"),
    );
    let r = c
        .post(format!("{base}/upload.php"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = support::json(r);
    assert_eq!(v["files"]["big"]["size"], 10_000_000, "{v}");
    assert_eq!(
        v["files"]["big"]["md5"],
        format!("{:x}", md5::compute(&big))
    );

    // Every process in the container (master and workers) runs as
    // www-data, uid 33 in the image's passwd.
    assert_eq!(
        d.ok(&["exec", &name, "id", "-u", "www-data"]),
        "33",
        "www-data's uid in the image"
    );
    let top = d.ok(&["top", &name, "-eo", "pid,uid,comm"]);
    let procs: Vec<&str> = top.lines().skip(1).collect();
    assert!(procs.len() >= 2, "master and workers: {top}");
    for p in &procs {
        assert_eq!(p.split_whitespace().nth(1), Some("33"), "{top}");
    }

    // Logs are JSON, as the image's SPINDLE_LOG_FORMAT says.
    let log = logs();
    let first = log.lines().next().unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(first)
        .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {first}"));

    // The HEALTHCHECK (interval 10 s) turns healthy.
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let h = d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &name]);
        if h == "healthy" {
            break;
        }
        assert!(Instant::now() < end, "health is {h:?}; logs:\n{}", logs());
        std::thread::sleep(Duration::from_millis(250));
    }

    // SIGTERM (docker stop, 10 s grace) stops it gracefully: well within
    // the grace period, with exit code 0 (SIGKILL would show 137).
    let t = Instant::now();
    d.ok(&["stop", "-t", "10", &name]);
    let took = t.elapsed();
    let code = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(code, "0", "exit code after SIGTERM; logs:\n{}", logs());
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    d.ok(&["rm", "-v", &name]);
}

/// docker/compose.yaml's two services, as `docker compose up` would run
/// them: a network, the shared socket volume, Spindle first (it owns the
/// socket directory), then nginx with docker/nginx.conf.
fn compose_pair(d: &Daemon) {
    let compose = std::fs::read_to_string(repo().join("docker/compose.yaml")).unwrap();
    // What is run below is what the compose file says.
    for line in [
        "SPINDLE_LISTEN: unix:/run/spindle/spindle.sock",
        "SPINDLE_SOCKET_MODE: \"0666\"",
        "SPINDLE_TRUSTED_PROXY: unix",
        "- ../demo:/srv/www:ro",
        "- spindle-socket:/run/spindle",
        "image: nginx:1.22",
        "- ./nginx.conf:/etc/nginx/conf.d/default.conf:ro",
        "- \"8080:80\"",
    ] {
        assert!(
            compose.contains(line),
            "compose.yaml no longer says {line:?}"
        );
    }
    let id = std::process::id();
    let net = format!("spindle-test-net-{id}");
    let vol = format!("spindle-test-socket-{id}");
    let sp = format!("spindle-test-app-{id}");
    let ng = format!("spindle-test-nginx-{id}");
    d.ok(&["network", "create", "--label", LABEL, &net]);
    d.ok(&["volume", "create", "--label", LABEL, &vol]);
    // The fixtures stand in for ../demo: they have the SSE and info pages.
    let www = format!("{}:/srv/www:ro", support::fixtures().display());
    let sock = format!("{vol}:/run/spindle");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &sp,
        "--label",
        LABEL,
        "--network",
        &net,
        "-e",
        "SPINDLE_LISTEN=unix:/run/spindle/spindle.sock",
        "-e",
        "SPINDLE_SOCKET_MODE=0666",
        "-e",
        "SPINDLE_TRUSTED_PROXY=unix",
        "-v",
        &www,
        "-v",
        &sock,
        IMAGE,
    ]);
    let end = Instant::now() + Duration::from_secs(30);
    while !d
        .run(&["exec", &sp, "test", "-S", "/run/spindle/spindle.sock"])
        .status
        .success()
    {
        assert!(
            Instant::now() < end,
            "no socket; logs:\n{}",
            d.ok(&["logs", &sp])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let conf = format!(
        "{}:/etc/nginx/conf.d/default.conf:ro",
        repo().join("docker/nginx.conf").display()
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        &ng,
        "--label",
        LABEL,
        "--network",
        &net,
        "-p",
        "127.0.0.1::80",
        "-v",
        &conf,
        "-v",
        &sock,
        NGINX_IMAGE,
    ]);
    let addr = host_port(d, &ng, "80/tcp");
    let base = format!("http://{addr}");
    let logs = || {
        let o = d.run(&["logs", &ng]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    wait_http(&format!("{base}/hello.php"), "nginx", logs);
    let r = client().get(format!("{base}/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200, "{}", logs());
    assert_eq!(r.text().unwrap(), "Hello, World!");

    // An SSE stream through nginx, event by event.
    assert_streamed(&sse_times(&addr, "/sse/counter.php?n=3&ms=700"));

    // REMOTE_ADDR from X-Forwarded-For: only nginx (the Unix socket peer)
    // is trusted, so the client's own claim is ignored and the address
    // nginx saw, the last it appended, is the client.
    let r = client()
        .get(format!("{base}/info.php"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .unwrap();
    let v = support::json(r);
    let server = &v["server"];
    let xff = server["HTTP_X_FORWARDED_FOR"].as_str().unwrap_or_default();
    let seen = xff.rsplit(", ").next().unwrap();
    assert!(xff.starts_with("203.0.113.7, "), "{server}");
    assert!(seen.parse::<std::net::Ipv4Addr>().is_ok(), "{server}");
    assert_eq!(server["REMOTE_ADDR"], seen, "{server}");
    assert_eq!(server["REQUEST_SCHEME"], "http", "{server}");

    for c in [&ng, &sp] {
        d.ok(&["rm", "-f", "-v", c]);
    }
    d.ok(&["volume", "rm", &vol]);
    d.ok(&["network", "rm", &net]);
}
