//! Worker supervision: crashes cost one request, timeouts, recycling,
//! overload, graceful shutdown, reload without failures, health and metrics.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{client, Server};

fn get(s: &Server, path: &str) -> (u16, String) {
    let r = client().get(s.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn pids(s: &Server, n: usize) -> HashSet<String> {
    (0..n)
        .map(|_| get(s, "/pid.php").1.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_crashing_worker_costs_one_request_and_is_replaced() {
    let s = Server::start(&["--workers", "2"]);
    for path in ["/crash/segv.php", "/crash/kill.php"] {
        // Another request in flight on the other worker is untouched: it is
        // inside PHP (its first line arrived) when the crash happens.
        let (mut slow, head) = support::in_flight(s.addr, "/slow.php?ms=800", "first\n");
        let (status, _) = get(&s, path);
        assert_eq!(status, 502, "{path}");
        let mut out = head;
        out.extend(support::read_until_closed(&mut slow));
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
        assert!(
            out.contains("second\n") && out.ends_with("0\r\n\r\n"),
            "{path}: the other request completes: {out:?}"
        );
        // Both workers serve again, once the replacement is up (it is forked
        // in the background; meanwhile the other worker serves everything).
        for _ in 0..6 {
            assert_eq!(get(&s, "/hello.php").0, 200);
        }
        let end = Instant::now() + Duration::from_secs(10);
        let mut seen = pids(&s, 8);
        while seen.len() < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            seen = pids(&s, 8);
        }
        assert_eq!(seen.len(), 2, "two workers serve after the crash");
    }
    let metrics = s.log();
    assert!(metrics.contains("replacing worker (crash)"), "{metrics}");
}

#[test]
fn a_crash_mid_stream_cuts_the_stream() {
    let s = Server::start(&[]);
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /crash/segv.php?flush=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = support::read_until_closed(&mut tcp);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("partial"), "{out}");
    assert!(
        !out.ends_with("0\r\n\r\n"),
        "a cut stream must not end like a complete one: {out:?}"
    );
    assert_eq!(get(&s, "/hello.php").0, 200);
}

#[test]
fn memory_exhaustion_is_a_500_and_the_worker_lives_on() {
    let s = Server::start(&["--workers", "1"]);
    let before = pids(&s, 1);
    assert_eq!(get(&s, "/crash/memory.php").0, 500);
    assert!(
        s.wait_for_log("Allowed memory size", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(
        pids(&s, 1),
        before,
        "a fatal error does not need a new worker"
    );
}

#[test]
fn endless_scripts_hit_the_request_timeout_and_are_replaced() {
    let s = Server::start(&["--workers", "1", "--request-timeout", "1"]);
    let before = pids(&s, 1);
    let t = Instant::now();
    assert_eq!(get(&s, "/crash/loop.php").0, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
    let after = pids(&s, 1);
    assert_ne!(before, after, "the stuck worker was replaced");
    assert_eq!(get(&s, "/hello.php").0, 200);
}

#[test]
fn workers_are_recycled_after_max_requests_between_requests() {
    let s = Server::start(&["--workers", "1", "--max-requests", "3"]);
    let mut seen = Vec::new();
    for _ in 0..9 {
        let (status, body) = get(&s, "/pid.php");
        assert_eq!(status, 200);
        seen.push(body.split(' ').next().unwrap().to_string());
    }
    // Three requests per process, then a fresh one.
    assert_eq!(seen[0], seen[2]);
    assert_ne!(seen[2], seen[3]);
    assert_eq!(seen[3], seen[5]);
    assert_ne!(seen[5], seen[6]);
}

#[test]
fn workers_over_the_rss_limit_are_recycled_between_requests() {
    // Every PHP worker is larger than 1 MiB, so each is replaced after each
    // request; none of the requests fails.
    let s = Server::start(&["--workers", "1", "--max-worker-rss", "1M"]);
    let mut seen = HashSet::new();
    for _ in 0..4 {
        let (status, body) = get(&s, "/pid.php");
        assert_eq!(status, 200);
        seen.insert(body.split(' ').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(s.log().contains("recycling worker (rss)"), "{}", s.log());
}

#[test]
fn overload_gets_503_with_retry_after() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--queue-size",
        "1",
        "--queue-timeout",
        "1",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let wait = Duration::from_secs(10);
    let busy = {
        let url = s.url("/sleep.php?ms=2500");
        std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16())
    };
    s.wait_for_metric("spindle_workers_busy", 1.0, wait);
    // This one waits in the queue and gives up after --queue-timeout.
    let queued = {
        let url = s.url("/hello.php");
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = client().get(url).send().unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").cloned(),
                t.elapsed(),
            )
        })
    };
    s.wait_for_metric("spindle_queue_depth", 1.0, wait);
    // The queue (size 1) is full: refused at once.
    let r = client().get(s.url("/hello.php")).send().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, retry, took) = queued.join().unwrap();
    assert_eq!(status, 503);
    assert!(retry.is_some());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(get(&s, "/hello.php").0, 200);
    // Each refusal is counted under its cause.
    assert_eq!(s.metric("spindle_rejected_queue_full_total"), Some(1.0));
    assert_eq!(s.metric("spindle_rejected_queue_timeout_total"), Some(1.0));
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let mut s = Server::start(&["--shutdown-timeout", "10"]);
    // The signal comes while the request is inside PHP.
    let (mut inflight, head) = support::in_flight(s.addr, "/slow.php?ms=1500", "first\n");
    s.signal(Signal::SIGTERM);
    let mut out = head;
    out.extend(support::read_until_closed(&mut inflight));
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("second\n") && out.ends_with("0\r\n\r\n"),
        "the in-flight request completes: {out:?}"
    );
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("spindle exits after SIGTERM");
    assert!(st.success(), "{st:?}");
    // New connections are refused once it is gone.
    assert!(TcpStream::connect(s.addr).is_err());
}

#[test]
fn sighup_replaces_every_worker_under_load_without_a_failed_request() {
    let s = Arc::new(Server::start(&["--workers", "2"]));
    let before = pids(&s, 6);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (s, stop, ok, failed) = (s.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let good = c
                        .get(s.url("/hello.php"))
                        .send()
                        .ok()
                        .filter(|r| r.status() == 200)
                        .and_then(|r| r.text().ok())
                        .is_some_and(|t| t == "Hello, World!");
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    s.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(1000));
    s.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reload; log:\n{}",
        s.log()
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    let after = pids(&s, 6);
    assert!(
        before.is_disjoint(&after),
        "every worker was replaced: {before:?} {after:?}"
    );
    assert!(s.log().contains("recycling worker (reload)"));
}

#[test]
fn health_metrics_and_access_log() {
    let s = Server::start(&["--admin-listen", "127.0.0.1:0"]);
    let health = client().get(s.admin_url("/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    let h: serde_json::Value = serde_json::from_str(&health.text().unwrap()).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["workers"], 2);

    for _ in 0..3 {
        assert_eq!(get(&s, "/hello.php").0, 200);
    }
    assert_eq!(get(&s, "/missing.php").0, 404);
    assert_eq!(get(&s, "/crash/kill.php").0, 502);
    let _ = get(&s, "/sse/counter.php?n=2&ms=10");
    // A streamed response is counted when its body ends, which the client
    // may see first; the access line is written just after the metrics.
    assert!(
        s.wait_for_log("path=/sse/counter.php", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    let m = client()
        .get(s.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |prefix: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} not in:\n{m}"))
    };
    assert!(value("spindle_requests_total{code=\"200\"}") >= 4.0, "{m}");
    assert_eq!(value("spindle_requests_total{code=\"404\"}"), 1.0);
    assert_eq!(value("spindle_requests_total{code=\"502\"}"), 1.0);
    assert_eq!(value("spindle_worker_restarts_total{cause=\"crash\"}"), 1.0);
    assert!(value("spindle_request_duration_seconds_count") >= 6.0);
    assert!(value("spindle_streamed_bytes_total") > 0.0);
    assert_eq!(value("spindle_open_streams"), 0.0);
    assert_eq!(value("spindle_queue_depth"), 0.0);
    assert_eq!(
        value("spindle_workers_busy") + value("spindle_workers_idle"),
        2.0
    );

    // One access line per request, with the fields operators grep for.
    assert!(
        s.wait_for_log("path=/hello.php status=200", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("path=/hello.php status=200"))
        .unwrap()
        .to_string();
    for field in [
        "method=GET",
        "bytes=13",
        "duration_ms=",
        "worker=",
        "request=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[test]
fn json_logs() {
    let s = Server::start(&["--log-format", "json"]);
    assert_eq!(get(&s, "/hello.php").0, 200);
    assert!(
        s.wait_for_log("\"path\":\"/hello.php\"", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("\"path\":\"/hello.php\""))
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
}

#[test]
fn workers_drop_root_with_user() {
    if !nix::unistd::geteuid().is_root() {
        // --user needs root. A skip must be asked for (README, "Tests"):
        // a silent return would count as a pass where nothing was tested.
        assert!(
            std::env::var_os("SPINDLE_TEST_NO_ROOT").is_some(),
            "--user needs root; run as root or set SPINDLE_TEST_NO_ROOT=1 to skip"
        );
        eprintln!("SPINDLE_TEST_NO_ROOT set: --user not tested");
        return;
    }
    let s = Server::start(&["--user", "www-data"]);
    let (status, body) = get(&s, "/pid.php");
    assert_eq!(status, 200);
    let uid: u32 = body.split(' ').nth(1).unwrap().parse().unwrap();
    let www = nix::unistd::User::from_name("www-data").unwrap().unwrap();
    assert_eq!(uid, www.uid.as_raw(), "PHP runs as www-data");
    // The master stays root (it owns the socket and supervises).
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let master_uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        master_uid.split_whitespace().nth(1) == Some("0"),
        "{master_uid}"
    );
}

#[test]
fn a_killed_zygote_is_replaced_and_workers_come_back() {
    let s = Server::start(&["--workers", "2"]);
    assert_eq!(get(&s, "/hello.php").0, 200);
    // The zygote is the master's child named spindle-zygote; its workers die
    // with it (PR_SET_PDEATHSIG).
    let zygote: i32 = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid ..."
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, tail)) = stat.rsplit_once(") ") else {
                return false;
            };
            let ppid = tail
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            head.ends_with("(spindle-zygote") && ppid == Some(s.pid())
        })
        .expect("the zygote is a child of the master");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(zygote), Signal::SIGKILL).unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    let mut ok = 0;
    while ok < 4 && Instant::now() < end {
        // Requests in flight at the moment of the kill may get 502; after
        // that, a new zygote forks new workers.
        if get(&s, "/hello.php").0 == 200 {
            ok += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok, 4, "no recovery; log:\n{}", s.log());
    assert!(
        s.log().contains("the zygote is gone; starting a new one"),
        "{}",
        s.log()
    );
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = pids(&s, 6);
    while seen.len() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        seen = pids(&s, 6);
    }
    assert_eq!(seen.len(), 2, "both workers are back");
}
