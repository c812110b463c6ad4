//! Worker mode with a real framework (issue 13): a Symfony HttpKernel app
//! from Debian's packages (php-tests/symfony/) answers the same requests
//! identically in classic mode and in worker mode, where it boots once.

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
