//! Worker mode (issue 13): a worker script boots once and serves requests in
//! a loop on spindle_handle_request(). One test per row of the issue's reset
//! list, each proving that the second request, served by the same process
//! and the same boot, does not see what the first one did; then what
//! persists, errors, timeouts, restarts, boot failures and streaming.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, Server};

/// One worker, so consecutive requests meet the same process.
fn worker_server(extra: &[&str]) -> Server {
    let mut args = vec![
        "--workers",
        "1",
        "--worker",
        "worker/echo.php",
        "-d",
        "expose_php=1",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// What the handler saw: the body's JSON line.
fn seen(body: &str) -> Value {
    let line = body.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

fn get(s: &Server, path: &str) -> (u16, String) {
    let r = client().get(s.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Asserts that `second` was served by the same boot as `first`, right after
/// it: otherwise an isolation test would pass for the wrong reason.
fn same_boot(first: &Value, second: &Value) {
    assert_eq!(first["pid"], second["pid"], "same process");
    assert_eq!(
        first["handled"].as_i64().unwrap() + 1,
        second["handled"].as_i64().unwrap(),
        "same boot, next request: {first} then {second}"
    );
}

#[test]
fn server_variables_are_the_requests_own() {
    let s = worker_server(&[]);
    let r = client()
        .get(s.url("/a?do=pollute"))
        .header("X-Test", "one")
        .send()
        .unwrap();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["x_test"], "one");
    assert_eq!(first["server_leak"], "server");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["x_test"], Value::Null);
    assert_eq!(second["server_leak"], Value::Null);
    assert_eq!(second["uri"], "/b");
}

#[test]
fn get_is_reset() {
    let s = worker_server(&[]);
    let first = seen(&get(&s, "/a?a=1&do=pollute").1);
    assert_eq!(first["get"]["a"], "1");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["get"], serde_json::json!([]));
}

#[test]
fn post_is_reset() {
    let s = worker_server(&[]);
    let r = client()
        .post(s.url("/a?do=pollute"))
        .form(&[("p", "1")])
        .send()
        .unwrap();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["post"]["p"], "1");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["post"], serde_json::json!([]));
    assert_eq!(second["method"], "GET");
}

#[test]
fn files_are_reset_and_their_temporary_files_removed() {
    let s = worker_server(&[]);
    let form = reqwest::blocking::multipart::Form::new().part(
        "up",
        reqwest::blocking::multipart::Part::bytes(b"uploaded".to_vec()).file_name("a.txt"),
    );
    let r = client()
        .post(s.url("/a?do=upload"))
        .multipart(form)
        .send()
        .unwrap();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["files"]["up"], "a.txt");
    let second = seen(&get(&s, "/b?do=pollute").1);
    same_boot(&first, &second);
    assert_eq!(
        second["upload_left"], false,
        "the upload's temp file is gone"
    );
    let third = seen(&get(&s, "/c").1);
    assert_eq!(third["files"], serde_json::json!([]));
}

#[test]
fn cookies_are_reset() {
    let s = worker_server(&[]);
    let r = client()
        .get(s.url("/a?do=pollute"))
        .header("Cookie", "c=1")
        .send()
        .unwrap();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["cookie"]["c"], "1");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["cookie"], serde_json::json!([]));
}

#[test]
fn request_is_reset() {
    let s = worker_server(&[]);
    let first = seen(&get(&s, "/a?r=1&do=pollute").1);
    assert_eq!(first["request"]["r"], "1");
    let second = seen(&get(&s, "/b?other=2").1);
    same_boot(&first, &second);
    assert_eq!(second["request"], serde_json::json!({"other": "2"}));
}

#[test]
fn php_input_is_the_requests_body() {
    let s = worker_server(&[]);
    let r = client()
        .post(s.url("/a"))
        .header("Content-Type", "text/plain")
        .body("the first body")
        .send()
        .unwrap();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["input"], "the first body");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["input"], "");
    let r = client().post(s.url("/c")).body("third").send().unwrap();
    assert_eq!(seen(&r.text().unwrap())["input"], "third");
}

#[test]
fn headers_and_status_are_reset() {
    let s = worker_server(&[]);
    let r = client().get(s.url("/a?do=set")).send().unwrap();
    assert_eq!(r.status().as_u16(), 418);
    assert_eq!(r.headers()["x-first"], "yes");
    let first = seen(&r.text().unwrap());
    let r = client().get(s.url("/b")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-first").is_none());
    let second = seen(&r.text().unwrap());
    same_boot(&first, &second);
    assert_eq!(second["status"], 200);
}

#[test]
fn header_remove_lasts_one_request() {
    let s = worker_server(&[]);
    let r = client().get(s.url("/a?do=set")).send().unwrap();
    assert!(r.headers().get("x-removed").is_none());
    assert!(
        r.headers().get("x-powered-by").is_none(),
        "header_remove('X-Powered-By') worked"
    );
    let first = seen(&r.text().unwrap());
    let r = client().get(s.url("/b")).send().unwrap();
    assert!(
        r.headers()["x-powered-by"]
            .to_str()
            .unwrap()
            .starts_with("PHP/"),
        "expose_php's header is back: {:?}",
        r.headers()
    );
    let second = seen(&r.text().unwrap());
    same_boot(&first, &second);
}

#[test]
fn output_buffers_left_open_are_sent_and_closed() {
    let s = worker_server(&[]);
    let (_, fresh) = get(&s, "/fresh");
    let fresh = seen(&fresh);
    let (status, body) = get(&s, "/a?do=set");
    assert_eq!(status, 418);
    assert!(
        body.starts_with("buffered-unclosed\n"),
        "the open buffer reached the client: {body:?}"
    );
    let first = seen(&body);
    assert_eq!(first["ob_level"], fresh["ob_level"].as_i64().unwrap() + 1);
    let (_, body) = get(&s, "/b");
    assert!(!body.contains("buffered-unclosed"), "{body:?}");
    let second = seen(&body);
    same_boot(&first, &second);
    assert_eq!(second["ob_level"], fresh["ob_level"]);
}

#[test]
fn sessions_never_carry_into_the_next_request() {
    let s = worker_server(&[]);
    let r = client()
        .get(s.url("/a?do=session&v=topsecret"))
        .send()
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let first = seen(&r.text().unwrap());
    assert_eq!(first["session"]["secret"], "topsecret");
    // Another client, no session cookie: nothing of the first session.
    let r = client().get(s.url("/b")).send().unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    let second = seen(&r.text().unwrap());
    same_boot(&first, &second);
    assert_eq!(second["session"], Value::Null, "$_SESSION is gone");
    assert_eq!(second["session_id"], "", "no session id carried over");
    assert_eq!(second["session_status"], 1, "PHP_SESSION_NONE");
    // A new session in a later request starts empty with a new id.
    let r = client().get(s.url("/c?do=resume")).send().unwrap();
    let third = seen(&r.text().unwrap());
    assert_eq!(third["session"], serde_json::json!([]));
    assert_ne!(third["session_id"], first["session_id"]);
    // The first client's session was saved and is still its own.
    let id = cookie.split(';').next().unwrap();
    let r = client()
        .get(s.url("/d?do=resume"))
        .header("Cookie", id)
        .send()
        .unwrap();
    let fourth = seen(&r.text().unwrap());
    assert_eq!(fourth["session"]["secret"], "topsecret");
}

#[test]
fn ini_set_is_restored_to_the_boot_values() {
    let s = worker_server(&[]);
    let first = seen(&get(&s, "/a?do=set").1);
    assert_eq!(first["precision"], "3");
    assert_eq!(first["user_agent"], "set-by-request");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["precision"], "14", "php.ini's value again");
    assert_eq!(
        second["user_agent"], "set-at-boot",
        "what the script set while booting stays"
    );
}

#[test]
fn shutdown_functions_run_at_the_end_of_their_request() {
    let s = worker_server(&[]);
    let (_, body) = get(&s, "/a?do=set");
    assert!(
        body.ends_with("request-shutdown-function-ran\n"),
        "runs at the end of its request: {body:?}"
    );
    let (_, body) = get(&s, "/b");
    assert!(!body.contains("shutdown-function-ran"), "{body:?}");
    assert!(
        !body.contains("boot-shutdown-function-ran"),
        "the boot's wait for the script's end"
    );
}

#[test]
fn errors_of_one_request_are_not_the_next_ones() {
    let s = worker_server(&[]);
    let first = seen(&get(&s, "/a?do=set").1);
    assert_eq!(first["last_error"], "a warning of the first request");
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["last_error"], Value::Null);
}

#[test]
fn globals_and_static_properties_persist_by_design() {
    let s = worker_server(&[]);
    let a = seen(&get(&s, "/a").1);
    let b = seen(&get(&s, "/b").1);
    let c = seen(&get(&s, "/c").1);
    same_boot(&a, &b);
    same_boot(&b, &c);
    assert_eq!(
        c["static"].as_i64().unwrap(),
        a["static"].as_i64().unwrap() + 2
    );
    assert!(
        s.wait_for_log("worker script output: booting", Duration::from_secs(5)),
        "output of the boot goes to the log"
    );
}

#[test]
fn an_uncaught_exception_answers_500_and_the_loop_goes_on() {
    let s = worker_server(&[]);
    let before = seen(&get(&s, "/a").1);
    let (status, _) = get(&s, "/b?do=throw");
    assert_eq!(status, 500);
    assert!(s.wait_for_log(
        "Uncaught RuntimeException: boom from the handler",
        Duration::from_secs(5)
    ));
    let after = seen(&get(&s, "/c").1);
    assert_eq!(after["pid"], before["pid"], "same process");
    assert_eq!(
        after["handled"].as_i64().unwrap(),
        before["handled"].as_i64().unwrap() + 2,
        "same boot"
    );
}

/// Waits until the worker answering is not `old_pid` (the replacement may
/// still be booting when the first request after the failure comes).
fn next_boot(s: &Server, old_pid: &Value) -> Value {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(s, "/again");
        if status == 200 {
            let v = seen(&body);
            if &v["pid"] != old_pid {
                return v;
            }
        }
        assert!(Instant::now() < end, "no fresh worker: {status} {body}");
    }
}

#[test]
fn a_fatal_error_answers_500_and_the_script_is_booted_again() {
    let s = worker_server(&[]);
    let before = seen(&get(&s, "/a").1);
    let (status, _) = get(&s, "/b?do=fatal");
    assert_eq!(status, 500);
    let after = next_boot(&s, &before["pid"]);
    assert_eq!(after["handled"], 1, "a fresh boot");
}

#[test]
fn a_script_that_exits_is_restarted() {
    let s = worker_server(&[]);
    let before = seen(&get(&s, "/a").1);
    let (status, body) = get(&s, "/b?do=exit");
    assert_eq!((status, body.as_str()), (200, "exiting\n"));
    let after = next_boot(&s, &before["pid"]);
    assert_eq!(after["handled"], 1);
}

#[test]
fn the_request_timeout_stops_a_runaway_handler() {
    let s = worker_server(&["--request-timeout", "1"]);
    let before = seen(&get(&s, "/a").1);
    let started = Instant::now();
    let (status, _) = get(&s, "/b?do=sleep");
    assert_eq!(status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    let after = next_boot(&s, &before["pid"]);
    assert_eq!(after["handled"], 1, "the worker was replaced");
}

#[test]
fn a_script_that_fails_at_boot_stops_startup_with_its_error() {
    let docroot = support::fixtures();
    let docroot = docroot.to_str().unwrap();
    let (ok, err) = support::run_to_exit(&[
        "serve",
        docroot,
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--worker",
        "worker/boot_fails.php",
    ]);
    assert!(!ok);
    assert!(
        err.contains("worker script") && err.contains("missing-bootstrap.php"),
        "{err}"
    );
    let (ok, err) = support::run_to_exit(&[
        "serve",
        docroot,
        "--listen",
        "127.0.0.1:0",
        "--worker",
        "worker/no_loop.php",
    ]);
    assert!(!ok);
    assert!(
        err.contains("ended without calling spindle_handle_request()"),
        "{err}"
    );
}

#[test]
fn flush_streams_in_worker_mode() {
    let s = worker_server(&[]);
    let dir = support::TempDir::new("worker-stream");
    let flag = dir.path().join("seen-first");
    let path = format!("/events?do=stream&flag={}", flag.display());
    let started = Instant::now();
    let (mut conn, head) = support::in_flight(s.addr, &path, "data: first\n\n");
    // The second event waits for this file: the first one came on its own.
    assert!(started.elapsed() < Duration::from_secs(8));
    std::fs::write(&flag, b"").unwrap();
    let mut all = head;
    all.extend(support::read_until_closed(&mut conn));
    let all = String::from_utf8_lossy(&all);
    assert!(all.contains("text/event-stream"), "{all}");
    assert!(all.contains("data: second\n\n"), "{all}");
    // The loop goes on after a stream.
    let after = seen(&get(&s, "/after").1);
    assert_eq!(after["get"], serde_json::json!([]));
}

#[test]
fn frankenphp_handle_request_is_the_same_function() {
    let dir = support::TempDir::new("worker-franken");
    std::fs::write(
        dir.path().join("index.php"),
        "<?php\n$n = 0;\nwhile (frankenphp_handle_request(function () use (&$n) { echo ++$n, ' ', $_SERVER['REQUEST_URI'], \"\\n\"; if (isset($_GET['finish'])) { frankenphp_finish_request(); echo \"discarded\\n\"; } })) {}\n",
    )
    .unwrap();
    let s = Server::start_in(dir.path(), &["--workers", "1", "--worker", "index.php"]);
    assert_eq!(get(&s, "/one"), (200, "1 /one\n".into()));
    assert_eq!(get(&s, "/two?x"), (200, "2 /two?x\n".into()));
    assert_eq!(get(&s, "/three?finish"), (200, "3 /three?finish\n".into()));
    assert_eq!(get(&s, "/four"), (200, "4 /four\n".into()));
}

#[test]
fn classic_requests_cannot_call_the_loop() {
    let dir = support::TempDir::new("worker-classic");
    std::fs::write(
        dir.path().join("index.php"),
        "<?php\ntry { spindle_handle_request(fn () => 1); } catch (RuntimeException $e) { echo $e->getMessage(); }\n",
    )
    .unwrap();
    let s = Server::start_in(dir.path(), &["--workers", "1"]);
    let (status, body) = get(&s, "/index.php");
    assert_eq!(status, 200);
    assert!(body.contains("works only in a worker script"), "{body}");
}

#[test]
fn max_requests_recycles_the_script_and_metrics_count_boots() {
    let s = worker_server(&["--max-requests", "3", "--admin-listen", "127.0.0.1:0"]);
    let first: Vec<Value> = (0..3).map(|i| seen(&get(&s, &format!("/{i}")).1)).collect();
    same_boot(&first[0], &first[1]);
    same_boot(&first[1], &first[2]);
    let after = next_boot(&s, &first[0]["pid"]);
    assert_eq!(after["handled"], 1, "a fresh boot after --max-requests");
    s.wait_for_metric(
        "spindle_worker_script_boots_total",
        2.0,
        Duration::from_secs(5),
    );
    s.wait_for_metric(
        "spindle_worker_script_requests_total",
        4.0,
        Duration::from_secs(5),
    );
    s.wait_for_metric(
        "spindle_worker_script_requests_per_boot",
        2.0,
        Duration::from_secs(5),
    );
    let boot = s.metric("spindle_worker_script_boot_seconds").unwrap();
    assert!(boot > 0.0 && boot < 60.0, "{boot}");
}

/// A docroot whose worker script answers the version it read at boot.
fn versioned_docroot(version: &str) -> support::TempDir {
    let dir = support::TempDir::new("worker-reload");
    std::fs::write(
        dir.path().join("worker.php"),
        "<?php\n$version = require __DIR__ . '/version.php';\nwhile (spindle_handle_request(function () use ($version) { echo $version; })) {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("version.php"),
        format!("<?php return '{version}';\n"),
    )
    .unwrap();
    dir
}

#[test]
fn a_reload_boots_new_code_without_failing_a_request() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = versioned_docroot("v1");
    let s = Arc::new(Server::start_in(
        dir.path(),
        &["--workers", "2", "--worker", "worker.php"],
    ));
    assert_eq!(get(&s, "/"), (200, "v1".into()));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop, failed, served) =
                (s.clone(), stop.clone(), failed.clone(), served.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match client().get(s.url("/")).send() {
                        Ok(r) if r.status() == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // New code, then SIGHUP: every worker boots it, between requests.
    std::fs::write(dir.path().join("version.php"), "<?php return 'v2';\n").unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    let end = Instant::now() + Duration::from_secs(15);
    let mut streak = 0;
    while streak < 6 {
        assert!(Instant::now() < end, "never all v2; log:\n{}", s.log());
        if get(&s, "/").1 == "v2" {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    // Broken code: the reload is refused, v2 keeps serving.
    std::fs::write(dir.path().join("version.php"), "<?php syntax error here\n").unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        s.wait_for_log("reload failed", Duration::from_secs(10)),
        "{}",
        s.log()
    );
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(get(&s, "/"), (200, "v2".into()));
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
}

/// Waits until `path` holds `want` (bounded).
fn wait_for_file(path: &std::path::Path, want: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} holds {now:?}, never {want:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_leaves_mid_stream_ends_its_request_and_the_loop_goes_on() {
    let s = worker_server(&[]);
    let dir = support::TempDir::new("worker-abort");
    let note = dir.path().join("note");
    let before = seen(&get(&s, "/a").1);
    let path = format!("/events?do=forever&note={}", note.display());
    let (conn, _) = support::in_flight(s.addr, &path, "data: 1\n\n");
    drop(conn);
    // The handler ends at its next flush (ignore_user_abort is off) and its
    // shutdown function runs with connection_status() ABORTED (1), well
    // before the 10 s the stream would last; the same boot serves on.
    wait_for_file(&note, "shutdown:1\n");
    let after = seen(&get(&s, "/b").1);
    assert_eq!(after["pid"], before["pid"], "same process");
    assert_eq!(
        after["handled"],
        before["handled"].as_i64().unwrap() + 2,
        "same boot: the stream, then this"
    );
}

#[test]
fn with_ignore_user_abort_the_handler_sees_connection_aborted() {
    let s = worker_server(&[]);
    let dir = support::TempDir::new("worker-ignore");
    let note = dir.path().join("note");
    let path = format!("/events?do=forever&ignore=1&note={}", note.display());
    let (conn, _) = support::in_flight(s.addr, &path, "data: 1\n\n");
    drop(conn);
    wait_for_file(&note, "noticed\nshutdown:1\n");
    let after = seen(&get(&s, "/b").1);
    assert_eq!(after["handled"], 2, "same boot");
}

#[test]
fn the_worker_script_comes_from_toml_or_the_environment() {
    let docroot = support::fixtures().join("symfony");
    let dir = support::TempDir::new("worker-config");
    let toml = dir.path().join("spindle.toml");
    std::fs::write(
        &toml,
        format!(
            "docroot = {:?}\nworker = \"worker.php\"\nworkers = 1\nlisten = \"127.0.0.1:0\"\n",
            docroot.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = Server::start_args(
        &[
            "serve".into(),
            "--config".into(),
            toml.display().to_string(),
        ],
        &[],
    );
    assert_eq!(get(&s, "/hello/toml"), (200, "Hello toml\n".into()));
    let s = Server::start_args(
        &[
            "serve".into(),
            docroot.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            "1".into(),
        ],
        &[("SPINDLE_WORKER", "worker.php")],
    );
    assert_eq!(get(&s, "/hello/env"), (200, "Hello env\n".into()));
    let (ok, err) = support::run_to_exit(&[
        "serve",
        docroot.to_str().unwrap(),
        "--worker",
        "missing.php",
    ]);
    assert!(!ok && err.contains("--worker"), "{err}");
}

/// output_add_rewrite_var() (and session.use_trans_sid, which uses the same
/// rewriter) keeps state in the standard module's globals: it must neither
/// carry into the next request nor stop working after the first.
#[test]
fn url_rewrite_variables_are_the_requests_own() {
    let s = worker_server(&[]);
    let (_, first) = get(&s, "/a?do=rewrite&v=leak");
    assert!(first.contains(r#"name="leak""#), "{first}");
    let (_, second) = get(&s, "/b?do=rewrite&v=other");
    assert!(second.contains(r#"name="other""#), "still works: {second}");
    assert!(!second.contains(r#"name="leak""#), "{second}");
    let (_, third) = get(&s, "/c?do=rewrite");
    assert!(
        third.starts_with("<form action=\"page.php\"></form>\n"),
        "{third}"
    );
    same_boot(&seen(&first), &seen(&second));
}

/// putenv() and umask() change the process, which outlives the request
/// here: they are put back as after the boot, as PHP-FPM puts them back.
#[test]
fn putenv_and_umask_are_restored_to_the_boot_values() {
    let s = worker_server(&[]);
    let fresh = seen(&get(&s, "/fresh").1);
    assert_eq!(fresh["env_boot"], "boot");
    let first = seen(&get(&s, "/a?do=set").1);
    assert_eq!(first["env_request"], "first");
    assert_eq!(first["env_boot"], "changed");
    assert_eq!(first["umask"], 0o077);
    let second = seen(&get(&s, "/b").1);
    same_boot(&first, &second);
    assert_eq!(second["env_request"], false);
    assert_eq!(second["env_boot"], "boot", "the boot's putenv() stays");
    assert_eq!(second["umask"], fresh["umask"]);
}

/// spindle_subscribe() in a worker script's handler hands the connection
/// to the hub as in classic mode: the only worker is free at once, and
/// serves the publish the subscriber then receives.
#[test]
fn a_handoff_from_the_handler_frees_the_worker() {
    use std::io::{Read, Write};

    let dir = support::TempDir::new("worker-hub");
    std::fs::write(
        dir.path().join("worker.php"),
        r#"<?php
$handler = function () {
    if ($_SERVER['REQUEST_URI'] === '/sub') {
        spindle_subscribe('https://example.com/w');
    } else {
        echo spindle_publish('https://example.com/w', $_GET['data'] ?? '');
    }
};
while (spindle_handle_request($handler)) {}
"#,
    )
    .unwrap();
    let s = Server::start_in(
        dir.path(),
        &["--hub", "--workers", "1", "--worker", "worker.php"],
    );
    let mut tcp = std::net::TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        tcp,
        "GET /sub HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // The hub holds the subscriber now; the one worker publishes.
    let (status, id) = get(&s, "/pub?data=from-the-worker");
    assert_eq!(status, 200, "{id}");
    while !String::from_utf8_lossy(&got).contains("data: from-the-worker") {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains(&format!("id: {id}")));
    // And the loop goes on.
    assert_eq!(get(&s, "/pub?data=again").0, 200);
}

/// `--worker-match`: a server with one worker-script process and one
/// classic process (`--worker-processes 1`), the script taking `/api/*` and
/// `/app/*`.
fn matched_server() -> Server {
    Server::start(&[
        "--workers",
        "2",
        "--worker",
        "worker/echo.php",
        "--worker-match",
        "/api/*",
        "--worker-match",
        "/app/*",
        "--worker-processes",
        "1",
        "--admin-listen",
        "127.0.0.1:0",
    ])
}

/// The classic pid.php's answer: (pid, worker id).
fn classic_pid(s: &Server) -> (String, String) {
    let (status, body) = get(s, "/pid.php");
    assert_eq!(status, 200, "{body}");
    assert!(!body.starts_with('{'), "pid.php ran classic: {body}");
    let f: Vec<&str> = body.split(' ').collect();
    (f[0].to_string(), f[2].to_string())
}

#[test]
fn worker_match_sends_only_matching_paths_to_the_worker_script() {
    let s = matched_server();
    // Matching paths go to the worker script, front-controller style:
    // missing files, an existing .php file, a percent-encoded path.
    let first = seen(&get(&s, "/api/users?x=1").1);
    assert_eq!(first["uri"], "/api/users?x=1");
    let second = seen(&get(&s, "/app/other.php").1);
    same_boot(&first, &second);
    let third = seen(&get(&s, "/%61pi/encoded").1);
    same_boot(&second, &third);

    // The rest is classic: each script runs on its own, in the other
    // process; a missing path is a plain 404 (no front controller).
    let (pid, worker_id) = classic_pid(&s);
    assert_ne!(pid, first["pid"].to_string(), "a classic process");
    assert_eq!(worker_id, "2");
    let (status, body) = get(&s, "/hello.php");
    assert_eq!((status, body.trim()), (200, "Hello, World!"));
    assert_eq!(get(&s, "/no/such/path").0, 404);
    // Static files under a matched path are still the master's.
    let (status, css) = get(&s, "/app/assets/app.css");
    assert_eq!(status, 200);
    assert_eq!(
        css,
        std::fs::read_to_string(support::fixtures().join("app/assets/app.css")).unwrap()
    );
    // The worker script's metrics count only its own requests.
    assert_eq!(s.metric("spindle_worker_script_requests_total"), Some(3.0));
    assert_eq!(s.metric("spindle_worker_script_boots_total"), Some(1.0));
}

#[test]
fn with_worker_match_each_kind_of_worker_is_replaced_by_its_own_kind() {
    let s = matched_server();
    let booted = seen(&get(&s, "/api/a").1);
    let (classic, _) = classic_pid(&s);

    // The worker script exits: its replacement boots the script again.
    let (status, _) = get(&s, "/api/b?do=exit");
    assert_eq!(status, 200);
    let end = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let (status, body) = get(&s, "/api/again");
        if status == 200 && seen(&body)["pid"] != booted["pid"] {
            break seen(&body);
        }
        assert!(Instant::now() < end, "no fresh worker: {status} {body}");
    };
    assert_eq!(after["handled"], 1, "booted afresh: {after}");
    assert_eq!(
        classic_pid(&s).0,
        classic,
        "the classic process is untouched"
    );

    // A classic process that crashes comes back classic.
    let (status, _) = get(&s, "/crash/segv.php");
    assert_eq!(status, 502);
    let end = Instant::now() + Duration::from_secs(10);
    let replaced = loop {
        let (pid, id) = classic_pid(&s);
        if pid != classic {
            break (pid, id);
        }
        assert!(Instant::now() < end, "the classic worker was not replaced");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(replaced.1, "2");
    let still = seen(&get(&s, "/api/c").1);
    same_boot(&after, &still);
    assert_eq!(s.metric("spindle_worker_script_boots_total"), Some(2.0));

    // A reload replaces both, each by its own kind.
    s.signal(nix::sys::signal::Signal::SIGHUP);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(&s, "/api/d");
        if status == 200 && seen(&body)["pid"] != still["pid"] {
            assert_eq!(seen(&body)["handled"], 1, "booted afresh: {body}");
            break;
        }
        assert!(Instant::now() < end, "no reload: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let (pid, id) = classic_pid(&s);
        if pid != replaced.0 {
            assert_eq!(id, "2");
            break;
        }
        assert!(Instant::now() < end, "the classic worker was not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// --max-streaming-workers counts each kind of worker on its own: streams
/// to classic scripts never take the last classic worker, whatever the
/// worker-script processes do, and the other way round.
#[test]
fn with_worker_match_each_kind_keeps_a_worker_free_of_streams() {
    use support::sse::Stream;
    let s = Server::start(&[
        "--workers",
        "3",
        "--worker",
        "worker/echo.php",
        "--worker-match",
        "/api/*",
        "--worker-processes",
        "1",
    ]);
    // Two classic workers: one may stream.
    let mut classic = Stream::open_sse(&s, "/sse/infinite.php?ms=200", "");
    assert!(classic.head()[0].starts_with("http/1.1 200"));
    assert_eq!(classic.event()[0], "id: 1");
    let mut refused = Stream::open_sse(&s, "/sse/infinite.php", "");
    let head = refused.head();
    assert!(head[0].starts_with("http/1.1 503"), "{head:?}");
    assert!(
        head.iter().any(|h| h.starts_with("retry-after:")),
        "{head:?}"
    );
    let (status, body) = get(&s, "/hello.php");
    assert_eq!((status, body.trim()), (200, "Hello, World!"));
    // The one worker-script process may stream: the classic stream holds
    // no place among its kind's.
    let mut script = Stream::open_sse(&s, "/api/events?do=forever", "");
    assert!(script.head()[0].starts_with("http/1.1 200"));
    assert_eq!(script.event(), vec!["data: 0".to_string()]);
    assert_eq!(classic.event()[0], "id: 2", "the classic stream goes on");
}
