//! PHP behaves as under PHP-FPM: $_SERVER, superglobals, headers, status
//! codes, errors, OPcache. Real binary, real PHP, real HTTP over TCP.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{client, json, Server};

#[test]
fn hello_world_has_content_length_and_type() {
    let s = Server::start(&[]);
    let r = client().get(s.url("/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "13");
    assert_eq!(r.headers()["content-type"], "text/html; charset=UTF-8");
    assert_eq!(r.text().unwrap(), "Hello, World!");
}

/// WordPress offers pretty permalinks (`/%postname%/`) only when
/// SERVER_SOFTWARE names nginx or Apache, and `/index.php/%postname%/` to
/// anything else (tests/apps_debian.rs found it). With a front controller
/// Spindle routes as nginx's try_files does and says so; without one, paths
/// that are not files get 404 and it does not.
#[test]
fn server_software_says_nginx_compatible_with_a_front_controller() {
    let software = |s: &Server| {
        let v = json(client().get(s.url("/info.php")).send().unwrap());
        v["server"]["SERVER_SOFTWARE"].as_str().unwrap().to_string()
    };
    let plain = software(&Server::start(&[]));
    assert!(
        plain.starts_with("Spindle/") && !plain.contains("nginx"),
        "{plain}"
    );
    let front = software(&Server::start(&["--front-controller", "index.php"]));
    assert!(
        front.starts_with("Spindle/") && front.contains("nginx"),
        "{front}"
    );
}

#[test]
fn server_variables_are_the_cgi_set() {
    let s = Server::start(&[]);
    let r = client()
        .post(s.url("/info.php/extra/path?a=1&b[]=2"))
        .header("X-Custom-Header", "yes")
        .header("Cookie", "c=3; d=4")
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .header("Proxy", "http://evil.example")
        .form(&[("x", "1"), ("y", "two words")])
        .send()
        .unwrap();
    let v = json(r);
    let sv = &v["server"];
    let root = support::fixtures().canonicalize().unwrap();
    let root = root.to_str().unwrap();
    assert_eq!(sv["REQUEST_METHOD"], "POST");
    assert_eq!(sv["REQUEST_URI"], "/info.php/extra/path?a=1&b[]=2");
    assert_eq!(sv["QUERY_STRING"], "a=1&b[]=2");
    assert_eq!(sv["SCRIPT_NAME"], "/info.php");
    assert_eq!(sv["SCRIPT_FILENAME"], format!("{root}/info.php"));
    assert_eq!(sv["PATH_INFO"], "/extra/path");
    assert_eq!(sv["PHP_SELF"], "/info.php/extra/path");
    assert_eq!(sv["DOCUMENT_ROOT"], root);
    assert_eq!(sv["SERVER_NAME"], "127.0.0.1");
    assert_eq!(sv["SERVER_PORT"], s.addr.port().to_string());
    assert_eq!(sv["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(sv["GATEWAY_INTERFACE"], "CGI/1.1");
    assert!(sv["SERVER_SOFTWARE"]
        .as_str()
        .unwrap()
        .starts_with("Spindle/"));
    assert_eq!(sv["REMOTE_ADDR"], "127.0.0.1");
    assert!(sv["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert_eq!(sv["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(sv["CONTENT_LENGTH"], "15");
    assert_eq!(sv["HTTP_X_CUSTOM_HEADER"], "yes");
    assert_eq!(sv["HTTP_HOST"], format!("127.0.0.1:{}", s.addr.port()));
    assert_eq!(sv["PHP_AUTH_USER"], "user");
    assert_eq!(sv["PHP_AUTH_PW"], "pass");
    assert!(
        sv.get("HTTP_PROXY").is_none(),
        "httpoxy: the Proxy header must not become HTTP_PROXY"
    );
    assert!(sv.get("HTTPS").is_none());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((sv["REQUEST_TIME_FLOAT"].as_f64().unwrap() - now).abs() < 60.0);
    assert!(sv["REQUEST_TIME"].as_u64().is_some());
    // Superglobals.
    assert_eq!(v["get"]["a"], "1");
    assert_eq!(v["get"]["b"][0], "2");
    assert_eq!(v["post"]["y"], "two words");
    assert_eq!(v["cookie"]["c"], "3");
    assert_eq!(v["cookie"]["d"], "4");
    assert_eq!(v["request"]["x"], "1");
    assert_eq!(v["input"], "x=1&y=two+words");
    assert_eq!(v["getenv_method"], "POST");
    assert_eq!(
        v["cwd"], root,
        "scripts run in their own directory, as under FPM"
    );
    assert_eq!(v["sapi"], "fpm-fcgi");
}

#[test]
fn opcache_is_enabled_in_workers() {
    let s = Server::start(&[]);
    let v = json(client().get(s.url("/info.php")).send().unwrap());
    assert_eq!(
        v["opcache"], true,
        "opcache_get_status()['opcache_enabled']"
    );
}

#[test]
fn every_method_reaches_php_with_its_body() {
    let s = Server::start(&[]);
    let c = client();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let mut req = c.request(method, s.url("/methods.php"));
        if m != "GET" {
            req = req
                .header("Content-Type", "application/json")
                .body(format!("{{\"m\":\"{m}\"}}"));
        }
        let v = json(req.send().unwrap());
        assert_eq!(v["method"], m);
        if m != "GET" {
            assert_eq!(v["input"], format!("{{\"m\":\"{m}\"}}"));
            assert_eq!(v["content_type"], "application/json");
        } else {
            assert_eq!(v["content_length"], Value::Null);
        }
    }
    // HEAD: headers, no body.
    let r = c.head(s.url("/hello.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "");
    let raw = s.raw(b"HEAD /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        !raw.contains("Hello, World!"),
        "HEAD must not send a body: {raw}"
    );
}

#[test]
fn chunked_request_bodies_reach_php() {
    let s = Server::start(&[]);
    let raw = s.raw(
        b"POST /methods.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert!(raw.contains(r#""input":"hello world""#), "{raw}");
    assert!(raw.contains(r#""content_length":"11""#), "{raw}");
}

#[test]
fn headers_status_and_cookies() {
    let s = Server::start(&[]);
    let r = client().get(s.url("/headers.php")).send().unwrap();
    assert_eq!(r.status(), 201);
    let h = r.headers();
    assert_eq!(h["x-custom"], "one");
    assert!(h.get("x-removed").is_none());
    let multi: Vec<_> = h
        .get_all("x-multi")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(multi, ["a", "b"]);
    let cookies: Vec<_> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[0].starts_with("first=1"));
    assert!(cookies[1].starts_with("second=2") && cookies[1].contains("HttpOnly"));
    assert_eq!(h["content-type"], "text/plain;charset=UTF-8");
    assert_eq!(r.text().unwrap(), "before=false\nafter=true\n");

    let r = client().get(s.url("/redirect.php")).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/hello.php");

    let r = client().get(s.url("/status.php?code=418")).send().unwrap();
    assert_eq!(r.status(), 418);
}

/// As FPM's send_headers: a CGI `Status:` header sets the status when the
/// script set none and is never sent on (phpMyAdmin's HTTP authentication
/// sent `status: 401 Unauthorized` to clients), and a 304 has no
/// Content-Type (DokuWiki's fetch.php sent one); tests/apps_debian.rs found
/// both next to nginx + php-fpm.
#[test]
fn cgi_status_header_and_304_as_under_fpm() {
    let s = Server::start(&[]);
    let get = |case: &str| {
        client()
            .get(s.url(&format!("/cgi_status.php?case={case}")))
            .send()
            .unwrap()
    };
    let r = get("status");
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("status").is_none(), "{:?}", r.headers());
    assert_eq!(r.text().unwrap(), "not here");
    let r = get("both");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("status").is_none(), "{:?}", r.headers());
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"test\"");
    let r = get("set");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("status").is_none(), "{:?}", r.headers());
    let r = get("304");
    assert_eq!(r.status(), 304);
    assert!(
        r.headers().get("content-type").is_none(),
        "{:?}",
        r.headers()
    );
    assert_eq!(r.headers()["etag"], "\"x\"");
}

#[test]
fn fatal_errors_give_500_and_reach_the_log() {
    // display_errors off (Debian's production php.ini): 500.
    let s = Server::start(&[]);
    let r = client().get(s.url("/fatal.php")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert!(
        s.wait_for_log(
            "spindle_this_function_does_not_exist",
            Duration::from_secs(5)
        ),
        "{}",
        s.log()
    );
    let r = client().get(s.url("/exception.php")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert!(
        s.wait_for_log("uncaught-exception-marker", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    // The worker survives: the next request works.
    assert_eq!(
        client().get(s.url("/hello.php")).send().unwrap().status(),
        200
    );

    // display_errors on: still 500, with PHP's own message in the body.
    let s = Server::start(&["-d", "display_errors=1"]);
    let r = client().get(s.url("/fatal.php")).send().unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().unwrap();
    assert!(body.contains("partial output"), "{body}");
    assert!(
        body.contains("spindle_this_function_does_not_exist"),
        "{body}"
    );
}

#[test]
fn error_log_goes_to_the_server_log() {
    let s = Server::start(&[]);
    let r = client()
        .get(s.url("/error_log.php?tag=abc123"))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "logged");
    assert!(
        s.wait_for_log("error-log-marker-abc123", Duration::from_secs(5)),
        "{}",
        s.log()
    );
}

#[test]
fn ini_overrides_apply_like_the_php_cli() {
    let dir = support::TempDir::new("ini");
    std::fs::write(
        dir.path().join("ini.php"),
        "<?php echo ini_get('memory_limit'), ' ', ini_get('display_errors');",
    )
    .unwrap();
    let s = Server::start_in(
        dir.path(),
        &["-d", "memory_limit=77M", "-d", "display_errors=1"],
    );
    let r = client().get(s.url("/ini.php")).send().unwrap();
    assert_eq!(r.text().unwrap(), "77M 1");
}

#[test]
fn sessions_survive_across_workers() {
    let s = Server::start(&["--workers", "2"]);
    let c = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut pids = std::collections::HashSet::new();
    let mut last = 0;
    for i in 1..=12 {
        let r = c.get(s.url("/session.php")).send().unwrap();
        if i == 1 {
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
            assert!(cookie.starts_with("PHPSESSID="), "{cookie}");
        }
        let v = json(r);
        last = v["n"].as_u64().unwrap();
        assert_eq!(last, i, "the session counter must count every request");
        pids.insert(v["pid"].as_u64().unwrap());
    }
    assert_eq!(last, 12);
    assert!(
        pids.len() >= 2,
        "requests should have been served by both workers: {pids:?}"
    );
}

#[test]
fn the_runtime_extension_set_loads_in_workers() {
    // scripts/runtime-deps.sh (also the Docker image's runtime stage)
    // installs these; Debian enables them in the embed SAPI's conf.d.
    let s = Server::start(&[]);
    let v = json(client().get(s.url("/extensions.php")).send().unwrap());
    for (ext, loaded) in v.as_object().unwrap() {
        assert_eq!(loaded, true, "{ext} is not loaded in a worker");
    }
}
