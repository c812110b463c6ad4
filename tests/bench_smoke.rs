//! The benchmark scripts run in every test run, briefly (one round, one
//! second per server), so that they cannot rot: each must start every peer,
//! check its answers (status 200, exact bodies and sizes, OPcache on) and
//! print its table (issue 10, item 12). The numbers are not checked: the
//! binary is the debug build and the runs are too short to mean anything.
//!
//! Needs what the scripts need: wrk, php8.2-fpm, nginx, apache2 with
//! libapache2-mod-php8.2, and for tls.sh h2load (nghttp2-client) and openssl
//! (`scripts/deps.sh test` installs them).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `bench/<script>` with `env`; its stdout. Fails the test on a non-zero
/// exit (the scripts stop on a wrong answer) or after `limit`.
fn bench(script: &str, env: &[(&str, &str)], limit: Duration) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = support::TempDir::new("bench");
    let log = out.path().join("stderr");
    let mut child = Command::new(root.join("bench").join(script))
        .envs(env.iter().copied())
        .env("SPINDLE_BIN", support::binary())
        .env("OUT", out.path().join("results.md"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("bench/{script}: {e}"));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            // SIGTERM, so the script's trap stops the servers it started.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            panic!(
                "bench/{script} still running after {limit:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(out.path().join("stdout")).unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "bench/{script} failed ({status}):\n{stderr}\n{stdout}"
    );
    stdout
}

#[test]
fn bench_scripts_smoke_run() {
    let limit = Duration::from_secs(180);
    // STRICT=1: any non-2xx answer or socket error stops the run.
    let out = bench(
        "run.sh",
        &[
            ("ROUNDS", "1"),
            ("DURATION", "1"),
            ("WARMUP", "1"),
            ("CONNS", "2"),
            ("STRICT", "1"),
        ],
        limit,
    );
    assert!(out.contains("| /hello.php | 2 |"), "{out}");
    assert!(out.contains("Failures: none"), "{out}");

    let out = bench(
        "stream.sh",
        &[
            ("ROUNDS", "1"),
            ("EVENTS", "20000"),
            ("MB", "8"),
            ("LAT_EVENTS", "20"),
        ],
        limit,
    );
    assert!(out.contains("| events/s |"), "{out}");

    let out = bench(
        "crash.sh",
        &[
            ("ROUNDS", "1"),
            ("DURATION", "1"),
            ("CONNS", "10"),
            ("STRICT", "1"),
        ],
        limit,
    );
    assert!(out.contains("| crash every |"), "{out}");
}

/// bench/hub.sh (issue 11): a few subscribers per server, so that the load
/// client, the nchan config and the hub endpoints it drives keep working.
/// The first run also builds bench/hubload (its own cargo project).
#[test]
fn hub_bench_smoke_run() {
    let out = bench(
        "hub.sh",
        &[
            ("SUBS", "50"),
            ("RUNS", "1"),
            ("ROUNDS", "2"),
            ("DURATION", "1"),
        ],
        Duration::from_secs(400),
    );
    assert!(out.contains("## 50 subscribers"), "{out}");
    assert!(out.contains("| deliveries/s |"), "{out}");
}

/// bench/hub.sh's cluster mode (issue 12): one node, one node through Redis
/// and two nodes sharing a private redis-server, a few subscribers each, so
/// that the Redis start, the transport wait and the split client keep working.
#[test]
fn hub_cluster_bench_smoke_run() {
    let out = bench(
        "hub.sh",
        &[
            ("MODE", "cluster"),
            ("SUBS", "50"),
            ("RUNS", "1"),
            ("ROUNDS", "2"),
            ("DURATION", "1"),
        ],
        Duration::from_secs(400),
    );
    assert!(out.contains("## 50 subscribers (25 per node"), "{out}");
    assert!(out.contains("| node B, p99 ms |"), "{out}");
    assert!(out.contains("| deliveries/s |"), "{out}");
}

/// bench/tls.sh (issue 14): Spindle over TLS vs nginx + php-fpm, h1 (wrk)
/// and h2 (h2load). Keeps the certificate, the nginx TLS config, the
/// negotiated-parameters check and the h2load parsing working.
#[test]
fn tls_bench_smoke_run() {
    let out = bench(
        "tls.sh",
        &[
            ("ROUNDS", "1"),
            ("DURATION", "1"),
            ("WARMUP", "1"),
            ("CONNS", "10"),
            ("STRICT", "1"),
        ],
        Duration::from_secs(180),
    );
    assert!(out.contains("| /hello.php | HTTP/2 (h2load) |"), "{out}");
    assert!(out.contains("TLS: TLSv1.3 "), "{out}");
    assert!(out.contains("Failures: none"), "{out}");
}

/// bench/worker.sh (issue 13): a Symfony app's hello route in worker mode,
/// classic mode and under php-fpm + nginx, plus hello from a bare worker
/// script. Every row must have answered 2xx only.
#[test]
fn worker_bench_smoke_run() {
    let out = bench(
        "worker.sh",
        &[("ROUNDS", "1"), ("DURATION", "1"), ("CONNS", "4")],
        Duration::from_secs(180),
    );
    for row in [
        "symfony:classic",
        "symfony:worker",
        "symfony:fpm+nginx",
        "hello.php:classic",
        "hello:bare-worker",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("| {row} |")))
            .unwrap_or_else(|| panic!("no {row} row:\n{out}"));
        assert!(line.ends_with("| 0 |"), "non-2xx answers: {line}");
    }
}
