//! The hub from PHP (issue 11, items 2 and 3): `spindle_publish()` and
//! `mercure_publish()` over the worker's control socket, and
//! `spindle_subscribe()` handing the request's connection to the master's
//! hub so the worker is free at once. Real server, real sockets, and a real
//! browser's EventSource.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::sse::Stream;
use support::{client, Server, TempDir};

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    head.iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::trim)
}

/// POSTs `form` to publish.php; (status, body).
fn publish(s: &Server, form: &[(&str, &str)]) -> (u16, String) {
    let r = client()
        .post(s.url("/hub/publish.php"))
        .form(form)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn published(s: &Server, form: &[(&str, &str)]) -> String {
    let (status, body) = publish(s, form);
    assert_eq!(status, 200, "{body}\n{}", s.log());
    body
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const NEWS: &str = "https://example.com/news";

#[test]
fn a_handoff_receives_what_php_publishes_event_by_event() {
    let s = Server::start(&["--hub"]);
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php?retry=1500", "");
    let head = st.head();
    assert!(head[0].starts_with("http/1.1 200"), "{head:?}");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    assert_eq!(header(&head, "last-event-id"), None, "no replay was asked");
    assert_eq!(st.event(), lines(&["retry: 1500"]));

    // Another topic first: not for this subscriber.
    let other = published(&s, &[("topic", "https://example.com/other"), ("data", "x")]);
    assert!(other.starts_with("urn:uuid:"), "{other}");
    let id = published(
        &s,
        &[
            ("topic", NEWS),
            ("data", "line 1\nline 2\r\nline 3"),
            ("type", "greet"),
            ("retry", "500"),
        ],
    );
    assert!(id.starts_with("urn:uuid:"), "{id}");
    assert_eq!(
        st.event(),
        lines(&[
            &format!("id: {id}"),
            "event: greet",
            "retry: 500",
            "data: line 1",
            "data: line 2",
            "data: line 3",
        ])
    );
    let id2 = published(&s, &[("topic", NEWS), ("data", "two"), ("id", "e-2")]);
    assert_eq!(id2, "e-2");
    assert_eq!(st.event(), lines(&["id: e-2", "data: two"]));
}

#[test]
fn fifty_handoffs_leave_the_single_worker_free() {
    let s = Server::start(&["--hub", "--workers", "1"]);
    let mut streams = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..50 {
        let mut st = Stream::open_sse(&s, "/hub/subscribe.php", "");
        let head = st.head();
        assert!(head[0].starts_with("http/1.1 200"), "{head:?}\n{}", s.log());
        pids.push(header(&head, "x-worker-pid").unwrap().to_string());
        streams.push(st);
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "one worker served every hand-off: {pids:?}");

    let t = Instant::now();
    let r = client().get(s.url("/pid.php")).send().unwrap();
    let took = t.elapsed();
    let body = r.text().unwrap();
    assert_eq!(
        body.split(' ').next(),
        Some(pids[0].as_str()),
        "same worker"
    );
    assert!(
        took < Duration::from_millis(500),
        "a plain request took {took:?} with 50 hand-offs open"
    );

    let id = published(&s, &[("topic", NEWS), ("data", "to all")]);
    for st in &mut streams {
        assert_eq!(st.event(), lines(&[&format!("id: {id}"), "data: to all"]));
    }
}

#[test]
fn a_handoff_replays_after_last_event_id_and_says_so() {
    let s = Server::start(&["--hub"]);
    for (id, data) in [("e1", "one"), ("e2", "two"), ("e3", "three")] {
        published(&s, &[("topic", NEWS), ("data", data), ("id", id)]);
    }
    // The request's Last-Event-ID header, as an EventSource sends it.
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php", "Last-Event-ID: e1\r\n");
    let head = st.head();
    assert_eq!(header(&head, "last-event-id"), Some("e1"), "{head:?}");
    assert_eq!(st.event(), lines(&["id: e2", "data: two"]));
    assert_eq!(st.event(), lines(&["id: e3", "data: three"]));
    published(&s, &[("topic", NEWS), ("data", "four"), ("id", "e4")]);
    assert_eq!(st.event(), lines(&["id: e4", "data: four"]));

    // The option wins over the header.
    let mut st = Stream::open_sse(
        &s,
        "/hub/subscribe.php?last_event_id=e3",
        "Last-Event-ID: e1\r\n",
    );
    assert_eq!(header(&st.head(), "last-event-id"), Some("e3"));
    assert_eq!(st.event(), lines(&["id: e4", "data: four"]));

    // An id the hub does not know: everything kept, and "earliest".
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php", "Last-Event-ID: nope\r\n");
    assert_eq!(header(&st.head(), "last-event-id"), Some("earliest"));
    assert_eq!(st.event(), lines(&["id: e1", "data: one"]));
}

#[test]
fn private_updates_reach_only_handoffs_allowed_to_see_them() {
    let s = Server::start(&["--hub"]);
    let books = "https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D";
    let mut allowed = Stream::open_sse(
        &s,
        &format!("/hub/subscribe.php?topic={books}&private={books}"),
        "",
    );
    allowed.head();
    let mut public_only = Stream::open_sse(&s, &format!("/hub/subscribe.php?topic={books}"), "");
    public_only.head();
    let mut other_private = Stream::open_sse(
        &s,
        &format!(
            "/hub/subscribe.php?topic={books}&private=https%3A%2F%2Fexample.com%2Fusers%2F%7Bid%7D"
        ),
        "",
    );
    other_private.head();

    let book = "https://example.com/books/1";
    published(
        &s,
        &[
            ("topic", book),
            ("data", "secret"),
            ("id", "p1"),
            ("private", "1"),
        ],
    );
    published(&s, &[("topic", book), ("data", "public"), ("id", "q1")]);
    assert_eq!(allowed.event(), lines(&["id: p1", "data: secret"]));
    assert_eq!(allowed.event(), lines(&["id: q1", "data: public"]));
    // The next event these two see is the public one: the private one
    // never reached them.
    assert_eq!(public_only.event(), lines(&["id: q1", "data: public"]));
    assert_eq!(other_private.event(), lines(&["id: q1", "data: public"]));
}

#[test]
fn the_scripts_headers_and_output_go_out_before_the_stream() {
    let s = Server::start(&["--hub"]);
    // Echoed, not flushed: the output travels with the head and goes first.
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php?echo=1", "");
    let head = st.head();
    assert!(
        head.contains(&"set-cookie: session=abc123".to_string()),
        "{head:?}"
    );
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(st.block(), Some(lines(&[": echoed"])));
    published(&s, &[("topic", NEWS), ("data", "after"), ("id", "a1")]);
    assert_eq!(st.event(), lines(&["id: a1", "data: after"]));

    // Flushed before spindle_subscribe(): the head left already, and the
    // hub stream continues the open response.
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php?flush=1", "");
    let head = st.head();
    assert!(
        head.contains(&"set-cookie: session=abc123".to_string()),
        "{head:?}"
    );
    assert_eq!(st.block(), Some(lines(&[": before the hand-off"])));
    published(&s, &[("topic", NEWS), ("data", "later"), ("id", "a2")]);
    assert_eq!(st.event(), lines(&["id: a2", "data: later"]));
}

#[test]
fn publishing_and_subscribing_without_the_hub_throw_and_say_so() {
    let s = Server::start(&[]);
    let (status, body) = publish(&s, &[("topic", NEWS), ("data", "x")]);
    assert_eq!(status, 400);
    assert!(
        body.starts_with("RuntimeException: the hub is off") && body.contains("--hub"),
        "{body}"
    );
    let r = client().get(s.url("/hub/subscribe.php")).send().unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().unwrap();
    assert!(
        body.starts_with("RuntimeException: the hub is off") && body.contains("--hub"),
        "{body}"
    );
}

#[test]
fn bad_input_throws_with_the_reason() {
    let s = Server::start(&["--hub"]);
    let (status, body) = publish(&s, &[("data", "no topic")]);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "RuntimeException: invalid update: an update needs a topic"
    );
    let (status, body) = publish(&s, &[("topic", NEWS), ("id", "#1")]);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "RuntimeException: invalid update: an id must not start with '#'"
    );
    let (status, body) = publish(&s, &[("topic", NEWS), ("retry", "-5")]);
    assert_eq!(status, 400);
    assert_eq!(body, "RuntimeException: retry must not be negative");

    let r = client()
        .get(s.url("/hub/subscribe.php?topic=https%3A%2F%2Fexample.com%2F%7Bid"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().unwrap();
    assert!(
        body.starts_with("RuntimeException: invalid topic selector: unclosed '{'"),
        "{body}"
    );
    let r = client().get(s.url("/hub/bad_option.php")).send().unwrap();
    let body = r.text().unwrap();
    assert_eq!(
        body,
        "ValueError: spindle_subscribe(): Argument #2 ($options) has an unknown option \"privat\""
    );
    // The worker that threw is fine: the hub still works.
    let mut st = Stream::open_sse(&s, "/hub/subscribe.php", "");
    st.head();
    published(&s, &[("topic", NEWS), ("data", "ok"), ("id", "ok")]);
    assert_eq!(st.event(), lines(&["id: ok", "data: ok"]));
}

#[test]
fn mercure_publish_takes_frankenphps_arguments() {
    let s = Server::start(&["--hub"]);
    let mut st = Stream::open_sse(
        &s,
        "/hub/subscribe.php?topic=https%3A%2F%2Fexample.com%2Falt",
        "",
    );
    st.head();
    let r = client().get(s.url("/hub/mercure.php")).send().unwrap();
    assert_eq!(r.text().unwrap(), "m-1");
    assert_eq!(
        st.event(),
        lines(&["id: m-1", "event: book", "retry: 250", "data: from mercure"])
    );
}

#[test]
fn chromium_eventsource_receives_what_php_publishes() {
    let s = Server::start(&["--hub"]);
    let profile = TempDir::new("chromium-hub");
    let report_name = format!("spindle-hub-report-{}", std::process::id());
    let report = std::env::temp_dir().join(&report_name);
    let _ = std::fs::remove_file(&report);
    let mut browser = support::chromium(
        &s.url(&format!("/hub/page.html?file={report_name}")),
        &profile,
        &[],
    );
    let end = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    // The page reports once, in one POST; wait until the file parses.
    while Instant::now() < end {
        if let Ok(t) = std::fs::read_to_string(&report) {
            if serde_json::from_str::<serde_json::Value>(&t).is_ok() {
                text = t;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = std::fs::remove_file(&report);
    assert!(
        !text.is_empty(),
        "no report from the browser; log:\n{}",
        s.log()
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"], serde_json::Value::Null, "{text}");
    assert_eq!(v["event"]["data"], "hello\nbrowser", "{text}");
    let id = v["publishedId"].as_str().unwrap();
    assert!(id.starts_with("urn:uuid:"), "{text}");
    assert_eq!(v["event"]["id"], id, "{text}");
}

#[test]
fn a_client_leaving_while_php_publishes_ends_the_script() {
    let s = Server::start(&["--hub", "--workers", "1"]);
    let mut st = Stream::open_sse(&s, "/hub/publish_loop.php", "");
    assert!(st.head()[0].starts_with("http/1.1 200"));
    assert!(st.block().is_some());
    drop(st);
    // Only one worker: this is served once the abort ended the loop.
    let t = Instant::now();
    let r = client().get(s.url("/pid.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn many_tabs_connecting_at_once_are_all_handed_off() {
    // The default 2 workers leave one for streams (--max-streaming-workers):
    // hand-offs hold none, so none of them may be refused for it.
    let s = Server::start(&["--hub"]);
    let addr = s.addr;
    let threads: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut tcp = TcpStream::connect(addr).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                tcp.write_all(
                    b"GET /hub/subscribe.php HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
                )
                .unwrap();
                let mut status = String::new();
                BufReader::new(&tcp).read_line(&mut status).unwrap();
                (status, tcp)
            })
        })
        .collect();
    let results: Vec<(String, TcpStream)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let refused = results
        .iter()
        .filter(|(st, _)| !st.starts_with("HTTP/1.1 200"))
        .count();
    assert_eq!(
        refused,
        0,
        "{:?}",
        results.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
}

#[test]
fn with_the_hub_on_classic_streams_still_keep_a_worker_free() {
    // Places among --max-streaming-workers are taken when a response
    // streams rather than at dispatch; a script that streams itself still
    // takes one, and the next stream request is refused.
    let s = Server::start(&["--hub", "--workers", "2"]);
    let mut classic = Stream::open_sse(&s, "/sse/infinite.php?ms=50", "");
    assert!(classic.head()[0].starts_with("http/1.1 200"));
    assert!(classic.block().is_some());
    for _ in 0..5 {
        let r = client()
            .get(s.url("/sse/infinite.php"))
            .header("Accept", "text/event-stream")
            .send()
            .unwrap();
        assert_eq!(r.status(), 503);
        let r = client().get(s.url("/hello.php")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
}
