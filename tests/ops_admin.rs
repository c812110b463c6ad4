//! The operator's view: health endpoints through a graceful stop, the
//! shutdown timeout, SIGINT, the pid file and the runtime's thread count
//! (issue 10, item 7).

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{client, in_flight, read_until_closed, Server, TempDir};

fn health(s: &Server, path: &str) -> (u16, serde_json::Value) {
    let r = client().get(s.admin_url(path)).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn health_live_and_ready_answer_while_serving() {
    let s = Server::start(&["--admin-listen", "127.0.0.1:0"]);
    let (status, v) = health(&s, "/health/ready");
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["workers"], 2, "{v}");
    let r = client().get(s.admin_url("/health/live")).send().unwrap();
    assert_eq!(r.status(), 200);
    // The admin paths are not on the public listener.
    let r = client().get(s.url("/health/live")).send().unwrap();
    assert_eq!(r.status(), 404);
}

/// A stop in progress: /health and /health/ready say 503 shutting_down (so a
/// load balancer stops sending), /health/live still 200, and the request in
/// flight finishes.
#[test]
fn health_answers_503_during_a_graceful_stop() {
    let mut s = Server::start(&["--admin-listen", "127.0.0.1:0", "--shutdown-timeout", "20"]);
    let admin = s.admin_url("");
    let (mut tcp, head) = in_flight(s.addr, "/slow.php?ms=2000", "first\n");
    s.signal(Signal::SIGTERM);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, v) = health(&s, "/health");
        if status == 503 {
            assert_eq!(v["status"], "shutting_down", "{v}");
            break;
        }
        assert_eq!(status, 200);
        assert!(Instant::now() < end, "/health never said 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(health(&s, "/health/ready").0, 503);
    let r = client().get(format!("{admin}/health/live")).send().unwrap();
    assert_eq!(r.status(), 200);
    let mut out = head;
    out.extend(read_until_closed(&mut tcp));
    assert!(
        String::from_utf8_lossy(&out).ends_with("second\n\r\n0\r\n\r\n"),
        "the in-flight request completes: {:?}",
        String::from_utf8_lossy(&out)
    );
    let st = s.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(st.success(), "{st:?}");
}

/// --shutdown-timeout bounds the wait for in-flight requests: a request that
/// would run 20 s is cut after about 1 s and the server exits 0.
#[test]
fn shutdown_timeout_cuts_requests_that_run_too_long() {
    let mut s = Server::start(&["--shutdown-timeout", "1"]);
    let (mut tcp, head) = in_flight(s.addr, "/slow.php?ms=20000", "first\n");
    let t = Instant::now();
    s.signal(Signal::SIGTERM);
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("exits once the shutdown timeout has passed");
    let took = t.elapsed();
    assert!(st.success(), "{st:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "exited after {took:?} with --shutdown-timeout 1"
    );
    let mut out = head;
    out.extend(read_until_closed(&mut tcp));
    let out = String::from_utf8_lossy(&out);
    assert!(!out.contains("second"), "{out:?}");
    assert!(
        !out.ends_with("0\r\n\r\n"),
        "a cut request must not look complete: {out:?}"
    );
}

/// SIGINT (Ctrl-C in a terminal) stops as gracefully as SIGTERM.
#[test]
fn sigint_is_a_graceful_stop() {
    let mut s = Server::start(&["--shutdown-timeout", "10"]);
    let (mut tcp, head) = in_flight(s.addr, "/slow.php?ms=1000", "first\n");
    s.signal(Signal::SIGINT);
    let mut out = head;
    out.extend(read_until_closed(&mut tcp));
    let out = String::from_utf8_lossy(&out);
    assert!(out.ends_with("second\n\r\n0\r\n\r\n"), "{out:?}");
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGINT");
    assert!(st.success(), "{st:?}");
    assert!(std::net::TcpStream::connect(s.addr).is_err());
}

#[test]
fn pid_file_holds_the_masters_pid_for_reloads() {
    let dir = TempDir::new("pidfile");
    let file = dir.path().join("spindle.pid");
    let mut s = Server::start(&["--pid-file", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).expect("pid file written at startup");
    assert_eq!(text.trim(), s.pid().to_string());
    // What the docs tell operators to do with it: kill -HUP $(cat FILE).
    // After a request, so the SIGHUP handler is surely installed (see
    // a_signal_right_after_startup_does_not_kill_the_master).
    assert_eq!(
        client().get(s.url("/hello.php")).send().unwrap().status(),
        200
    );
    let pid: i32 = text.trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    let reloaded = s.wait_for_log("reload: new PHP started", Duration::from_secs(10));
    let exit = s.wait_exit(Duration::from_millis(10));
    assert!(reloaded, "exit: {exit:?}; log:\n{}", s.log());
}

/// The pid file existed and "listening on" was logged before the SIGHUP and
/// SIGTERM handlers were installed (by tasks that ran a moment later), so a
/// signal in that window found the default action and killed the master:
/// measured 1 run in 6 with SIGHUP (the master died of signal 1). A reload sent by a deploy script right after start must not
/// stop the server. Twenty tries make a miss unlikely.
#[test]
fn a_signal_right_after_startup_does_not_kill_the_master() {
    for _ in 0..20 {
        let mut s = Server::start(&[]);
        s.signal(Signal::SIGHUP);
        let reloaded = s.wait_for_log("reload: new PHP started", Duration::from_secs(10));
        let exit = s.wait_exit(Duration::from_millis(10));
        assert!(
            reloaded && exit.is_none(),
            "exit: {exit:?}; log:\n{}",
            s.log()
        );
    }
}

/// Threads of the master process, once it has served a request.
fn threads(extra: &[&str]) -> usize {
    let s = Server::start(extra);
    assert_eq!(
        client().get(s.url("/hello.php")).send().unwrap().status(),
        200
    );
    std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .count()
}

/// --threads N sizes the master's runtime: two more runtime threads are two
/// more threads in the process, and 1 runs the runtime on the main thread.
#[test]
fn threads_sets_the_runtime_size() {
    let one = threads(&["--threads", "1"]);
    let two = threads(&["--threads", "2"]);
    let four = threads(&["--threads", "4"]);
    assert_eq!(
        four - two,
        2,
        "threads: 1 -> {one}, 2 -> {two}, 4 -> {four}"
    );
    assert!(one < two, "threads: 1 -> {one}, 2 -> {two}");
}
