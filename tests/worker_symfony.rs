//! Worker mode with a real framework (issue 13): a Symfony HttpKernel app
//! from Debian's packages (php-tests/symfony/) answers the same requests
//! identically in classic mode and in worker mode, where it boots once; so
//! does a FrameworkBundle app run by the Runtime component
//! (php-tests/symfony-runtime/).

mod support;

use support::{client, Server};

/// What must be identical: status, the headers the app sets, the body.
fn answer(s: &Server, req: &Req) -> (u16, Vec<(String, String)>, String, Option<String>) {
    let c = client();
    let mut b = match req.body {
        Some(body) => c
            .post(s.url(req.path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
        None => c.get(s.url(req.path)),
    };
    for (k, v) in req.headers {
        b = b.header(*k, *v);
    }
    if let Some(cookie) = &req.cookie {
        b = b.header("Cookie", cookie.as_str());
    }
    let r = b.send().unwrap();
    let status = r.status().as_u16();
    let headers = ["content-type", "x-custom", "cache-control"]
        .iter()
        .filter_map(|h| {
            r.headers()
                .get(*h)
                .map(|v| (h.to_string(), v.to_str().unwrap().to_string()))
        })
        .collect();
    let session = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (status, headers, r.text().unwrap(), session)
}

struct Req {
    path: &'static str,
    body: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    cookie: Option<String>,
}

fn req(path: &'static str) -> Req {
    Req {
        path,
        body: None,
        headers: &[],
        cookie: None,
    }
}

#[test]
fn a_symfony_app_answers_the_same_in_worker_and_classic_mode() {
    let docroot = support::fixtures().join("symfony");
    let classic = Server::start_in(
        &docroot,
        &["--workers", "1", "--front-controller", "index.php"],
    );
    let worker = Server::start_in(&docroot, &["--workers", "1", "--worker", "worker.php"]);
    let script = [
        req("/hello/world"),
        Req {
            path: "/echo?b=2&a=1",
            body: Some("x=1&y=two"),
            headers: &[("X-Test", "first")],
            cookie: Some("k=v".into()),
        },
        // Nothing of the previous request: no form, cookie or header.
        req("/echo"),
        req("/status/404"),
        req("/status/201"),
        req("/boom"),
        req("/hello/again"),
        req("/no/such/route"),
    ];
    for r in &script {
        let a = answer(&classic, r);
        let b = answer(&worker, r);
        assert_eq!(a, b, "{}", r.path);
    }
    // Sessions: one client's counter goes up, a client without the cookie
    // starts at 1, in both modes.
    for s in [&classic, &worker] {
        let (_, _, body, cookie) = answer(s, &req("/visit"));
        assert_eq!(body, "visit 1\n");
        let cookie = cookie.expect("a session cookie");
        let again = Req {
            cookie: Some(cookie),
            ..req("/visit")
        };
        assert_eq!(answer(s, &again).2, "visit 2\n");
        assert_eq!(answer(s, &req("/visit")).2, "visit 1\n");
    }
}

/// Fails, rather than skips, when `scripts/deps.sh test` has not installed
/// a package the fixture is built from.
fn require_debian_package(package: &str, file: &str) {
    assert!(
        std::path::Path::new(file).exists(),
        "{file} is missing: install Debian's {package} (scripts/deps.sh test)"
    );
}

/// Status, the headers the app sets (Set-Cookie whole) and the body.
fn response(r: reqwest::blocking::Response) -> (u16, Vec<(String, String)>, String) {
    let status = r.status().as_u16();
    let headers = [
        "content-type",
        "x-custom",
        "cache-control",
        "set-cookie",
        "location",
    ]
    .iter()
    .flat_map(|h| {
        r.headers()
            .get_all(*h)
            .iter()
            .map(|v| (h.to_string(), v.to_str().unwrap().to_string()))
            .collect::<Vec<_>>()
    })
    .collect();
    (status, headers, r.text().unwrap())
}

/// A Symfony Flex-style application (php-tests/symfony-runtime/: a
/// FrameworkBundle micro-kernel, public/index.php returning a closure that
/// makes the kernel, vendor/autoload_runtime.php as Composer's runtime
/// plugin writes it) runs through the Runtime component in both modes; in
/// worker mode the runtime's runner loops on frankenphp_handle_request(),
/// as runtime/frankenphp-symfony's does.
#[test]
fn symfony_runtime_serves_the_same_app_in_worker_mode_and_boots_it_once() {
    require_debian_package(
        "php-symfony-runtime",
        "/usr/share/php/Symfony/Component/Runtime/autoload.php",
    );
    require_debian_package(
        "php-symfony-framework-bundle",
        "/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php",
    );
    let public = support::fixtures().join("symfony-runtime/public");
    // The kernel's cache and log directories (the compiled container).
    let var = support::TempDir::new("symfony-runtime");
    let var_dir = var.path().to_str().unwrap();
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
        Server::start_args(&args, &[("SYMFONY_VAR_DIR", var_dir)])
    };
    let classic = start(&["--front-controller", "index.php"]);
    let worker = start(&["--worker", "index.php"]);
    assert!(
        worker.log().contains("booted in"),
        "the worker script booted: {}",
        worker.log()
    );

    let c = client();
    let get = |s: &Server, path: &str| {
        let r = c.get(s.url(path)).send();
        response(r.unwrap_or_else(|e| panic!("{path}: {e}\n{}", s.log())))
    };
    // The first request may compile the container (seconds on a loaded
    // machine): not a comparison, and given more time.
    let slow = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(90))
        .build()
        .unwrap();
    for s in [&classic, &worker] {
        let r = slow.get(s.url("/hello/warm")).send();
        let status = r
            .unwrap_or_else(|e| panic!("warm-up: {e}\n{}", s.log()))
            .status();
        assert_eq!(status, 200, "{}", s.log());
    }
    for path in [
        "/index.php",
        "/hello/world",
        "/echo?b=2&a=1",
        "/no/such/route",
        "/boom",
        // A fatal error (the time limit): the page of Symfony's ErrorHandler,
        // which answers it from a shutdown function registered at boot.
        "/fatal",
        "/hello/again",
    ] {
        let a = get(&classic, path);
        assert_eq!(a, get(&worker, path), "{path}");
        // The router's 404 and the controller's exception are the
        // framework's own error pages, not the server's.
        match path {
            "/no/such/route" => assert_eq!(a.0, 404, "{}", a.2),
            "/boom" | "/fatal" => {
                assert_eq!(a.0, 500, "{}", a.2);
                assert!(a.2.contains("Internal Server Error"), "{}", a.2);
            }
            "/hello/world" => {
                assert_eq!(a.2, "Hello world\n");
                assert!(a.1.contains(&(
                    "set-cookie".into(),
                    "greeted=world; path=/; httponly; samesite=lax".into()
                )));
            }
            _ => assert_eq!(a.0, 200, "{path}: {}", a.2),
        }
    }
    // A form POST, a request cookie and header, then a request without them.
    let post = |s: &Server| {
        response(
            c.post(s.url("/form"))
                .form(&[("name", "Ann"), ("tags[]", "a"), ("tags[]", "b")])
                .send()
                .unwrap(),
        )
    };
    let with_cookie = |s: &Server| {
        response(
            c.get(s.url("/echo?q=1"))
                .header("Cookie", "greeted=world; theme=dark")
                .header("X-Test", "yes")
                .send()
                .unwrap(),
        )
    };
    for s in [&classic, &worker] {
        let (status, _, body) = post(s);
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body,
            r#"{"form":{"name":"Ann","tags":["a","b"]},"type":"form"}"#
        );
        let (_, _, body) = with_cookie(s);
        assert_eq!(
            body,
            r#"{"method":"GET","path":"\/echo","query":{"q":"1"},"form":[],"cookies":{"greeted":"world","theme":"dark"},"header":"yes"}"#
        );
        let (_, _, body) = get(s, "/echo");
        assert_eq!(
            body,
            r#"{"method":"GET","path":"\/echo","query":[],"form":[],"cookies":[],"header":null}"#
        );
    }
    // Sessions: one client's counter goes up; another client starts afresh.
    for s in [&classic, &worker] {
        let (_, headers, body) = get(s, "/visit");
        assert_eq!(body, "visit 1\n");
        let cookie = headers
            .iter()
            .find(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap().to_string())
            .expect("a session cookie");
        let again = c.get(s.url("/visit")).header("Cookie", &cookie).send();
        assert_eq!(response(again.unwrap()).2, "visit 2\n");
        assert_eq!(get(s, "/visit").2, "visit 1\n");
    }

    // Booted once: one process, one kernel, for every request; classic
    // mode makes a kernel per request in the same process.
    support::assert_booted_once(&worker, &classic, |s| get(s, "/boot").2);

    // kernel.reset: the shared counter service starts every request at
    // zero, because the kernel reset it, not because the app was rebuilt.
    let mut resets = Vec::new();
    for _ in 0..3 {
        let body = get(&worker, "/counter").2;
        let rest = body
            .strip_prefix("hits 1 resets ")
            .unwrap_or_else(|| panic!("the counter was not reset: {body:?}"));
        resets.push(rest.trim().parse::<u32>().unwrap());
    }
    assert!(
        resets[1] == resets[0] + 1 && resets[2] == resets[1] + 1,
        "a reset before each request: {resets:?}"
    );
    assert_eq!(get(&classic, "/counter").2, "hits 1 resets 0\n");
}
