//! The streaming flush bridge: flush() reaches the client at once, SSE
//! framing, keep-alive comments, heartbeats and timeouts, finish_request,
//! and workers released when clients disconnect.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::sse::Stream;
use support::{client, Server};

#[test]
fn first_flush_arrives_while_the_script_still_runs() {
    let s = Server::start(&[]);
    let mut st = Stream::open(&s, "/slow.php?ms=1500", "");
    let head = st.head();
    assert!(head[0].starts_with("http/1.1 200"), "{head:?}");
    assert!(
        head.iter().any(|h| h == "transfer-encoding: chunked"),
        "{head:?}"
    );
    assert!(
        !head.iter().any(|h| h.starts_with("content-length")),
        "{head:?}"
    );
    let (first, t1) = st.line().unwrap();
    assert_eq!(first, "first");
    let (second, t2) = st.line().unwrap();
    assert_eq!(second, "second");
    assert!(
        t1 < Duration::from_millis(900),
        "first line took {t1:?}; flush() must not wait for the script"
    );
    assert!(t2 >= Duration::from_millis(1400), "second line at {t2:?}");
}

#[test]
fn flush_works_with_output_buffering_on() {
    // Debian's php.ini sets output_buffering=4096; make it explicit.
    let s = Server::start(&["-d", "output_buffering=4096"]);
    let mut st = Stream::open(&s, "/slow.php?ms=1200", "");
    st.head();
    let (first, t) = st.line().unwrap();
    assert_eq!(first, "first");
    assert!(
        t < Duration::from_millis(800),
        "flush() was swallowed by output_buffering: {t:?}"
    );
}

#[test]
fn implicit_flush_sends_every_echo() {
    let s = Server::start(&[]);
    let mut st = Stream::open(&s, "/implicit.php", "");
    st.head();
    let (first, t) = st.line().unwrap();
    assert_eq!(first, "first");
    assert!(t < Duration::from_millis(900), "{t:?}");
    assert_eq!(st.line().unwrap().0, "second");
}

#[test]
fn flush_leaves_the_scripts_own_ob_start_buffer_alone() {
    let s = Server::start(&[]);
    let mut st = Stream::open(&s, "/user_buffer.php", "");
    st.head();
    let (a, ta) = st.line().unwrap();
    let (b, tb) = st.line().unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("buffered", "released"));
    // Both left together, at ob_flush(), not at the first flush().
    assert!(ta >= Duration::from_millis(700), "{ta:?}");
    assert!(tb - ta < Duration::from_millis(200), "{ta:?} {tb:?}");
    let (c, tc) = st.line().unwrap();
    assert_eq!(c, "end");
    assert!(tc - tb >= Duration::from_millis(700));
}

#[test]
fn sse_events_arrive_one_by_one_with_sse_headers() {
    let s = Server::start(&[]);
    let mut st = Stream::open(
        &s,
        "/sse/counter.php?n=4&ms=300",
        "Accept: text/event-stream\r\n",
    );
    let head = st.head();
    assert!(
        head.iter()
            .any(|h| h.starts_with("content-type: text/event-stream")),
        "{head:?}"
    );
    assert!(
        head.contains(&"cache-control: no-cache".to_string()),
        "{head:?}"
    );
    assert!(
        head.contains(&"x-accel-buffering: no".to_string()),
        "{head:?}"
    );
    assert!(
        !head.iter().any(|h| h.starts_with("content-length")),
        "{head:?}"
    );
    let events = st.data_lines();
    let data: Vec<_> = events.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(data, ["data: 1", "data: 2", "data: 3", "data: 4"]);
    for w in events.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            gap > Duration::from_millis(150),
            "events were batched: {events:?}"
        );
    }
    // Without Accept: text/event-stream the same script is plain HTML.
    let r = client().get(s.url("/sse/counter.php?n=1")).send().unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn sse_fields_pass_through_byte_for_byte_and_last_event_id_reaches_php() {
    let s = Server::start(&[]);
    let r = client()
        .get(s.url("/sse/named.php"))
        .header("Last-Event-ID", "g0")
        .send()
        .unwrap();
    // PHP appends its default_charset to text/* types, as under FPM.
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(r.headers().get("content-length").is_none());
    let body = r.text().unwrap();
    let expected = concat!(
        "retry: 1500\n\n",
        ": a comment line\n\n",
        "event: greeting\nid: g1\ndata: {\"hello\":\"world\",\"n\":1}\n\n",
        "event: multi\ndata: line one\ndata: line two\n\n",
        "data: {\"last_event_id\":\"g0\"}\n\n",
    );
    assert_eq!(body, expected);
}

#[test]
fn curl_n_streams_sse_fixtures() {
    let s = Server::start(&[]);
    let start = Instant::now();
    let mut child = std::process::Command::new("curl")
        .args(["-sN", "--max-time", "20", "-H", "Accept: text/event-stream"])
        .arg(s.url("/sse/progress.php?steps=4&ms=300"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed by scripts/deps.sh test");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    // Skip to the first data line.
    loop {
        first.clear();
        out.read_line(&mut first).unwrap();
        if first.starts_with("data:") {
            break;
        }
    }
    let t_first = start.elapsed();
    assert!(first.contains("\"percent\":0"), "{first}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    assert!(rest.contains("\"percent\":100"), "{rest}");
    assert!(rest.ends_with("event: done\ndata: {}\n\n"), "{rest}");
    assert!(
        t_first < Duration::from_millis(1000),
        "first event under curl -N took {t_first:?}"
    );
}

#[test]
fn quiet_sse_streams_get_keepalive_comments_between_events() {
    let s = Server::start(&["--sse-keepalive", "1"]);
    let mut st = Stream::open(&s, "/sse/quiet.php?quiet=3", "");
    st.head();
    let mut lines = Vec::new();
    while let Some((l, _)) = st.line() {
        lines.push(l);
    }
    let text = lines.join("\n");
    let first = text.find("data: first").expect(&text);
    let last = text.find("data: last").expect(&text);
    let keepalives = text.matches(": keep-alive").count();
    assert!(
        keepalives >= 2,
        "expected keep-alive comments in a 3 s silence: {text:?}"
    );
    let k = text.find(": keep-alive").unwrap();
    assert!(first < k && k < last, "{text:?}");
    // Each comment stands alone between events: never inside one.
    for block in text.split("\n\n") {
        if block.contains(": keep-alive") {
            assert_eq!(block.trim(), ": keep-alive", "{text:?}");
        }
    }

    // 0 disables them.
    let s = Server::start(&["--sse-keepalive", "0"]);
    let body = client()
        .get(s.url("/sse/quiet.php?quiet=2"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!body.contains("keep-alive"), "{body}");
}

#[test]
fn heartbeat_extends_the_deadline_and_timeouts_answer_504() {
    let s = Server::start(&["--request-timeout", "1", "--max-heartbeat", "10"]);
    let c = client();
    // Sleeps 2.5 s with a 1 s timeout, but keeps calling the heartbeat.
    let r = c
        .get(s.url("/sleep.php?ms=2500&heartbeat=2"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "awake heartbeat=true");
    // Without the heartbeat: 504, and the worker is replaced.
    let t = Instant::now();
    let r = c.get(s.url("/sleep.php?ms=3000")).send().unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    for _ in 0..4 {
        assert_eq!(c.get(s.url("/hello.php")).send().unwrap().status(), 200);
    }
    // A streamed response past its deadline is cut, not completed.
    let mut st = Stream::open(&s, "/slow.php?ms=3000", "");
    st.head();
    assert_eq!(st.line().unwrap().0, "first");
    let rest = support::read_until_closed(&mut st.reader);
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("second"), "{rest}");
    assert!(
        !rest.ends_with("0\r\n\r\n"),
        "a cut stream must not look complete: {rest:?}"
    );
}

#[test]
fn tokio_functions() {
    let s = Server::start(&["--request-timeout", "30", "--max-heartbeat", "60"]);
    let v: serde_json::Value = support::json(client().get(s.url("/functions.php")).send().unwrap());
    assert!(v["request_id"].as_u64().unwrap() >= 1);
    let w = v["worker_id"].as_u64().unwrap();
    assert!(w == 1 || w == 2, "{v}");
    assert_eq!(v["info"]["server"], "Spindle");
    assert_eq!(v["info"]["sapi"], "fpm-fcgi");
    assert_eq!(v["heartbeat_ok"], true);
    assert_eq!(v["heartbeat_too_long"], false);
    // Timeouts off: the heartbeat has nothing to extend.
    let s = Server::start(&["--request-timeout", "0"]);
    let v: serde_json::Value = support::json(client().get(s.url("/functions.php")).send().unwrap());
    assert_eq!(v["heartbeat_ok"], false);
}

#[test]
fn finish_request_completes_the_response_while_the_script_continues() {
    let s = Server::start(&[]);
    let marker = format!("spindle-finish-{}", std::process::id());
    let path = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&path);
    let t = Instant::now();
    let r = client()
        .get(s.url(&format!("/finish.php?marker={marker}")))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "response done");
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "the client waited for the script: {:?}",
        t.elapsed()
    );
    assert!(!path.exists());
    let end = Instant::now() + Duration::from_secs(5);
    while !path.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "after");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn disconnected_streams_release_their_workers() {
    let workers = 3;
    let s = Server::start(&["--workers", "3"]);
    let tag = format!("spindle-abort-{}", std::process::id());
    let markers: Vec<_> = (0..workers)
        .map(|i| std::env::temp_dir().join(format!("{tag}-{i}")))
        .collect();
    for m in &markers {
        let _ = std::fs::remove_file(m);
    }
    // Occupy every worker with an infinite stream.
    let mut streams: Vec<Stream> = (0..workers)
        .map(|i| {
            let mut st = Stream::open(
                &s,
                &format!("/sse/infinite.php?ms=100&marker={tag}-{i}"),
                "",
            );
            st.head();
            assert!(st.line().is_some());
            st
        })
        .collect();
    // Drop them all.
    streams.clear();
    let dropped = Instant::now();
    // Every script notices at its next flush and ends (shutdown functions run).
    for m in &markers {
        while !m.exists() && dropped.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            std::fs::read_to_string(m).unwrap_or_default(),
            "aborted=1",
            "{m:?}"
        );
    }
    assert!(
        dropped.elapsed() < Duration::from_millis(1500),
        "{:?}",
        dropped.elapsed()
    );
    // And new requests are served by the freed workers.
    for _ in 0..(2 * workers) {
        let r = client().get(s.url("/hello.php")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    for m in &markers {
        let _ = std::fs::remove_file(m);
    }
}

#[test]
fn ignore_user_abort_keeps_the_script_running() {
    let s = Server::start(&[]);
    let tag = format!("spindle-ignore-{}", std::process::id());
    let ignored = std::env::temp_dir().join(format!("{tag}.ignored"));
    let _ = std::fs::remove_file(&ignored);
    let mut st = Stream::open(
        &s,
        &format!("/sse/infinite.php?ms=100&ignore_abort=1&marker={tag}"),
        "",
    );
    st.head();
    st.line();
    drop(st);
    let end = Instant::now() + Duration::from_secs(5);
    while !ignored.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The loop saw connection_aborted() == 1 and left on its own terms.
    assert_eq!(
        std::fs::read_to_string(&ignored).unwrap_or_default(),
        "still running after abort"
    );
    let _ = std::fs::remove_file(&ignored);
    let _ = std::fs::remove_file(std::env::temp_dir().join(&tag));
}

#[test]
fn a_slow_reader_slows_the_script_instead_of_growing_memory() {
    let s = Server::start(&["--workers", "1"]);
    // The master's memory at rest, after one request has warmed it up.
    assert_eq!(
        client().get(s.url("/hello.php")).send().unwrap().status(),
        200
    );
    let baseline = rss_kib(s.pid());
    let progress_name = format!("spindle-progress-{}", std::process::id());
    let progress = std::env::temp_dir().join(&progress_name);
    let _ = std::fs::remove_file(&progress);
    let mib_done = || -> u64 {
        std::fs::read_to_string(&progress)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    // 64 MiB of output; the client reads only the head, then stalls.
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    write!(
        tcp,
        "GET /big.php?kb=65536&progress={progress_name} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let first = tcp.read(&mut buf).unwrap();
    // The script is held back: its progress stops advancing, well short of
    // the end, while nothing is read (the buffers between it and the client
    // are full). Waits for two equal readings 300 ms apart.
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = u64::MAX;
    let held_at = loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = mib_done();
        if now == last {
            break now;
        }
        assert!(Instant::now() < end, "the script never stalled ({now} MiB)");
        last = now;
    };
    assert!(
        held_at < 32,
        "the script produced {held_at} of 64 MiB for a client that reads nothing"
    );
    // And the master did not buffer what the script produced: its memory
    // stays near the baseline (measured: about +11 MiB, for the mapped output
    // buffer and the channel; a buffered response would be +64 MiB).
    let rss = rss_kib(s.pid());
    eprintln!("held at {held_at} MiB; master RSS {baseline} KiB at rest, {rss} KiB stalled");
    assert!(
        rss < baseline + 20 * 1024,
        "master RSS {rss} KiB (baseline {baseline} KiB) while a 64 MiB response is stalled"
    );
    // Reading everything still delivers the whole response, and the script
    // ran to its end.
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = buf[..first].to_vec();
    out.extend(support::read_until_closed(&mut tcp));
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = dechunk(&out[body_at..]);
    assert_eq!(body.len(), 64 << 20, "the whole response arrived");
    assert_eq!(mib_done(), 64);
    let _ = std::fs::remove_file(&progress);
}

/// The body of a complete chunked response; panics if it is not complete.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size = std::str::from_utf8(&raw[..eol]).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + n]);
        raw = &raw[eol + 2 + n + 2..];
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_stalled_stream_cut_by_the_timeout_never_looks_complete() {
    // The client stops reading, the buffers fill, the deadline passes while
    // the response channel is full: the cut must still reach the client as
    // a broken stream, not as a clean (truncated) end.
    let s = Server::start(&["--workers", "1", "--request-timeout", "1"]);
    let mut tcp = TcpStream::connect(s.addr).unwrap();
    tcp.write_all(b"GET /big.php?kb=65536 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    let n = tcp.read(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    std::thread::sleep(Duration::from_millis(2500));
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    out.extend(support::read_until_closed(&mut tcp));
    assert!(
        out.len() < 64 * 1024 * 1024,
        "the timeout should have cut the response"
    );
    assert!(
        !out.ends_with(b"0\r\n\r\n"),
        "a cut stream ended like a complete one"
    );
    // The worker was replaced and serves again.
    assert_eq!(
        client().get(s.url("/hello.php")).send().unwrap().status(),
        200
    );
}
