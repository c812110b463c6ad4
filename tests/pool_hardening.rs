//! The worker pool under the failures an adversarial review found (issue 9):
//! reloads and zygote kills that must cost nothing for longer than the
//! runtime's idle-thread timer, idle workers that die, scripts that lie about
//! their Content-Length, streams that would starve everything else, and
//! shutdown with streams open.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{client, Server};

/// Processes whose parent is `ppid` and whose name starts with `prefix`,
/// with their state letter (Z for a zombie).
fn children(ppid: u32, prefix: &str) -> Vec<(i32, char)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid ..."
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let mut fields = tail.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let parent: u32 = fields.next()?.parse().ok()?;
            let comm = head.split_once(" (")?.1;
            (parent == ppid && comm.starts_with(prefix)).then_some((pid, state))
        })
        .collect()
}

fn zygote_of(s: &Server) -> i32 {
    let z: Vec<_> = children(s.pid(), "spindle-zygote")
        .into_iter()
        .filter(|(_, st)| *st != 'Z')
        .collect();
    assert_eq!(z.len(), 1, "one live zygote: {z:?}");
    z[0].0
}

fn get(s: &Server, path: &str) -> (u16, String) {
    let r = client().get(s.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Requests /hello.php from `threads` threads, each pausing `pause`
/// between requests, for `secs`; returns (ok, failed) with the first failures.
fn load(s: &Server, threads: usize, pause: Duration, secs: u64) -> (u64, u64, Vec<String>) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let end = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (ok, failed, errors) = (ok.clone(), failed.clone(), errors.clone());
            let url = s.url("/hello.php");
            std::thread::spawn(move || {
                let c = client();
                while Instant::now() < end {
                    match c.get(&url).send() {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        r => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut e = errors.lock().unwrap();
                            if e.len() < 5 {
                                e.push(format!("{:?}", r.map(|r| r.status())));
                            }
                        }
                    }
                    std::thread::sleep(pause);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        errors,
    )
}

/// Opens an event stream and counts its events on a thread until `stop`.
fn count_events(s: &Server, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, String)> {
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(
        b"GET /sse/infinite.php?ms=200 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(tcp);
        let mut events = 0;
        let mut line = String::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return (events, "end of stream".into()),
                Ok(_) if line.starts_with("data: tick") => events += 1,
                Ok(_) => {}
                Err(e) => return (events, format!("read: {e}")),
            }
        }
        (events, "stopped".into())
    })
}

/// Issue 9, item 1: the zygote of a reload was started from one of tokio's
/// blocking threads, and PR_SET_PDEATHSIG killed it, and every worker, when
/// that thread exited after 10 s idle. 32 s covers that timer three times.
#[test]
fn after_a_reload_workers_live_on_past_the_idle_thread_timer() {
    let s = Server::start(&["--workers", "3"]);
    assert_eq!(get(&s, "/hello.php").0, 200);
    s.signal(Signal::SIGHUP);
    assert!(s.wait_for_log("reload: new PHP started", Duration::from_secs(20)));
    // A stream opened on a new-generation worker must run through it all.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = count_events(&s, stop.clone());
    let (ok, failed, errors) = load(&s, 2, Duration::from_millis(50), 32);
    stop.store(true, Ordering::Relaxed);
    let (events, end) = stream.join().unwrap();
    assert_eq!(failed, 0, "{errors:?}; log:\n{}", s.log());
    assert!(ok > 100, "only {ok} requests");
    assert_eq!(
        end, "stopped",
        "the stream ended early after {events} events"
    );
    assert!(events > 100, "{events} events in 32 s");
    assert!(!s.log().contains("zygote is gone"), "{}", s.log());
}

/// Issue 9, item 1, the other way in: after a `kill -9` of the zygote, its
/// workers finish what they do, a new zygote starts at once, the old one is
/// reaped, and the pool keeps working for longer than the idle-thread timer.
#[test]
fn a_killed_zygote_costs_no_request_and_leaves_no_zombie() {
    let s = Server::start(&["--workers", "3"]);
    assert_eq!(get(&s, "/hello.php").0, 200);
    let old = zygote_of(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let stream = count_events(&s, stop.clone());
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    });
    let (ok, failed, errors) = load(&s, 2, Duration::from_millis(50), 32);
    killer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (events, end) = stream.join().unwrap();
    assert_eq!(failed, 0, "{errors:?}; log:\n{}", s.log());
    assert!(ok > 100, "only {ok} requests");
    assert_eq!(
        end, "stopped",
        "the stream ended early after {events} events"
    );
    assert!(s.log().contains("the zygote is gone; starting a new one"));
    let new = zygote_of(&s);
    assert_ne!(new, old);
    assert!(
        children(s.pid(), "spindle")
            .iter()
            .all(|(_, st)| *st != 'Z'),
        "zombie children: {:?}",
        children(s.pid(), "spindle")
    );
    // The new zygote forks: a crash is replaced, and both other workers serve.
    assert_eq!(get(&s, "/crash/segv.php").0, 502);
    let end = Instant::now() + Duration::from_secs(10);
    while children(new as u32, "spindle-w").len() < 3 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(children(new as u32, "spindle-w").len(), 3, "{}", s.log());
}

/// Issue 9, item 2: a worker that died while idle never saw the next
/// request, so that request must not fail; /health counts live workers.
#[test]
fn an_idle_worker_that_died_costs_no_request() {
    let s = Server::start(&["--workers", "2", "--admin-listen", "127.0.0.1:0"]);
    let health = s.admin_url("/health");
    for round in 0..10 {
        assert_eq!(get(&s, "/hello.php").0, 200);
        let zygote = zygote_of(&s);
        let workers: Vec<_> = children(zygote as u32, "spindle-w")
            .into_iter()
            .filter(|(_, st)| *st != 'Z')
            .collect();
        let (victim, _) = workers[round % workers.len()];
        kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
        // Wait until it is dead (a zombie or gone): SIGKILL lands a moment
        // after kill() returns, and a request that reaches a worker in that
        // moment can be read by it and die with it, which no server can
        // tell from a crash in PHP. What this tests is a worker that died
        // while idle, before the next request.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let state = std::fs::read_to_string(format!("/proc/{victim}/stat"))
                .ok()
                .and_then(|st| st.rsplit_once(") ").and_then(|(_, t)| t.chars().next()));
            if state.is_none_or(|c| c == 'Z') {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // At once: whichever worker the request meets, it is answered.
        for _ in 0..4 {
            let (status, body) = get(&s, "/hello.php");
            assert_eq!(status, 200, "round {round}: {body}; log:\n{}", s.log());
        }
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut h = String::new();
    while Instant::now() < end {
        h = client().get(&health).send().unwrap().text().unwrap();
        if h.contains("\"workers\":2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(h.contains("\"workers\":2"), "{h}");
    assert!(s.log().contains("an idle worker died"), "{}", s.log());
}

/// Reads one connection to its end (or `limit`), returning what came and
/// whether the server closed it (as opposed to the read timing out).
fn read_all(tcp: &mut TcpStream, limit: Duration) -> (String, bool) {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Issue 9, item 4: a script that declares Content-Length 5 and prints a
/// forged response after it must not split the keep-alive connection: the
/// next pipelined request gets its own answer, not the forged one.
#[test]
fn a_body_longer_than_its_content_length_never_splits_the_response() {
    let s = Server::start(&[]);
    for flush in ["0", "1"] {
        let mut tcp = TcpStream::connect(s.addr).unwrap();
        let req = format!(
            "GET /content_length.php?mode=long&flush={flush} HTTP/1.1\r\nHost: t\r\n\r\n\
             GET /hello.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).unwrap();
        let (out, closed) = read_all(&mut tcp, Duration::from_secs(10));
        assert!(closed, "flush={flush}: the connection hangs: {out:?}");
        assert!(!out.contains("X-Injected"), "flush={flush}: {out:?}");
        let first_body = out.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(
            first_body.starts_with("01234HTTP/1.1 200 OK"),
            "flush={flush}: the first body is 5 bytes, then the next response: {out:?}"
        );
        assert!(
            out.ends_with("Hello, world!\n") || out.contains("Hello"),
            "{out:?}"
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out:?}");
    }
    assert!(s.wait_for_log("sent more than its Content-Length", Duration::from_secs(5)));
    assert!(
        s.log().contains("content_length.php"),
        "the log names the script"
    );
}

/// Issue 9, item 4, the short way: Content-Length 100 with 10 bytes sent
/// used to leave the client waiting for 90 bytes forever. The connection is
/// closed instead, so the client sees an incomplete response at once.
#[test]
fn a_body_shorter_than_its_content_length_closes_the_connection() {
    let s = Server::start(&[]);
    for flush in ["0", "1"] {
        let mut tcp = TcpStream::connect(s.addr).unwrap();
        let req =
            format!("GET /content_length.php?mode=short&flush={flush} HTTP/1.1\r\nHost: t\r\n\r\n");
        tcp.write_all(req.as_bytes()).unwrap();
        let started = Instant::now();
        let (out, closed) = read_all(&mut tcp, Duration::from_secs(10));
        assert!(closed, "flush={flush}: the client is left waiting: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(out.contains("content-length: 100"), "{out:?}");
        assert!(out.ends_with("0123456789"), "{out:?}");
    }
    assert!(s.wait_for_log(
        "declared Content-Length 100 but sent 10 bytes",
        Duration::from_secs(5)
    ));
}

/// Issue 9, item 10: with 2 workers, the default --max-streaming-workers
/// is 1: one EventSource streams, the next ones get 503 at once, and plain
/// pages keep the other worker.
#[test]
fn streams_never_take_the_last_worker() {
    let s = Server::start(&["--workers", "2", "--admin-listen", "127.0.0.1:0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let first = count_events(&s, stop.clone());
    // Wait until the first stream holds its worker.
    let metrics = s.admin_url("/metrics");
    let end = Instant::now() + Duration::from_secs(10);
    while !client()
        .get(&metrics)
        .send()
        .unwrap()
        .text()
        .unwrap()
        .contains("spindle_open_streams 1")
    {
        assert!(Instant::now() < end, "the first stream never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let many: Vec<_> = (0..20)
        .map(|_| {
            let url = s.url("/sse/infinite.php");
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = client()
                    .get(url)
                    .header("Accept", "text/event-stream")
                    .send()
                    .unwrap();
                let retry = r.headers().get("retry-after").is_some();
                (r.status().as_u16(), retry, started.elapsed())
            })
        })
        .collect();
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(get(&s, "/hello.php").0, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    for h in many {
        let (status, retry, took) = h.join().unwrap();
        assert_eq!(status, 503);
        assert!(retry, "503 carries Retry-After");
        assert!(
            took < Duration::from_secs(2),
            "refused at once, took {took:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (events, _) = first.join().unwrap();
    assert!(events > 0);
    let m = client().get(&metrics).send().unwrap().text().unwrap();
    assert!(m.contains("spindle_rejected_streams_total 20"), "{m}");
}

/// Issue 9, item 11: SIGTERM ends event streams cleanly and at once (the
/// script sees the client gone, its shutdown function runs), instead of
/// waiting the whole grace period and then cutting them.
#[test]
fn sigterm_ends_event_streams_cleanly_and_at_once() {
    let marker = format!("spindle-shutdown-{}", std::process::id());
    let marker_path = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&marker_path);
    let mut s = Server::start(&["--shutdown-timeout", "30"]);
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.write_all(
        format!(
            "GET /sse/infinite.php?marker={marker} HTTP/1.1\r\nHost: t\r\n\
             Accept: text/event-stream\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(tcp.try_clone().unwrap());
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    while !line.starts_with("data: tick 2") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0);
    }
    let started = Instant::now();
    s.signal(Signal::SIGTERM);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("a clean end, not a timeout");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.ends_with("0\r\n\r\n"),
        "the stream ends with its last chunk: {rest:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("the master exits");
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let end = Instant::now() + Duration::from_secs(5);
    while !marker_path.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = std::fs::read_to_string(&marker_path).unwrap_or_default();
    let _ = std::fs::remove_file(&marker_path);
    assert_eq!(
        ran, "aborted=1",
        "the script's shutdown function ran, seeing the abort"
    );
}
