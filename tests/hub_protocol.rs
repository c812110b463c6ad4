//! The hub's Mercure protocol over real sockets (issue 11): subscribe and
//! publish, selectors, private updates, every token source and error,
//! replay, expiry, limits, slow subscribers, reload and shutdown.

mod support;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use nix::sys::signal::Signal;
use serde_json::json;
use support::{client, Server, TempDir};

const PUB_KEY: &str = "publisher-secret-0123456789abcdef";
const SUB_KEY: &str = "subscriber-secret-0123456789abcdef";
const HUB: &str = "/.well-known/mercure";

fn hub(extra: &[&str]) -> Server {
    let mut args = vec![
        "--hub",
        "--hub-publisher-key",
        PUB_KEY,
        "--hub-subscriber-key",
        SUB_KEY,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn jwt(key: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn publisher() -> String {
    jwt(PUB_KEY, json!({"mercure": {"publish": ["*"]}}))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// POSTs a form to the hub; (status, body).
fn publish(s: &Server, token: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = client()
        .post(s.url(HUB))
        .bearer_auth(token)
        .form(form)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Event {
    id: String,
    event: String,
    retry: String,
    data: String,
}

/// A subscriber reading events on a thread.
struct Sub {
    status: u16,
    headers: reqwest::header::HeaderMap,
    events: mpsc::Receiver<Result<Event, String>>,
}

impl Sub {
    fn open(s: &Server, query: &str, headers: &[(&str, &str)]) -> Sub {
        let mut req = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(s.url(&format!("{HUB}?{query}")));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(resp);
            let mut ev = Event::default();
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => {
                        let _ = tx.send(Err("end of stream".into()));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(format!("read: {e}")));
                        return;
                    }
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    if (!ev.id.is_empty() || !ev.data.is_empty())
                        && tx.send(Ok(std::mem::take(&mut ev))).is_err()
                    {
                        return;
                    }
                    continue;
                }
                if l.starts_with(':') {
                    continue;
                }
                let (k, v) = l.split_once(": ").unwrap_or((l, ""));
                match k {
                    "id" => ev.id = v.into(),
                    "event" => ev.event = v.into(),
                    "retry" => ev.retry = v.into(),
                    "data" => {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v);
                    }
                    _ => {}
                }
            }
        });
        Sub {
            status,
            headers,
            events: rx,
        }
    }

    fn next(&self) -> Event {
        match self.events.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => panic!("no event: {e}"),
            Err(_) => panic!("no event within 10 s"),
        }
    }

    /// Asserts nothing arrives within `wait`.
    fn nothing(&self, wait: Duration) {
        if let Ok(e) = self.events.recv_timeout(wait) {
            panic!("unexpected: {e:?}");
        }
    }

    /// Waits for the stream to end (cleanly or not), failing on a timeout.
    fn ended(&self, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return e,
                Err(_) => panic!("the stream did not end within {within:?}"),
            }
        }
    }
}

#[test]
fn subscribers_receive_what_is_published_framed_as_sse() {
    let s = hub(&["--hub-anonymous"]);
    let sub = Sub::open(&s, "topic=https://example.com/books/1", &[]);
    assert_eq!(sub.status, 200);
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    let (status, id) = publish(
        &s,
        &publisher(),
        &[
            ("topic", "https://example.com/books/1"),
            ("data", "line one\nline two\r\nline three"),
            ("type", "update"),
            ("retry", "2500"),
            ("id", "book-1-v2"),
        ],
    );
    assert_eq!((status, id.as_str()), (200, "book-1-v2"));
    let e = sub.next();
    assert_eq!(
        e,
        Event {
            id: "book-1-v2".into(),
            event: "update".into(),
            retry: "2500".into(),
            data: "line one\nline two\nline three".into()
        }
    );
    // An id is generated when absent, and answered.
    let (status, id) = publish(
        &s,
        &publisher(),
        &[("topic", "https://example.com/books/1"), ("data", "x")],
    );
    assert_eq!(status, 200);
    assert!(id.starts_with("urn:uuid:"), "{id}");
    assert_eq!(sub.next().id, id);
    // Other topics do not reach it.
    publish(
        &s,
        &publisher(),
        &[("topic", "https://example.com/books/2"), ("data", "no")],
    );
    sub.nothing(Duration::from_millis(300));
}

#[test]
fn selectors_templates_alternates_and_star() {
    let s = hub(&["--hub-anonymous"]);
    let template = Sub::open(&s, "topic=https://example.com/books/%7Bid%7D", &[]);
    let star = Sub::open(&s, "topic=*", &[]);
    let exact = Sub::open(&s, "topic=https://example.com/authors/7", &[]);
    publish(
        &s,
        &publisher(),
        &[("topic", "https://example.com/books/42"), ("data", "b")],
    );
    assert_eq!(template.next().data, "b");
    assert_eq!(star.next().data, "b");
    // An alternate topic matches too: canonical first, alternates after.
    publish(
        &s,
        &publisher(),
        &[
            ("topic", "https://example.com/books/42/reviews/1"),
            ("topic", "https://example.com/authors/7"),
            ("data", "r"),
        ],
    );
    assert_eq!(exact.next().data, "r");
    assert_eq!(star.next().data, "r");
    template.nothing(Duration::from_millis(300));
    // An invalid template is refused with a reason.
    let r = client()
        .get(s.url(&format!("{HUB}?topic=https://example.com/%7Bid")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("unclosed"));
    let r = client().get(s.url(HUB)).send().unwrap();
    assert_eq!(r.status(), 400, "no topic");
}

#[test]
fn private_updates_reach_only_authorized_subscribers() {
    let s = hub(&["--hub-anonymous"]);
    let topic = "https://example.com/users/5/inbox";
    let anonymous = Sub::open(&s, &format!("topic={topic}"), &[]);
    let token = jwt(
        SUB_KEY,
        json!({"mercure": {"subscribe": ["https://example.com/users/5/{x}"]}}),
    );
    let owner = Sub::open(
        &s,
        &format!("topic={topic}"),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    let other_token = jwt(
        SUB_KEY,
        json!({"mercure": {"subscribe": ["https://example.com/users/6/{x}"]}}),
    );
    let other = Sub::open(
        &s,
        &format!("topic={topic}"),
        &[("Authorization", &format!("Bearer {other_token}"))],
    );
    publish(
        &s,
        &publisher(),
        &[("topic", topic), ("data", "secret"), ("private", "on")],
    );
    publish(&s, &publisher(), &[("topic", topic), ("data", "public")]);
    assert_eq!(owner.next().data, "secret");
    assert_eq!(owner.next().data, "public");
    assert_eq!(anonymous.next().data, "public");
    assert_eq!(other.next().data, "public");
}

#[test]
fn tokens_come_from_header_query_or_cookie() {
    let s = hub(&["--hub-cookie-name", "hubAuth"]);
    let topic = "https://example.com/t";
    let token = jwt(SUB_KEY, json!({"mercure": {"subscribe": ["*"]}}));
    // No token and no --hub-anonymous: 401.
    let r = client()
        .get(s.url(&format!("{HUB}?topic={topic}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let by_header = Sub::open(
        &s,
        &format!("topic={topic}"),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    let by_query = Sub::open(&s, &format!("topic={topic}&authorization={token}"), &[]);
    let by_cookie = Sub::open(
        &s,
        &format!("topic={topic}"),
        &[("Cookie", &format!("other=1; hubAuth={token}"))],
    );
    for sub in [&by_header, &by_query, &by_cookie] {
        assert_eq!(sub.status, 200);
    }
    publish(
        &s,
        &publisher(),
        &[("topic", topic), ("data", "p"), ("private", "1")],
    );
    for sub in [&by_header, &by_query, &by_cookie] {
        assert_eq!(sub.next().data, "p");
    }
    // The default cookie name is not read when another is configured.
    let r = client()
        .get(s.url(&format!("{HUB}?topic={topic}")))
        .header("Cookie", format!("mercureAuthorization={token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn bad_tokens_and_bad_updates_get_the_right_4xx() {
    let s = hub(&[]);
    let topic = "https://example.com/t";
    let get = |auth: &str| {
        let r = client()
            .get(s.url(&format!("{HUB}?topic={topic}")))
            .header("Authorization", format!("Bearer {auth}"))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (st, why) = get("not.a.jwt");
    assert_eq!(st, 401, "{why}");
    assert!(why.contains("malformed"), "{why}");
    // alg "none", unsigned.
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(r#"{"mercure":{"subscribe":["*"]}}"#)
    );
    assert_eq!(get(&none).0, 401);
    // Signed with the wrong key.
    assert_eq!(
        get(&jwt(
            "some-other-secret-0123456789",
            json!({"mercure": {"subscribe": ["*"]}})
        ))
        .0,
        401
    );
    // Expired.
    let (st, why) = get(&jwt(
        SUB_KEY,
        json!({"exp": now() - 10, "mercure": {"subscribe": ["*"]}}),
    ));
    assert_eq!(st, 401);
    assert!(why.contains("expired"), "{why}");
    // HS384 is not the key's algorithm.
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &json!({"mercure": {"subscribe": ["*"]}}),
        &EncodingKey::from_secret(SUB_KEY.as_bytes()),
    )
    .unwrap();
    assert_eq!(get(&hs384).0, 401);

    // Publishing: no token 401; a subscriber's key 401; a claim that does
    // not cover every topic 403; bad forms 400; wrong type 415; too big 413.
    let r = client()
        .post(s.url(HUB))
        .form(&[("topic", topic)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        publish(
            &s,
            &jwt(SUB_KEY, json!({"mercure": {"publish": ["*"]}})),
            &[("topic", topic)]
        )
        .0,
        401
    );
    let narrow = jwt(
        PUB_KEY,
        json!({"mercure": {"publish": ["https://example.com/{x}"]}}),
    );
    assert_eq!(
        publish(&s, &narrow, &[("topic", topic), ("data", "ok")]).0,
        200
    );
    let (st, _) = publish(
        &s,
        &narrow,
        &[("topic", topic), ("topic", "https://other.example/x")],
    );
    assert_eq!(st, 403);
    assert_eq!(
        publish(
            &s,
            &jwt(PUB_KEY, json!({"mercure": {}})),
            &[("topic", topic)]
        )
        .0,
        403
    );
    let (st, why) = publish(&s, &publisher(), &[("topic", topic), ("id", "#frag")]);
    assert_eq!(st, 400);
    assert!(why.contains("'#'"), "{why}");
    let (st, why) = publish(&s, &publisher(), &[("topic", topic), ("colour", "red")]);
    assert_eq!(st, 400);
    assert!(why.contains("colour"), "{why}");
    assert_eq!(publish(&s, &publisher(), &[("data", "no topic")]).0, 400);
    let r = client()
        .post(s.url(HUB))
        .bearer_auth(publisher())
        .header("Content-Type", "application/json")
        .body(r#"{"topic":"x"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    let big = "x".repeat(2 << 20);
    assert_eq!(
        publish(&s, &publisher(), &[("topic", topic), ("data", &big)]).0,
        413
    );
}

fn b64(s: &str) -> String {
    use std::fmt::Write;
    // base64url without padding, enough for a test.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            let _ = out.write_char(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn replay_after_last_event_id_with_the_response_header() {
    let s = hub(&["--hub-anonymous", "--hub-history", "5"]);
    let topic = "https://example.com/feed";
    let ids: Vec<String> = (1..=8)
        .map(|i| {
            publish(
                &s,
                &publisher(),
                &[
                    ("topic", topic),
                    ("data", &i.to_string()),
                    ("id", &format!("e{i}")),
                ],
            )
            .1
        })
        .collect();
    assert_eq!(ids[7], "e8");
    // After e5: e6, e7, e8; the header names e5.
    let sub = Sub::open(&s, &format!("topic={topic}"), &[("Last-Event-ID", "e5")]);
    assert_eq!(sub.headers["last-event-id"], "e5");
    let got: Vec<String> = (0..3).map(|_| sub.next().data).collect();
    assert_eq!(got, ["6", "7", "8"]);
    // Then live, with no gap.
    publish(&s, &publisher(), &[("topic", topic), ("data", "9")]);
    assert_eq!(sub.next().data, "9");
    // The query parameter works too; `earliest` replays all that is kept (5).
    let sub = Sub::open(&s, &format!("topic={topic}&lastEventID=earliest"), &[]);
    assert_eq!(sub.headers["last-event-id"], "earliest");
    let got: Vec<String> = (0..5).map(|_| sub.next().data).collect();
    assert_eq!(got, ["5", "6", "7", "8", "9"]);
    // An id the hub no longer holds: everything kept, and `earliest` says so.
    let sub = Sub::open(&s, &format!("topic={topic}"), &[("Last-Event-ID", "e1")]);
    assert_eq!(sub.headers["last-event-id"], "earliest");
    assert_eq!(sub.next().data, "5");
    // Without either, no header and no replay.
    let sub = Sub::open(&s, &format!("topic={topic}"), &[]);
    assert!(sub.headers.get("last-event-id").is_none());
    sub.nothing(Duration::from_millis(300));
}

#[test]
fn a_subscription_ends_when_its_token_expires() {
    let s = hub(&[]);
    let token = jwt(
        SUB_KEY,
        json!({"exp": now() + 2, "mercure": {"subscribe": ["*"]}}),
    );
    let started = Instant::now();
    let sub = Sub::open(
        &s,
        "topic=x",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(sub.status, 200);
    let why = sub.ended(Duration::from_secs(8));
    assert_eq!(why, "end of stream");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_subscriber_limit_answers_503() {
    let s = hub(&[
        "--hub-anonymous",
        "--hub-max-subscribers",
        "2",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let _a = Sub::open(&s, "topic=x", &[]);
    let _b = Sub::open(&s, "topic=x", &[]);
    let r = client()
        .get(s.url(&format!("{HUB}?topic=x")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let m = client()
        .get(s.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("spindle_hub_subscribers 2"), "{m}");
    assert!(m.contains("spindle_hub_rejected_full_total 1"), "{m}");
}

/// A subscriber that stops reading is dropped once its queue is full, and
/// the publisher and the other subscribers never wait for it.
#[test]
fn a_stalled_subscriber_is_dropped_while_others_keep_receiving() {
    use std::io::{Read, Write};
    let s = hub(&["--hub-anonymous", "--admin-listen", "127.0.0.1:0"]);
    let mut stalled = std::net::TcpStream::connect(s.addr).unwrap();
    stalled
        .write_all(b"GET /.well-known/mercure?topic=big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 64];
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stalled.read(&mut head).unwrap();
    let live = Sub::open(&s, "topic=big", &[]);
    let chunk = "y".repeat(256 * 1024);
    let started = Instant::now();
    for i in 0..200 {
        let (st, _) = publish(
            &s,
            &publisher(),
            &[("topic", "big"), ("data", &chunk), ("id", &format!("b{i}"))],
        );
        assert_eq!(st, 200);
        assert_eq!(live.next().id, format!("b{i}"));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let m = client()
        .get(s.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("spindle_hub_dropped_slow_total 1"), "{m}");
    assert!(m.contains("spindle_hub_subscribers 1"), "{m}");
}

#[test]
fn subscribers_stay_through_a_reload_and_end_cleanly_on_sigterm() {
    let mut s = hub(&["--hub-anonymous"]);
    let sub = Sub::open(&s, "topic=t", &[]);
    s.signal(Signal::SIGHUP);
    assert!(s.wait_for_log("reload: new PHP started", Duration::from_secs(20)));
    publish(
        &s,
        &publisher(),
        &[("topic", "t"), ("data", "after reload")],
    );
    assert_eq!(sub.next().data, "after reload");
    s.signal(Signal::SIGTERM);
    assert_eq!(sub.ended(Duration::from_secs(5)), "end of stream");
    assert!(s
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|st| st.success()));
}

#[test]
fn rs256_and_es256_public_keys() {
    let dir = TempDir::new("hub-keys");
    let sh = |cmd: &str| {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    };
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null && openssl pkey -in rsa.pem -pubout -out rsa.pub");
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null && openssl pkey -in ec.pem -pubout -out ec.pub && openssl pkcs8 -topk8 -nocrypt -in ec.pem -out ec8.pem");
    let rsa_pub = format!("@{}", dir.path().join("rsa.pub").display());
    let ec_pub = format!("@{}", dir.path().join("ec.pub").display());
    let s = Server::start(&[
        "--hub",
        "--hub-publisher-key",
        &rsa_pub,
        "--hub-subscriber-key",
        &ec_pub,
    ]);
    let rsa = std::fs::read(dir.path().join("rsa.pem")).unwrap();
    let ec = std::fs::read(dir.path().join("ec8.pem")).unwrap();
    let pub_token = encode(
        &Header::new(Algorithm::RS256),
        &json!({"mercure": {"publish": ["*"]}}),
        &EncodingKey::from_rsa_pem(&rsa).unwrap(),
    )
    .unwrap();
    let sub_token = encode(
        &Header::new(Algorithm::ES256),
        &json!({"mercure": {"subscribe": ["*"]}}),
        &EncodingKey::from_ec_pem(&ec).unwrap(),
    )
    .unwrap();
    let sub = Sub::open(
        &s,
        "topic=k",
        &[("Authorization", &format!("Bearer {sub_token}"))],
    );
    assert_eq!(sub.status, 200);
    assert_eq!(
        publish(&s, &pub_token, &[("topic", "k"), ("data", "signed")]).0,
        200
    );
    assert_eq!(sub.next().data, "signed");
    // An HS256 token cannot pass for an RS256 key (algorithm confusion).
    assert_eq!(
        publish(
            &s,
            &jwt(PUB_KEY, json!({"mercure": {"publish": ["*"]}})),
            &[("topic", "k")]
        )
        .0,
        401
    );
    // A key file that is no key stops startup, naming the option.
    let (ok, err) = support::run_to_exit(&[
        "serve",
        support::fixtures().to_str().unwrap(),
        "--hub",
        "--hub-publisher-key",
        &format!("@{}", dir.path().join("nothing.pem").display()),
    ]);
    assert!(!ok);
    assert!(err.contains("--hub-publisher-key"), "{err}");
}

#[test]
fn cors_and_the_subscriptions_api() {
    let s = hub(&[
        "--hub-anonymous",
        "--hub-cors-origin",
        "https://app.example",
        "--hub-subscriptions",
    ]);
    let pre = client()
        .request(reqwest::Method::OPTIONS, s.url(HUB))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Last-Event-ID"));
    let other = client()
        .get(s.url(&format!("{HUB}?topic=x")))
        .header("Origin", "https://evil.example")
        .timeout(Duration::from_millis(500))
        .send()
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // A watcher of subscription events sees a subscriber arrive and leave.
    let watch_token = jwt(
        SUB_KEY,
        json!({"mercure": {"subscribe": ["/.well-known/mercure/subscriptions{/topic}{/subscriber}"]}}),
    );
    let watcher = Sub::open(
        &s,
        "topic=/.well-known/mercure/subscriptions%7B/topic%7D%7B/subscriber%7D",
        &[("Authorization", &format!("Bearer {watch_token}"))],
    );
    let payload_token = jwt(
        SUB_KEY,
        json!({"mercure": {"subscribe": ["x"], "payload": {"user": "ann"}}}),
    );
    let sub = Sub::open(
        &s,
        "topic=https://example.com/room/1",
        &[("Authorization", &format!("Bearer {payload_token}"))],
    );
    // The watcher's own arrival is announced first (it matches its own
    // selector); skip to the room's.
    let room_event = || loop {
        let v: serde_json::Value = serde_json::from_str(&watcher.next().data).unwrap();
        if v["topic"] == "https://example.com/room/1" {
            return v;
        }
    };
    let arrived = room_event();
    assert_eq!(arrived["type"], "Subscription");
    assert_eq!(arrived["topic"], "https://example.com/room/1");
    assert_eq!(arrived["active"], true);
    assert_eq!(arrived["payload"]["user"], "ann");
    let r = client()
        .get(s.url("/.well-known/mercure/subscriptions"))
        .bearer_auth(&watch_token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = support::json(r);
    assert_eq!(list["type"], "Subscriptions");
    assert!(list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["topic"] == "https://example.com/room/1"));
    // Dropping the Sub ends its reader thread at its next event, which
    // closes the connection: publish one to make it go.
    drop(sub);
    publish(
        &s,
        &jwt(PUB_KEY, json!({"mercure": {"publish": ["*"]}})),
        &[("topic", "https://example.com/room/1")],
    );
    let left = room_event();
    assert_eq!(left["active"], false);
    assert_eq!(left["subscriber"], arrived["subscriber"]);
    // Without a token: 401.
    let r = client()
        .get(s.url("/.well-known/mercure/subscriptions"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}
