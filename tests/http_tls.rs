//! HTTPS and HTTP/2 (issue 14): TLS with rustls and ALPN, h2 over TLS, h2c
//! with prior knowledge, streaming over h2, one stream reset among others,
//! certificate reload on SIGHUP, bad certificates refused at startup,
//! handshake garbage, and Chromium with 10 EventSources on one h2 connection.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{fixtures, Server, TempDir};

/// A self-signed certificate for localhost and 127.0.0.1, valid between
/// `from` and `to` (years), written as cert.pem and key.pem into `dir`.
fn make_cert(dir: &Path, name: &str, from: i32, to: i32) -> (PathBuf, PathBuf) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn valid_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    make_cert(dir, name, 2024, 2099)
}

fn start_tls(cert: &Path, key: &Path, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec![
        "serve".into(),
        fixtures().to_string_lossy().into_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        "2".into(),
        "--tls-cert".into(),
        cert.to_string_lossy().into_owned(),
        "--tls-key".into(),
        key.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_tls_args(&args)
}

/// curl with `args`; (exit success, stdout).
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/deps.sh test");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn https_with_h2_and_http1_and_the_cgi_variables_php_expects() {
    let dir = TempDir::new("tls");
    let (cert, key) = valid_cert(dir.path(), "site");
    let s = start_tls(&cert, &key, &[]);
    let url = format!("https://127.0.0.1:{}/hello.php", s.addr.port());
    let cacert = cert.to_str().unwrap();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (ok, out) = curl(&[flag, "--cacert", cacert, "-w", " %{http_version}", &url]);
        assert!(ok, "{flag}: {out}");
        assert_eq!(out, format!("Hello, World! {version}"));
    }
    let (ok, out) = curl(&[
        "--http2",
        "--cacert",
        cacert,
        &format!("https://127.0.0.1:{}/info.php", s.addr.port()),
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let server = &v["server"];
    assert_eq!(server["HTTPS"], "on", "{out}");
    assert_eq!(server["REQUEST_SCHEME"], "https");
    assert_eq!(server["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(server["SERVER_PORT"], s.addr.port().to_string());
    // Plain HTTP to the TLS port, or handshake garbage: that connection
    // closes, the server goes on.
    let mut raw = std::net::TcpStream::connect(s.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01garbage")
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let (ok, out) = curl(&["--http2", "--cacert", cacert, &url]);
    assert!(ok && out == "Hello, World!", "{out}");
}

#[test]
fn h2c_with_prior_knowledge_on_a_plain_listener() {
    let s = Server::start(&[]);
    let (ok, out) = curl(&[
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &s.url("/hello.php"),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, "Hello, World! 2");
    let (ok, out) = curl(&["-w", " %{http_version}", &s.url("/hello.php")]);
    assert!(ok);
    assert_eq!(out, "Hello, World! 1.1");
}

#[test]
fn sse_over_h2_arrives_event_by_event() {
    let dir = TempDir::new("tls-sse");
    let (cert, key) = valid_cert(dir.path(), "site");
    let s = start_tls(&cert, &key, &[]);
    let mut child = Command::new("curl")
        .args([
            "-sN",
            "--http2",
            "-k",
            "--max-time",
            "20",
            "-H",
            "Accept: text/event-stream",
        ])
        .arg(format!(
            "https://127.0.0.1:{}/sse/counter.php?n=4&ms=400",
            s.addr.port()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("data: ") {
            seen.push((d.to_string(), started.elapsed()));
        }
    }
    let _ = child.wait();
    let data: Vec<&str> = seen.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(data, ["1", "2", "3", "4"]);
    // The first event came long before the script ended (3 x 400 ms later).
    assert!(
        seen[0].1 + Duration::from_millis(800) < seen[3].1,
        "{seen:?}"
    );
}

/// A client resets one h2 stream: only its script ends (it sees the client
/// gone), the other stream on the same connection keeps receiving.
#[test]
fn one_stream_reset_leaves_the_others_running() {
    let s = Server::start(&["--workers", "3"]);
    let marker = format!("spindle-h2-reset-{}", std::process::id());
    let marker_path = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&marker_path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut open = |path: String| {
            let req = http::Request::get(format!("http://127.0.0.1{path}"))
                .header("accept", "text/event-stream")
                .body(())
                .unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            resp
        };
        let keep = open("/sse/infinite.php?ms=50".into());
        let cut = open(format!("/sse/infinite.php?ms=50&marker={marker}"));
        let mut keep = keep.await.unwrap().into_body();
        let mut cut = cut.await.unwrap().into_body();
        assert!(cut.data().await.is_some());
        assert!(keep.data().await.is_some());
        // Dropping the stream's handles resets it (RST_STREAM CANCEL).
        drop(cut);
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !marker_path.exists() {
            assert!(
                tokio::time::Instant::now() < until,
                "the reset stream's script never ended"
            );
            // The other stream keeps flowing meanwhile.
            let chunk = tokio::time::timeout(Duration::from_secs(5), keep.data())
                .await
                .expect("the other stream stalled")
                .expect("the other stream ended")
                .unwrap();
            let _ = keep.flow_control().release_capacity(chunk.len());
        }
        for _ in 0..5 {
            let chunk = keep.data().await.unwrap().unwrap();
            let _ = keep.flow_control().release_capacity(chunk.len());
        }
    });
    let ran = std::fs::read_to_string(&marker_path).unwrap_or_default();
    let _ = std::fs::remove_file(&marker_path);
    assert_eq!(ran, "aborted=1");
}

#[test]
fn the_certificate_is_reloaded_on_sighup() {
    let dir = TempDir::new("tls-reload");
    let (cert, key) = valid_cert(dir.path(), "first");
    let s = start_tls(&cert, &key, &[]);
    let url = format!("https://127.0.0.1:{}/hello.php", s.addr.port());
    let issuer = |cacert: &Path| {
        curl(&[
            "--cacert",
            cacert.to_str().unwrap(),
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &url,
        ])
    };
    assert_eq!(issuer(&cert), (true, "200".to_string()));
    // A new pair in the same files, then SIGHUP.
    let (c2, k2) = valid_cert(dir.path(), "second");
    std::fs::copy(&c2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    s.signal(Signal::SIGHUP);
    assert!(s.wait_for_log("TLS certificate reloaded", Duration::from_secs(10)));
    // Trusting only the new certificate now works; the old one is gone.
    assert_eq!(issuer(&c2).1, "200");
    let (c3, _) = valid_cert(dir.path(), "third");
    assert!(
        !issuer(&c3).0,
        "a certificate we never installed cannot verify"
    );
    // A broken file at the next reload keeps the current pair.
    std::fs::write(&cert, "not a certificate").unwrap();
    s.signal(Signal::SIGHUP);
    assert!(s.wait_for_log("TLS certificate not reloaded", Duration::from_secs(10)));
    assert_eq!(issuer(&c2).1, "200");
}

#[test]
fn bad_certificates_stop_startup_naming_the_file() {
    let dir = TempDir::new("tls-bad");
    let (cert, key) = valid_cert(dir.path(), "good");
    let (_, other_key) = valid_cert(dir.path(), "other");
    let (expired, expired_key) = make_cert(dir.path(), "expired", 2020, 2021);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let docroot = fixtures();
    let run = |c: &Path, k: &Path| {
        support::run_to_exit(&[
            "serve",
            docroot.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ])
    };
    let (ok, err) = run(&cert, &other_key);
    assert!(!ok);
    assert!(
        err.contains("does not match") && err.contains("other.key"),
        "{err}"
    );
    let (ok, err) = run(&expired, &expired_key);
    assert!(!ok);
    assert!(
        err.contains("expired") && err.contains("expired.crt"),
        "{err}"
    );
    let (ok, err) = run(&garbage, &key);
    assert!(!ok);
    assert!(err.contains("garbage.pem"), "{err}");
    let (ok, err) = run(&cert, &garbage);
    assert!(!ok);
    assert!(err.contains("garbage.pem"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let (ok, err) = support::run_to_exit(&[
        "serve",
        docroot.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn redirect_http_sends_plain_requests_to_https() {
    let dir = TempDir::new("tls-redirect");
    let (cert, key) = valid_cert(dir.path(), "site");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = probe.local_addr().unwrap();
    drop(probe);
    let s = start_tls(&cert, &key, &["--redirect-http", &plain.to_string()]);
    assert!(s.wait_for_log("redirecting http://", Duration::from_secs(10)));
    let (_, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://{plain}/a/b.php?x=1"),
    ]);
    assert_eq!(
        out,
        format!("308 https://127.0.0.1:{}/a/b.php?x=1", s.addr.port())
    );
    // It speaks HTTP/1.1 only: an h2 preface just closes the connection.
    let (ok, _) = curl(&["--http2-prior-knowledge", &format!("http://{plain}/")]);
    assert!(!ok);
}

/// Chromium opens 10 EventSources to the same origin over HTTPS: on h2 they
/// share one connection, so all 10 receive (over HTTP/1.1 the 7th would
/// wait for one of 6 connections).
#[test]
fn chromium_runs_ten_eventsources_on_one_h2_connection() {
    let dir = TempDir::new("tls-chromium");
    let (cert, key) = valid_cert(dir.path(), "site");
    let s = start_tls(
        &cert,
        &key,
        &[
            "--hub",
            "--hub-anonymous",
            "--hub-publisher-key",
            "publisher-secret-0123456789abcdef",
        ],
    );
    let profile = TempDir::new("chromium-h2");
    let report_name = format!("spindle-h2-report-{}", std::process::id());
    let report = std::env::temp_dir().join(&report_name);
    let _ = std::fs::remove_file(&report);
    let mut browser = support::chromium(
        &format!(
            "https://127.0.0.1:{}/sse/ten.html?file={report_name}",
            s.addr.port()
        ),
        &profile,
        &["--ignore-certificate-errors"],
    );
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"mercure": {"publish": ["*"]}}),
        &jsonwebtoken::EncodingKey::from_secret(b"publisher-secret-0123456789abcdef"),
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            break Some(v);
        }
        if Instant::now() > end {
            break None;
        }
        // Publish until every EventSource has had one.
        let _ = Command::new("curl")
            .args(["-sk", "--max-time", "5", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["-d", "topic=ten&data=tick"])
            .arg(format!(
                "https://127.0.0.1:{}/.well-known/mercure",
                s.addr.port()
            ))
            .output();
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = std::fs::remove_file(&report);
    let v = found.unwrap_or_else(|| panic!("no report from the browser; log:\n{}", s.log()));
    assert_eq!(v["received"], 10, "{v}");
    assert_eq!(v["protocol"], "h2", "{v}");
}
