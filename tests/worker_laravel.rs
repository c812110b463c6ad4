//! Worker mode with Laravel 8 from Debian's php-laravel-framework: a small
//! application (php-tests/laravel/: bootstrap/app.php, an HTTP kernel with
//! the skeleton's middleware, an exception handler, routes with a Blade
//! view, JSON, forms, CSRF and a session) answers the same in classic mode
//! (Laravel's public/index.php) and in worker mode (php-tests/laravel/
//! worker.php, which boots it once and loops the HTTP kernel), and no
//! session carries from one client to another.

mod support;

use support::{client, Server, TempDir};

/// Status, the headers the app sets and the body. Set-Cookie values are
/// encrypted with a fresh IV each time, and `expires` moves with the
/// clock: only each cookie's name and other attributes are kept.
fn response(r: reqwest::blocking::Response) -> (u16, Vec<(String, String)>, String) {
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = ["content-type", "cache-control", "location"]
        .iter()
        .filter_map(|h| {
            r.headers()
                .get(*h)
                .map(|v| (h.to_string(), v.to_str().unwrap().to_string()))
        })
        .collect();
    for v in r.headers().get_all("set-cookie") {
        let v = v.to_str().unwrap();
        let mut parts = v.split("; ");
        let name = parts.next().unwrap().split('=').next().unwrap();
        let attrs: Vec<&str> = parts.filter(|p| !p.starts_with("expires=")).collect();
        headers.push(("set-cookie".into(), format!("{name}; {}", attrs.join("; "))));
    }
    (status, headers, r.text().unwrap())
}

/// The `name=value` of the response's cookie `name`.
fn cookie(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

#[test]
fn a_laravel_app_answers_the_same_in_worker_mode_boots_once_and_keeps_sessions_apart() {
    let autoload = "/usr/share/php/Illuminate/autoload.php";
    assert!(
        std::path::Path::new(autoload).exists(),
        "{autoload} is missing: install Debian's php-laravel-framework (scripts/deps.sh test)"
    );
    let app = support::fixtures().join("laravel");
    let public = app.join("public");
    let worker_script = app.join("worker.php");
    // storage/ and the bootstrap cache (compiled views, sessions).
    let var = TempDir::new("laravel");
    let start = |mode: &[&str]| {
        let mut args: Vec<String> = vec![
            "serve".into(),
            public.to_string_lossy().into_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            "1".into(),
        ];
        args.extend(mode.iter().map(|s| s.to_string()));
        Server::start_args(&args, &[("LARAVEL_VAR_DIR", var.path().to_str().unwrap())])
    };
    let classic = start(&["--front-controller", "index.php"]);
    let worker = start(&["--worker", worker_script.to_str().unwrap()]);

    let c = client();
    let get = |s: &Server, path: &str| response(c.get(s.url(path)).send().unwrap());
    for path in [
        "/",
        "/hello/world",
        "/json?b=2&a=1",
        "/no/such/route",
        "/boom",
        // A fatal error (the time limit): the exception handler's page,
        // rendered from the shutdown function Laravel registers at boot.
        "/fatal",
    ] {
        let a = get(&classic, path);
        assert_eq!(a, get(&worker, path), "{path}");
        let expect = match path {
            "/no/such/route" => 404,
            "/boom" | "/fatal" => 500,
            _ => 200,
        };
        assert_eq!(a.0, expect, "{path}: {}", a.2);
    }
    // The Blade view, escaped; the framework's own error pages.
    let hello = get(&worker, "/hello/world").2;
    assert!(
        hello.contains("<h1>Hello, world!</h1>") && hello.contains("<li>&lt;b&gt;</li>"),
        "{hello}"
    );
    assert!(get(&worker, "/boom").2.contains("Server Error"));
    assert!(get(&worker, "/fatal").2.contains("Server Error"));
    assert!(get(&worker, "/no/such/route").2.contains("Not Found"));

    for s in [&classic, &worker] {
        // A request's cookie and header, then a request without them.
        let r = c
            .get(s.url("/json?q=1"))
            .header("Cookie", "theme=dark")
            .header("X-Test", "yes")
            .send()
            .unwrap();
        let (_, headers, body) = response(r);
        assert_eq!(
            body,
            r#"{"path":"json","query":{"q":"1"},"theme":"dark","header":"yes"}"#
        );
        assert!(
            headers.contains(&(
                "set-cookie".into(),
                "seen; path=/; httponly; samesite=lax".into()
            )),
            "{headers:?}"
        );
        assert_eq!(
            get(s, "/json").2,
            r#"{"path":"json","query":[],"theme":null,"header":null}"#
        );
        // A form POST (trimmed by the skeleton's middleware); a POST to a
        // guarded route without a CSRF token is refused, with it accepted.
        let r = c
            .post(s.url("/form"))
            .form(&[("name", " Ann "), ("tags[]", "a"), ("tags[]", "b")])
            .send()
            .unwrap();
        let (status, _, body) = response(r);
        assert_eq!(
            (status, body.as_str()),
            (201, r#"{"form":{"name":"Ann","tags":["a","b"]}}"#)
        );
        let r = c.post(s.url("/guarded")).form(&[("note", "hi")]).send();
        assert_eq!(r.unwrap().status().as_u16(), 419);
        let r = c.get(s.url("/token")).send().unwrap();
        let session = cookie(&r, "laravel_session");
        let token = r.text().unwrap();
        let r = c
            .post(s.url("/guarded"))
            .header("Cookie", &session)
            .form(&[("note", "hi"), ("_token", &token)])
            .send()
            .unwrap();
        assert_eq!(response(r).2, "guarded hi");
    }

    // Sessions: each client has its own; a client without a cookie starts
    // afresh, whoever the worker served before.
    for s in [&classic, &worker] {
        let r = c.get(s.url("/visit")).send().unwrap();
        let a = cookie(&r, "laravel_session");
        assert_eq!(r.text().unwrap(), "visit 1\n");
        let visit = |cookie: Option<&str>| {
            let mut b = c.get(s.url("/visit"));
            if let Some(cookie) = cookie {
                b = b.header("Cookie", cookie);
            }
            b.send().unwrap().text().unwrap()
        };
        assert_eq!(visit(Some(&a)), "visit 2\n");
        assert_eq!(visit(None), "visit 1\n", "another client's session");
        assert_eq!(visit(Some(&a)), "visit 3\n");
        assert_eq!(visit(None), "visit 1\n", "another client's session");
    }

    // Booted once: one process, one application, for every request;
    // classic mode builds an application per request in the same process.
    support::assert_booted_once(&worker, &classic, |s| get(s, "/boot").2);
    assert!(
        worker.log().contains("worker.php booted in"),
        "{}",
        worker.log()
    );
}
