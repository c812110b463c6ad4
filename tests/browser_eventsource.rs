//! A real browser: Debian's chromium, headless, runs a page whose
//! EventSource receives default and named events, reconnects after the
//! server ends the stream, and sends Last-Event-ID.

mod support;

use std::time::{Duration, Instant};

use support::{Server, TempDir};

#[test]
fn chromium_eventsource_receives_reconnects_and_resumes() {
    let s = Server::start(&[]);
    let profile = TempDir::new("chromium");
    let report_name = format!("spindle-es-report-{}", std::process::id());
    let report = std::env::temp_dir().join(&report_name);
    let _ = std::fs::remove_file(&report);
    let mut browser = support::chromium(
        &s.url(&format!("/sse/eventsource.html?file={report_name}")),
        &profile,
        &[],
    );
    // report.php writes the file with file_put_contents, which a reader may
    // catch half-written: wait until it holds a whole JSON document rather
    // than for a fixed time (issue 10, item 6).
    let end = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            break Some((text, v));
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Killed before any assertion, so a failure leaves no browser behind.
    let _ = browser.kill();
    let _ = browser.wait();
    let (text, v) =
        found.unwrap_or_else(|| panic!("no report from the browser; log:\n{}", s.log()));
    let _ = std::fs::remove_file(&report);

    // Six events over two connections: the second resumed after id 3.
    let counter: Vec<&str> = v["counter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(counter[..6], ["1", "2", "3", "4", "5", "6"], "{text}");
    let ids: Vec<&str> = v["lastEventIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(ids[..6], ["1", "2", "3", "4", "5", "6"], "{text}");
    assert!(
        v["errors"].as_u64().unwrap() >= 1,
        "the end of the first stream shows as an error event: {text}"
    );
    // Named events with JSON, multi-line data.
    assert_eq!(v["named"]["greeting"]["hello"], "world", "{text}");
    assert_eq!(v["named"]["greetingId"], "g1", "{text}");
    assert_eq!(v["named"]["multi"], "line one\nline two", "{text}");
    // Events 4..6 came from a second request that the script started from
    // $_SERVER['HTTP_LAST_EVENT_ID']: the browser sent Last-Event-ID: 3.
    // A fresh EventSource sends none.
    assert_eq!(
        v["named"]["plain"]["last_event_id"],
        serde_json::Value::Null,
        "{text}"
    );
}
